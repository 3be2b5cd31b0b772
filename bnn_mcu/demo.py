"""`bnn-mcu demo` (`make demo`): the whole chain on a built-in default.

Train a binary MLP on Fashion-MNIST (real data from Debian's dataset-fashion-mnist), convert it
to an integer model, print its deployed-bytes table, generate C, then prove bit-exactness:
PyTorch vs emulator on every hidden bit, emulator vs the C on the host, on QEMU Cortex-M4 and
on QEMU Cortex-M0 (micro:bit, 16 KB RAM), and count instructions per layer exactly.
"""

from __future__ import annotations

import time
from pathlib import Path

from .errors import BnnError
from .outputs import check_writable

DEMO_PRESET = "mlp"
DEMO_EPOCHS = 8
DEMO_DATA = "fashion-mnist"
DEMO_BOARDS = ("mps2-an386", "microbit")


def _step(n: int, title: str) -> float:
    print(f"\n=== {n}. {title} " + "=" * max(0, 70 - len(title)), flush=True)
    return time.time()


def run_demo(args) -> int:
    """The chain through the Python API (bnn_mcu.api), one printed step at a time."""
    from . import api
    from .data import load_dataset
    from .verify import device_table

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BnnError(f"{out}: is a file; --out names a folder for the demo's files")
    check_writable(out / "model.pt", "the demo's files")  # makes the folder; before training
    t_all = time.time()
    epochs = args.epochs or DEMO_EPOCHS

    _step(1, f"train a binary MLP 784-256-256-10 on {DEMO_DATA} ({epochs} epochs, CPU)")
    data = load_dataset(DEMO_DATA)
    print(data.summary())
    trained = api.train(DEMO_PRESET, out / "model.pt", data=data, epochs=epochs)
    print(f"test accuracy (PyTorch, float32): {trained.metrics['test_acc']:.4f} "
          f"in {trained.metrics['minutes']:.1f} min")

    _step(2, "convert to an integer-only model (thresholds from the model's own batch norm)")
    model = api.load(out / "model.pt")
    digest = model.save(out / "model.bnn")
    print(f"wrote {out / 'model.bnn'} (hash {digest[:16]})")
    print(model.summary())

    _step(3, "generate C for Cortex-M4")
    files = api.generate(model, out / "c", core="cortex-m4", force=True).files
    print(f"wrote {len(files)} files to {out / 'c'} (see its README.md for the API)")

    _step(4, "parity: PyTorch (eval) vs emulator, every hidden bit, whole test set")
    rep = api.verify(model, data)
    print(rep.table())

    _step(5, "parity: emulator vs generated C on the host and on QEMU boards, whole test set")
    rows = [row for target in ["host"] + [f"qemu:{b}" for b in DEMO_BOARDS]
            for row in api.verify(model, data, target=target, stream=200, trace=8,
                                  count=False).devices]
    print(device_table(rows))

    _step(6, "exact instruction counts per layer (QEMU TCG plugin)")
    for board in DEMO_BOARDS:
        print(api.bench(model, f"qemu:{board}", x=data.test_x[0]).table())
        print()

    ok = rep.ok and all(r.ok for r in rows)
    print(f"demo finished in {(time.time() - t_all) / 60:.1f} min: "
          + ("PARITY OK on every level" if ok else "PARITY FAILED"))
    return 0 if ok else 1
