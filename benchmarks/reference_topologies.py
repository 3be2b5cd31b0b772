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
run to run: each measurement is repeated --runs times and compared), with the plugin's cycle
estimate for the board's core beside them. Prints, per board, a per-layer table; then our
figures beside Arm's CMSIS-NN int8 figures on the same core only (instructions, estimated
cycles), the ratios, one PASS/FAIL line per acceptance target of issue 13, and the README's
"Figures" tables in Markdown, generated from this run.
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
# (/work/shared/TARGETS.md), keyed by (topology, core): compared only on the same core.
INT8_INSTRUCTIONS = {
    ("mlp", "cortex-m4"): 535_779,
    ("mlp", "cortex-m0"): 1_686_121,
    ("cnn", "cortex-m4"): 9_762_819,
}
INT8_MACS = {"mlp": 784 * 256 + 256 * 256 + 256 * 10,
             "cnn": 28 * 28 * 32 * 9 + 14 * 14 * 64 * 9 * 32 + 7 * 7 * 64 * 128 + 128 * 10}
INT8_WEIGHT_BYTES = {"mlp": 270_888, "cnn": 423_112}
INT8_ARENA_BYTES = {"cnn": 32.5 * 1024}
# Estimated cycles of those int8 runs with the same plugin and weights, when measured
# (CMSIS-NN is not part of this repository); absent: only the bound below is printed.
INT8_CYCLES_EST: dict = {}
# Cores that issue one instruction per cycle at most: there, int8 cycles >= int8 instructions,
# a bound that needs no cycle model (not so on the dual-issue Cortex-M7).
SINGLE_ISSUE = {"cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m33"}

# Acceptance targets of issue 13 (instructions; Cortex-M4 = mps2-an386, Cortex-M0 = microbit).
TARGETS = [
    # (label, topology, core, kind, bound); kind "first_layer" = layer 0 of the topology
    ("MLP first layer <= 120,000 instructions", "mlp", "cortex-m4", "first_layer", 120_000),
    ("MLP <= 145,000 instructions", "mlp", "cortex-m4", "instructions", 145_000),
    ("MLP first layer <= 190,000 instructions", "mlp", "cortex-m0", "first_layer", 190_000),
    ("MLP <= 250,000 instructions", "mlp", "cortex-m0", "instructions", 250_000),
    ("binary dense 1024->1024 >= 4.4 MACs/instruction", "d1024", "cortex-m4", "macs_per_instr", 4.4),
    ("binary dense 1024->1024 >= 2.3 MACs/instruction", "d1024", "cortex-m0", "macs_per_instr", 2.3),
    ("CNN <= 1,000,000 instructions", "cnn", "cortex-m4", "instructions", 1_000_000),
    ("CNN <= 2,400,000 instructions", "cnn", "cortex-m0", "instructions", 2_400_000),
]
TITLES = {"mlp": "MLP 784-256-256-10", "cnn": "CNN conv32-pool-conv64-pool-fc128-fc10",
          "d1024": "binary dense 1024 -> 1024 (that layer)"}


def build_models(seed: int = 1) -> dict:
    return {name: random_model(seed, shape, layers) for name, (shape, layers) in TOPOLOGIES.items()}


def measure(model, board: str, runs: int, opt: str) -> dict:
    """Exact per-layer instructions and estimated cycles, `runs` times (compared)."""
    x = np.random.default_rng(0).integers(0, 256, size=model.input_shape, dtype=np.uint8)
    results = []
    for _ in range(runs):
        ic = count_instructions(model, board, x, opt=opt)
        results.append((tuple(int(n) for n in ic.layers), int(ic.tail),
                        tuple(int(c) for c in ic.cycles_layers), int(ic.cycles_tail),
                        ic.stack_used))
    same = all(r[:4] == results[0][:4] for r in results)
    layers, tail, cycles, cycles_tail, stack = results[0]
    return {"layers": list(layers), "tail": tail, "per_inference": sum(layers) + tail,
            "cycles_layers": list(cycles), "cycles_tail": cycles_tail,
            "cycles_est": sum(cycles) + cycles_tail,
            "stack_bytes": stack, "identical_runs": same, "runs": runs}


def fmt_int(v) -> str:
    return f"{int(v):,}"


def layer_table(model, m: dict) -> str:
    rows = [f"    {'#':>2} {'layer':8} {'kernel':18} {'input':>10} {'output':>10} "
            f"{'MACs':>11} {'instructions':>13} {'cycles (est.)':>14} {'MACs/instr':>10} {'share':>6}"]
    total = m["per_inference"]
    for i, (op, n, c) in enumerate(zip(model.ops, m["layers"], m["cycles_layers"])):
        shape_in = "x".join(map(str, op.in_shape))
        shape_out = "x".join(map(str, op.out_shape))
        per = f"{op.macs / n:.2f}" if op.macs and n else ""
        rows.append(f"    {i:>2} {op.name:8} {op.c_function:18} {shape_in:>10} {shape_out:>10} "
                    f"{fmt_int(op.macs):>11} {fmt_int(n):>13} {fmt_int(c):>14} {per:>10} "
                    f"{100 * n / total:5.1f}%")
    rows.append(f"    {'':>2} {'argmax+return':48} {'':>11} {fmt_int(m['tail']):>13} "
                f"{fmt_int(m['cycles_tail']):>14}")
    return "\n".join(rows)


def d1024_rates(models: dict, m: dict) -> tuple[float, float]:
    """(binary MACs per instruction, per estimated cycle) of the 1024 -> 1024 layer."""
    macs = models["d1024"].ops[D1024_LAYER].macs
    return macs / m["layers"][D1024_LAYER], macs / m["cycles_layers"][D1024_LAYER]


def int8_cycles(name: str, core: str) -> tuple[str, float | None]:
    """The int8 cycle figure on `core`: a measured estimate, else the single-issue bound
    cycles >= instructions; (text, value for the ratio)."""
    if (name, core) in INT8_CYCLES_EST:
        v = INT8_CYCLES_EST[(name, core)]
        return fmt_int(v), v
    ref = INT8_INSTRUCTIONS.get((name, core))
    if ref and core in SINGLE_ISSUE:
        return f">= {fmt_int(ref)}", ref
    return "-", None


def comparison_rows(models: dict, results: dict, boards: list, names: list) -> list:
    """Like with like: our figures and the int8 ones on the same core, for every core that has
    an int8 figure. Rows of (figure, core, ours, int8, int8/ours)."""
    rows = []
    for board in boards:
        core = get_board(board).core
        for name in names:
            m = results.get((board, name))
            if m is None:
                continue
            if name == "d1024":
                int8_rate = [INT8_MACS[t] / INT8_INSTRUCTIONS[(t, c)]
                             for (t, c) in INT8_INSTRUCTIONS if c == core and t == "mlp"]
                if int8_rate:
                    per_instr, per_cycle = d1024_rates(models, m)
                    rows.append(("bdense 1024->1024 MACs/instruction (int8: MLP)", core,
                                 f"{per_instr:.2f}", f"{int8_rate[0]:.2f}",
                                 f"{per_instr / int8_rate[0]:.1f}x"))
                    if core in SINGLE_ISSUE:  # int8 MACs per cycle <= its MACs per instruction
                        rows.append(("bdense 1024->1024 MACs/est. cycle (int8: MLP)", core,
                                     f"{per_cycle:.2f}", f"<= {int8_rate[0]:.2f}",
                                     f">= {per_cycle / int8_rate[0]:.1f}x"))
                continue
            ref = INT8_INSTRUCTIONS.get((name, core))
            if ref is None:
                continue
            rows.append((f"{name} instructions per inference", core, fmt_int(m["per_inference"]),
                         fmt_int(ref), f"{ref / m['per_inference']:.1f}x"))
            text, value = int8_cycles(name, core)
            bound = text.startswith(">=")
            rows.append((f"{name} estimated cycles per inference", core, fmt_int(m["cycles_est"]),
                         text, (">= " if bound else "") + f"{value / m['cycles_est']:.1f}x"
                         if value else "-"))
    return rows


def markdown(models: dict, results: dict, boards: list, names: list) -> str:
    """The README's Figures tables, generated from this run."""
    out = ["| figure | core | BNN (this project) | CMSIS-NN int8 | int8 / BNN |", "|---|---|---|---|---|"]
    for fig, core, ours, int8, ratio in comparison_rows(models, results, boards, names):
        name = fig.split(" ", 1)[0]
        label = TITLES.get(name, name) + " " + fig.split(" ", 1)[1]
        out.append(f"| {label} | {core} | {ours} | {int8} | {ratio} |")
    first = boards[0]
    for name in names:
        if name in INT8_WEIGHT_BYTES and (first, name) in results:
            v, ref = results[(first, name)]["flash_bytes"], INT8_WEIGHT_BYTES[name]
            out.append(f"| {TITLES[name]} weights + thresholds | any | {fmt_int(v)} B | "
                       f"{fmt_int(ref)} B | {ref / v:.1f}x |")
        if name in INT8_ARENA_BYTES and (first, name) in results:
            v, ref = results[(first, name)]["arena_bytes"], INT8_ARENA_BYTES[name]
            out.append(f"| {TITLES[name]} activation arena | any | {fmt_int(v)} B | "
                       f"{ref / 1024:.1f} KB | {ref / v:.1f}x |")
    out += ["", "| model | " + " | ".join(f"{get_board(b).core.replace('cortex-', '')} ({b})"
                                         for b in boards) + " |",
            "|---|" + "---|" * len(boards)]
    for name in names:
        cells = []
        for b in boards:
            m = results.get((b, name))
            if m is None:
                cells.append("")
            elif name == "d1024":
                per_instr, per_cycle = d1024_rates(models, m)
                cells.append(f"{per_instr:.2f} / {per_cycle:.2f}")
            else:
                cells.append(f"{fmt_int(m['per_inference'])} / {fmt_int(m['cycles_est'])}")
        unit = ("binary MACs per instruction / per est. cycle" if name == "d1024"
                else "instructions / est. cycles")
        out.append(f"| {TITLES[name]}: {unit} | " + " | ".join(cells) + " |")
    return "\n".join(out)


BEGIN, END = "<!-- figures:begin (benchmarks/reference_topologies.py) -->", "<!-- figures:end -->"


def update_readme(path: Path, tables: str) -> None:
    """Replace what lies between the two markers with the generated tables."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to replace between")
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + tables + "\n" + END + rest.split(END, 1)[1])
    print(f"updated {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default=",".join(QEMU_BOARDS),
                    help="comma-separated QEMU boards (default: all six)")
    ap.add_argument("--topologies", default=",".join(TOPOLOGIES))
    ap.add_argument("--runs", type=int, default=2, help="measure each this many times (compared)")
    ap.add_argument("--opt", default="-O2")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    ap.add_argument("--update-readme", type=Path, metavar="README",
                    help="replace the tables between the figures markers of this README")
    args = ap.parse_args(argv)

    boards = [b for b in args.boards.split(",") if b]
    names = [t for t in args.topologies.split(",") if t]
    models = build_models(args.seed)
    results: dict = {}
    for board in boards:
        core = get_board(board).core
        print(f"\n=== {board} ({core}), {args.opt}: exact instructions and estimated {core} cycles "
              "(QEMU TCG plugin) ===")
        for name in names:
            model = models[name]
            m = measure(model, board, args.runs, args.opt)
            t = totals(model)
            m.update(flash_bytes=t["flash_bytes"], arena_bytes=t["arena_bytes"], macs=model.macs)
            results[(board, name)] = m
            ident = "identical" if m["identical_runs"] else "DIFFERENT"
            print(f"\n  {name}: {fmt_int(m['per_inference'])} instructions, "
                  f"{fmt_int(m['cycles_est'])} estimated cycles per inference "
                  f"({model.macs / m['per_inference']:.2f} MACs/instr; {m['runs']} runs {ident}); "
                  f"weights+thresholds {fmt_int(t['flash_bytes'])} B, arena "
                  f"{fmt_int(t['arena_bytes'])} B, stack high-water {fmt_int(m['stack_bytes'])} B")
            print(layer_table(model, m))

    rows = comparison_rows(models, results, boards, names)
    print("\n=== versus CMSIS-NN int8, same core (int8 instructions: TARGETS.md; int8 cycles: the "
          "plugin's estimate when measured, else the single-issue bound cycles >= instructions) ===")
    print(f"  {'figure':48} {'core':10} {'BNN':>12} {'int8':>14} {'int8/BNN':>9}")
    for fig, core, ours, int8, ratio in rows:
        print(f"  {fig:48} {core:10} {ours:>12} {int8:>14} {ratio:>9}")

    print("\n=== acceptance (issue 13) ===")
    verdicts = []
    for label, name, core, kind, bound in TARGETS:
        hits = [(b, results[(b, name)]) for b in boards
                if (b, name) in results and get_board(b).core == core]
        for board, m in hits:
            if kind == "macs_per_instr":
                v = d1024_rates(models, m)[0]
                ok, shown = v >= bound, f"{v:.2f}"
            else:
                v = m["layers"][0] if kind == "first_layer" else m["per_inference"]
                ok, shown = v <= bound, fmt_int(v)
            verdicts.append(ok)
            print(f"  {'PASS' if ok else 'FAIL'}  {board:11} {label}: {shown}")
    same = all(m["identical_runs"] for m in results.values())
    verdicts.append(same)
    print(f"  {'PASS' if same else 'FAIL'}  {'':11} instructions and estimated cycles identical on "
          f"{args.runs} runs of every measurement")

    print("\n=== README 'Figures' tables (generated) ===\n")
    tables = markdown(models, results, boards, names)
    print(tables)
    if args.update_readme:
        update_readme(args.update_readme, tables)
    if args.json:
        args.json.write_text(json.dumps({f"{b}/{n}": m for (b, n), m in results.items()}, indent=2))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
