#!/usr/bin/env python3
"""Train the MCU presets on Fashion-MNIST with their default recipes and print test accuracy and minutes.

    .venv/bin/python benchmarks/train_presets.py [--runs mlp cnn cnn-64] [--threads N] [--epochs N]

Each run is what `bnn-mcu train --preset P [--width 64]` does with no other option (the
preset's recipe, nn/train.py PRESET_RECIPES); the model is then converted and checked:
PyTorch (eval) vs the integer emulator on the whole test set (every hidden bit), so the
accuracy printed is the deployed model's. Targets (issue 12): mlp >= 89.0 %, cnn (width 32)
>= 91.5 %, cnn width 64 >= 92.5 %, each within 30 minutes on 2 CPU threads. The minutes
depend on the machine's load: the table says how many threads were used and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tabulate import tabulate

# name: (preset, width, target test accuracy)
RUNS = {"mlp": ("mlp", None, 0.890), "cnn": ("cnn", None, 0.915), "cnn-64": ("cnn", 64, 0.925)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: train's own choice)")
    ap.add_argument("--epochs", type=int, help="override the recipes' epochs (a quick look)")
    ap.add_argument("--device", default="auto", help="auto (a CUDA GPU when there is one), cpu, cuda")
    ap.add_argument("--out", default="out/train-bench")
    args = ap.parse_args()

    from bnn_mcu.data import load_dataset
    from bnn_mcu.models import convert_program
    from bnn_mcu.nn.export import load_program
    from bnn_mcu.nn.presets import ModelConfig
    from bnn_mcu.nn.train import recipe, train
    from bnn_mcu.verify import verify_against_pytorch

    data = load_dataset("fashion-mnist")
    rows, ok = [], True
    for name in args.runs:
        preset, width, target = RUNS[name]
        tc = recipe(preset, threads=args.threads, epochs=args.epochs, device=args.device)
        out = Path(args.out) / f"{name}.pt"
        load = os.getloadavg()[0]
        t0 = time.time()
        m = train(ModelConfig(preset, data.image_shape, data.num_classes, width=width), tc, data,
                  out, progress=True)
        minutes = (time.time() - t0) / 60
        ep = load_program(out)
        rep = verify_against_pytorch(ep, convert_program(ep, out.name), data.test_x, data.test_y)
        passed = m["test_acc"] >= target
        ok &= passed and rep.ok
        rows.append([name, width or "default", _recipe_text(tc), f"{minutes:.1f}",
                     m["device"], f"{m['threads']} (load {load:.1f})", m["best_epoch"], f"{m['val_acc']:.4f}",
                     f"{m['test_acc']:.4f}", f"{rep.correct_dev / rep.vectors:.4f}",
                     "OK" if rep.ok else "FAILED",
                     f">= {target:.3f} {'PASS' if passed else 'FAIL'}"])
    print(tabulate(rows, headers=["run", "width", "recipe", "minutes", "device", "threads", "best epoch",
                                  "val acc", "test acc (PyTorch)", "test acc (integer)", "parity",
                                  "target"],
                   tablefmt="simple", disable_numparse=True))
    return 0 if ok else 1


def _recipe_text(tc) -> str:
    parts = [f"{tc.epochs} ep", f"{tc.lr_schedule} {tc.lr_start:g}->{tc.lr_end:g}"]
    if tc.loss != "ce":
        parts.append(f"{tc.loss} loss")
    if tc.augment != "none":
        parts.append(tc.augment)
    if tc.distill:
        parts.append(f"distill {tc.distill}")
    if tc.two_stage:
        parts.append(f"two-stage {tc.two_stage}")
    if tc.label_smoothing:
        parts.append(f"smoothing {tc.label_smoothing:g}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
