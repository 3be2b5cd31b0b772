#!/usr/bin/env python3
"""Train the MCU presets on Fashion-MNIST on this CPU and print test accuracy and minutes.

    .venv/bin/python benchmarks/train_presets.py [--presets mlp cnn] [--epochs-mlp 30]
        [--epochs-cnn 15] [--width-cnn 64] [--lr-end-cnn 1e-4] [--threads 2]

Each model is also converted and checked: PyTorch (eval) vs the integer emulator on the whole
test set (every hidden bit), so the accuracy printed is the deployed model's accuracy too.
Targets (issue 2): mlp >= 88 %, cnn >= 91 %. The budget: the mlp preset as it is (30 epochs,
cross-entropy, Glorot-scaled learning rates, LR 3e-3 decayed to 3e-7); the cnn preset at base
width 64 (conv64-pool-conv128-pool-fc256-fc10) for 15 epochs with the LR decayed to 1e-4 only:
decayed to 3e-7 over so few epochs, the last third of the run learns nothing (measured: width
64, 3e-7: 90.97 %; width 32, 20 epochs: 90.15 %).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tabulate import tabulate

TARGETS = {"mlp": 0.88, "cnn": 0.91}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--epochs-mlp", type=int, default=30)
    ap.add_argument("--epochs-cnn", type=int, default=15)
    ap.add_argument("--width-cnn", type=int, default=64, help="base channels of the cnn preset")
    ap.add_argument("--lr-end-cnn", type=float, default=1e-4)
    ap.add_argument("--out", default="out/train-bench")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (results depend "
                    "slightly on it: float sums in another order)")
    args = ap.parse_args()

    from bnn_mcu.data import load_dataset
    from bnn_mcu.models import convert_program
    from bnn_mcu.nn.export import load_program
    from bnn_mcu.nn.presets import ModelConfig
    from bnn_mcu.nn.train import TrainConfig, train
    from bnn_mcu.verify import verify_against_pytorch

    data = load_dataset("fashion-mnist")
    rows, ok = [], True
    for preset in args.presets:
        cnn = preset == "cnn"
        epochs = args.epochs_cnn if cnn else args.epochs_mlp
        width = args.width_cnn if cnn else None
        tc = TrainConfig(epochs=epochs, threads=args.threads)
        if cnn:
            tc.lr_end = args.lr_end_cnn
        out = Path(args.out) / f"{preset}.pt"
        t0 = time.time()
        m = train(ModelConfig(preset, data.image_shape, data.num_classes, width=width), tc, data,
                  out, progress=True)
        minutes = (time.time() - t0) / 60
        ep = load_program(out)
        rep = verify_against_pytorch(ep, convert_program(ep, out.name), data.test_x, data.test_y)
        target = TARGETS.get(preset)
        passed = target is None or m["test_acc"] >= target
        ok &= passed and rep.ok
        rows.append([preset, width or "default", epochs, f"{tc.lr_end:g}", f"{minutes:.1f}",
                     m["best_epoch"], f"{m['val_acc']:.4f}",
                     f"{m['test_acc']:.4f}", f"{rep.correct_dev / rep.vectors:.4f}",
                     "OK" if rep.ok else "FAILED",
                     "-" if target is None else f">= {target:.2f} {'PASS' if passed else 'FAIL'}"])
    print(tabulate(rows, headers=["preset", "width", "epochs", "LR end", "minutes", "best epoch",
                                  "val acc", "test acc (PyTorch)", "test acc (integer)", "parity",
                                  "target"],
                   tablefmt="simple", disable_numparse=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
