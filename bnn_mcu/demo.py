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
    from .bench import bench_qemu, bench_table
    from .codegen.project import generate_project
    from .data import load_dataset
    from .ir import bnnfile
    from .models import convert_program
    from .nn.export import load_program
    from .nn.presets import ModelConfig
    from .nn.train import TrainConfig, train
    from .summary import summary_table
    from .targets.session import Target, run_on_device
    from .verify import compare_device, device_table, report_table, verify_against_pytorch
    from . import emulator

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BnnError(f"{out}: is a file; --out names a folder for the demo's files")
    check_writable(out / "model.pt", "the demo's files")  # makes the folder; before training
    t_all = time.time()
    epochs = args.epochs or DEMO_EPOCHS

    _step(1, f"train a binary MLP 784-256-256-10 on {DEMO_DATA} ({epochs} epochs, CPU)")
    data = load_dataset(DEMO_DATA)
    print(data.summary())
    mcfg = ModelConfig(DEMO_PRESET, data.image_shape, data.num_classes)
    metrics = train(mcfg, TrainConfig(epochs=epochs), data, out / "model.pt")
    print(f"test accuracy (PyTorch, float32): {metrics['test_acc']:.4f} "
          f"in {metrics['minutes']:.1f} min")

    _step(2, "convert to an integer-only model (thresholds from the model's own batch norm)")
    ep = load_program(out / "model.pt")
    model = convert_program(ep, "model.pt")
    digest = bnnfile.save(model, out / "model.bnn")
    print(f"wrote {out / 'model.bnn'} (hash {digest[:16]})")
    print(summary_table(model))

    _step(3, "generate C for Cortex-M4")
    files = generate_project(model, out / "c", core="cortex-m4", force=True)
    print(f"wrote {len(files)} files to {out / 'c'} (see its README.md for the API)")

    _step(4, "parity: PyTorch (eval) vs emulator, every hidden bit, whole test set")
    rep = verify_against_pytorch(ep, model, data.test_x, data.test_y)
    print(report_table(rep))

    _step(5, "parity: emulator vs generated C on the host and on QEMU boards, whole test set")
    emu = emulator.run(model, data.test_x, trace=True)
    rows = []
    for target in [Target("host", "host")] + [Target("qemu", b) for b in DEMO_BOARDS]:
        res = run_on_device(model, target, data.test_x, stream=200, trace=8)
        rows.append(compare_device(model, res, emu, data.test_y))
    print(device_table(rows))

    _step(6, "exact instruction counts per layer (QEMU TCG plugin)")
    for board in DEMO_BOARDS:
        print(bench_table(bench_qemu(model, board, data.test_x[0])))
        print()

    ok = rep.ok and all(r.ok for r in rows)
    print(f"demo finished in {(time.time() - t_all) / 60:.1f} min: "
          + ("PARITY OK on every level" if ok else "PARITY FAILED"))
    return 0 if ok else 1
