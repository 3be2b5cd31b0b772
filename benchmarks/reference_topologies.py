"""Reference topologies as BNNs, measured exactly on the QEMU boards, beside the int8 figures.

    .venv/bin/python benchmarks/reference_topologies.py [--boards mps2-an386,microbit] [--opt -O2]
                                                         [--runs 2] [--json out.json]

Builds three integer models with bnn_mcu.ir.synthetic (random weights and thresholds: the
kernels' instruction counts do not depend on the values, only on the shapes):

  mlp    784-256-256-10: uint8 28x28 input -> bnn_dense_u8_b1 -> bnn_bdense_b1 -> bnn_bdense_s32
  cnn    conv3x3x32 (uint8 input, zero padding 1, zero point 128) - maxpool 2 - bconv3x3x64
         (+1 padding) - maxpool 2 - fc128 - fc10 (BN-only scores), on 28x28x1
  d1024  a binary dense 1024 -> 1024 layer (behind a small uint8 layer that feeds it, and an
         s32 head): only that layer's count is used

and counts the instructions of every layer with the project's TCG plugin (exact, identical
run to run: each measurement is repeated --runs times and compared). Prints, per board, a
per-layer table, our figures beside Arm's CMSIS-NN int8 figures (TARGETS.md), the ratios, and
one PASS/FAIL line per acceptance target of issue 6.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnn_mcu.ir.synthetic import random_model  # noqa: E402
from bnn_mcu.summary import totals  # noqa: E402
from bnn_mcu.targets.boards import QEMU_BOARDS, get_board  # noqa: E402
from bnn_mcu.targets.session import count_instructions  # noqa: E402

TOPOLOGIES = {
    "mlp": ((28, 28, 1), [("dense", dict(out=256)), ("dense", dict(out=256)),
                          ("dense", dict(out=10))]),
    "cnn": ((28, 28, 1), [("conv", dict(out=32, k=3, pad=1, zero_point=128)), ("pool", dict(k=2)),
                          ("conv", dict(out=64, k=3, pad=1, pad_value=1)), ("pool", dict(k=2)),
                          ("dense", dict(out=128)), ("dense", dict(out=10))]),
    "d1024": ((1, 1, 32), [("dense", dict(out=1024)), ("dense", dict(out=1024)),
                           ("dense", dict(out=10))]),
}
D1024_LAYER = 1  # the binary 1024 -> 1024 layer of the d1024 model

# Arm CMSIS-NN int8 kernels, measured on QEMU with an exact instruction counter, -O2
# (/work/shared/TARGETS.md). Keyed by core.
INT8_INSTRUCTIONS = {
    ("mlp", "cortex-m4"): 535_779,
    ("mlp", "cortex-m0"): 1_686_121,
    ("cnn", "cortex-m4"): 9_762_819,
}
INT8_WEIGHT_BYTES = {"mlp": 270_888, "cnn": 423_112}
INT8_ARENA_BYTES = {"cnn": 32.5 * 1024}

# Issue 6 acceptance (Cortex-M4 = mps2-an386, Cortex-M0 = microbit).
TARGETS = [
    # (label, topology, core, kind, bound)
    ("binary dense 1024->1024 >= 4 MACs/instruction", "d1024", "cortex-m4", "macs_per_instr", 4.0),
    ("CNN <= 1,220,000 instructions", "cnn", "cortex-m4", "instructions", 1_220_000),
    ("MLP <= 214,000 instructions", "mlp", "cortex-m4", "instructions", 214_000),
    ("MLP <= 421,000 instructions", "mlp", "cortex-m0", "instructions", 421_000),
]


def build_models(seed: int = 1) -> dict:
    return {name: random_model(seed, shape, layers) for name, (shape, layers) in TOPOLOGIES.items()}


def measure(model, board: str, runs: int, opt: str) -> dict:
    """Exact per-layer counts, `runs` times; raises if two runs differ."""
    x = np.random.default_rng(0).integers(0, 256, size=model.input_shape, dtype=np.uint8)
    results = []
    for _ in range(runs):
        ic = count_instructions(model, board, x, opt=opt)
        results.append((tuple(int(n) for n in ic.layers), int(ic.tail), ic.stack_used))
    same = all(r[:2] == results[0][:2] for r in results)
    layers, tail, stack = results[0]
    return {"layers": list(layers), "tail": tail, "per_inference": sum(layers) + tail,
            "stack_bytes": stack, "identical_runs": same, "runs": runs}


def fmt_int(v) -> str:
    return f"{int(v):,}"


def layer_table(model, m: dict) -> str:
    rows = [f"    {'#':>2} {'layer':8} {'kernel':18} {'input':>10} {'output':>10} "
            f"{'MACs':>11} {'instructions':>13} {'MACs/instr':>10} {'share':>6}"]
    total = m["per_inference"]
    for i, (op, n) in enumerate(zip(model.ops, m["layers"])):
        shape_in = "x".join(map(str, op.in_shape))
        shape_out = "x".join(map(str, op.out_shape))
        per = f"{op.macs / n:.2f}" if op.macs and n else ""
        rows.append(f"    {i:>2} {op.name:8} {op.c_function:18} {shape_in:>10} {shape_out:>10} "
                    f"{fmt_int(op.macs):>11} {fmt_int(n):>13} {per:>10} {100 * n / total:5.1f}%")
    rows.append(f"    {'':>2} {'argmax+return':48} {'':>11} {fmt_int(m['tail']):>13}")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default=",".join(QEMU_BOARDS),
                    help="comma-separated QEMU boards (default: all six)")
    ap.add_argument("--topologies", default=",".join(TOPOLOGIES))
    ap.add_argument("--runs", type=int, default=2, help="measure each this many times (compared)")
    ap.add_argument("--opt", default="-O2")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    args = ap.parse_args(argv)

    boards = [b for b in args.boards.split(",") if b]
    names = [t for t in args.topologies.split(",") if t]
    models = build_models(args.seed)
    results: dict = {}
    for board in boards:
        core = get_board(board).core
        print(f"\n=== {board} ({core}), {args.opt}, exact instruction counts (QEMU TCG plugin) ===")
        for name in names:
            model = models[name]
            m = measure(model, board, args.runs, args.opt)
            t = totals(model)
            m.update(flash_bytes=t["flash_bytes"], arena_bytes=t["arena_bytes"], macs=model.macs)
            results[(board, name)] = m
            ident = "identical" if m["identical_runs"] else "DIFFERENT"
            print(f"\n  {name}: {fmt_int(m['per_inference'])} instructions per inference "
                  f"({model.macs / m['per_inference']:.2f} MACs/instr; {m['runs']} runs {ident}); "
                  f"weights+thresholds {fmt_int(t['flash_bytes'])} B, arena "
                  f"{fmt_int(t['arena_bytes'])} B, stack high-water {fmt_int(m['stack_bytes'])} B")
            print(layer_table(model, m))
        print(f"\n  versus int8 (CMSIS-NN) on {core}:")
        print(f"    {'figure':38} {'BNN':>12} {'int8':>12} {'int8/BNN':>9}")
        for name in names:
            m = results[(board, name)]
            ref = INT8_INSTRUCTIONS.get((name, core))
            if ref:
                print(f"    {name + ' instructions per inference':38} {fmt_int(m['per_inference']):>12} "
                      f"{fmt_int(ref):>12} {ref / m['per_inference']:8.2f}x")
            if name in INT8_WEIGHT_BYTES:
                ref = INT8_WEIGHT_BYTES[name]
                print(f"    {name + ' weights+thresholds (B)':38} {fmt_int(m['flash_bytes']):>12} "
                      f"{fmt_int(ref):>12} {ref / m['flash_bytes']:8.2f}x")
            if name in INT8_ARENA_BYTES:
                ref = INT8_ARENA_BYTES[name]
                print(f"    {name + ' activation arena (B)':38} {fmt_int(m['arena_bytes']):>12} "
                      f"{fmt_int(ref):>12} {ref / m['arena_bytes']:8.2f}x")
            if name == "d1024":
                n = m["layers"][D1024_LAYER]
                macs = models[name].ops[D1024_LAYER].macs
                print(f"    {'bdense 1024->1024 MACs/instruction':38} {macs / n:12.2f} "
                      f"{0.50:12.2f} {macs / n / 0.50:8.2f}x  (int8: MLP MACs/instr on M4)")

    print("\n=== acceptance (issue 6) ===")
    verdicts = []
    for label, name, core, kind, bound in TARGETS:
        hits = [(b, results[(b, name)]) for b in boards
                if (b, name) in results and get_board(b).core == core]
        for board, m in hits:
            if kind == "macs_per_instr":
                v = models[name].ops[D1024_LAYER].macs / m["layers"][D1024_LAYER]
                ok, shown = v >= bound, f"{v:.2f}"
            else:
                v = m["per_inference"]
                ok, shown = v <= bound, fmt_int(v)
            verdicts.append(ok)
            print(f"  {'PASS' if ok else 'FAIL'}  {board:11} {label}: {shown}")
    memory = [("flash_bytes", "weights+thresholds", 7, INT8_WEIGHT_BYTES),
              ("arena_bytes", "activation arena", 6, INT8_ARENA_BYTES)]
    for key, what, factor, refs in memory:  # the same on every board: the first one's
        for name, ref in refs.items():
            if (boards[0], name) in results:
                v = results[(boards[0], name)][key]
                ok = v * factor <= ref
                verdicts.append(ok)
                print(f"  {'PASS' if ok else 'FAIL'}  {'':11} {name} {what} <= 1/{factor} of int8 "
                      f"({fmt_int(ref / factor)} B): {fmt_int(v)} B")
    same = all(m["identical_runs"] for m in results.values())
    verdicts.append(same)
    print(f"  {'PASS' if same else 'FAIL'}  {'':11} counts identical on {args.runs} runs of every "
          f"measurement")
    if args.json:
        args.json.write_text(json.dumps({f"{b}/{n}": m for (b, n), m in results.items()}, indent=2))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
