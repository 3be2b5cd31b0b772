#!/usr/bin/env python3
"""Train the MCU presets on Fashion-MNIST on this CPU and print test accuracy and minutes.

    .venv/bin/python benchmarks/train_presets.py [--presets mlp cnn] [--epochs-mlp 30] [--epochs-cnn 20]

Each model is also converted and checked: PyTorch (eval) vs the integer emulator on the whole
test set (every hidden bit), so the accuracy printed is the deployed model's accuracy too.
Targets (issue 2): mlp >= 88 %, cnn >= 91 %.
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
    ap.add_argument("--epochs-cnn", type=int, default=20)
    ap.add_argument("--out", default="out/train-bench")
    ap.add_argument("--threads", type=int, default=None)
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
        epochs = args.epochs_mlp if preset == "mlp" else args.epochs_cnn
        out = Path(args.out) / f"{preset}.pt"
        t0 = time.time()
        m = train(ModelConfig(preset, data.image_shape, data.num_classes),
                  TrainConfig(epochs=epochs, threads=args.threads), data, out, progress=True)
        minutes = (time.time() - t0) / 60
        ep = load_program(out)
        rep = verify_against_pytorch(ep, convert_program(ep, out.name), data.test_x, data.test_y)
        target = TARGETS.get(preset)
        passed = target is None or m["test_acc"] >= target
        ok &= passed and rep.ok
        rows.append([preset, epochs, f"{minutes:.1f}", m["best_epoch"], f"{m['val_acc']:.4f}",
                     f"{m['test_acc']:.4f}", f"{rep.correct_dev / rep.vectors:.4f}",
                     "OK" if rep.ok else "FAILED",
                     "-" if target is None else f">= {target:.2f} {'PASS' if passed else 'FAIL'}"])
    print(tabulate(rows, headers=["preset", "epochs", "minutes", "best epoch", "val acc",
                                  "test acc (PyTorch)", "test acc (integer)", "parity", "target"],
                   tablefmt="simple", disable_numparse=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
