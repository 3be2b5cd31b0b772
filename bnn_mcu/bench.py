"""`bnn-mcu bench`: exact per-layer instruction counts (QEMU) or cycles (a real board).

On QEMU boards the project's TCG plugin counts every executed instruction between the
firmware's bnn_port_mark() calls around each layer: exact and identical run to run. Beside
the count it estimates cycles for the board's core (`cycles_est`: each executed instruction
weighed by its class per the core's Technical Reference Manual, taken branches with their
pipeline refill; docs/performance.md): an estimate, also identical run to run. On a real
board (serial:PORT) the firmware's own BENCH counts DWT cycles (SysTick ticks on M0).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tabulate import tabulate

from .ir.ops import BConv2d, BDense, IntModel
from .summary import totals


@dataclass
class LayerBench:
    name: str
    op: str
    in_shape: str
    out_shape: str
    binary_macs: int
    int8_macs: int
    count: int
    cycles_est: int | None = None  # QEMU runs: the plugin's cycle estimate

    @property
    def macs(self) -> int:
        return self.binary_macs + self.int8_macs


@dataclass
class BenchReport:
    board: str
    core: str
    unit: str  # "instructions" (QEMU plugin) or "cycles"/"ticks"/"ns" (firmware counter)
    per_inference: int
    flash_bytes: int  # weights + thresholds
    code_bytes: int  # runtime kernels + model schedule (.text)
    arena_bytes: int
    stack_bytes: int
    firmware_flash_bytes: int
    firmware_ram_bytes: int
    layers: list = field(default_factory=list)
    tail: int = 0  # argmax and return
    counter_hz: int = 0  # rate of "ticks" (0: instructions or cycles)
    cycles_est: int | None = None  # per inference, QEMU runs (the plugin's estimate)
    tail_cycles_est: int | None = None
    clock_hz: int = 0  # the board's core clock (0: unknown)
    compiler: str = ""  # compiler and flags the kernels were built with (the ELF's DWARF)
    model_hash: str = ""
    tool_version: str = ""
    date: str = ""  # UTC, ISO 8601
    scratch_bytes: int = 0  # static scratch of the uint8 dense tables on this core (RAM)

    def to_json(self) -> dict:
        d = asdict(self)
        # per_inference: the exact count in its unit, and the cycle estimate beside it
        d["per_inference"] = {self.unit: self.per_inference}
        if self.cycles_est is not None:
            d["per_inference"]["cycles_est"] = self.cycles_est
        d["layers"] = [dict(asdict(l), macs=l.macs) for l in self.layers]
        return d


_MAP_SECTION = re.compile(r"^ (\.text\S*)\s*(?:0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+))?$")
_MAP_CONT = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$")


def code_bytes_from_map(map_path: Path) -> int:
    """.text bytes linked in from the runtime kernels and the generated model (the GNU ld map)."""
    try:
        lines = map_path.read_text().splitlines()
    except OSError:
        return 0
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("Linker script and memory map"))
    except StopIteration:
        return 0
    total, pending = 0, False
    for line in lines[start:]:
        m = _MAP_SECTION.match(line)
        if m:
            if m.group(2) is None:
                pending = True
                continue
            size, obj = int(m.group(3), 16), m.group(4)
        elif pending and _MAP_CONT.match(line):
            mc = _MAP_CONT.match(line)
            size, obj = int(mc.group(2), 16), mc.group(3)
        else:
            pending = False
            continue
        pending = False
        if "/kernels/" in obj or "/model/" in obj:
            total += size
    return total


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def fmt_seconds(t: float) -> str:
    """0.0417 -> "41.7 ms"; 0.000123 -> "123 us"."""
    if t >= 1:
        return f"{t:.3g} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


_PRODUCER = re.compile(r"DW_AT_producer\s*:\s*(?:\(indirect string, offset: \w+\):\s*)?(.*)")


def compiler_record(elf: Path) -> str:
    """The compiler and flags the firmware's C was built with: the most common DWARF producer
    string of its compile units (-g is always on), e.g. "GNU C99 12.2.1 ... -mcpu=cortex-m4 -O2"."""
    try:
        out = subprocess.run(["arm-none-eabi-readelf", "--debug-dump=info", str(elf)],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    producers = Counter(m.group(1).strip() for m in _PRODUCER.finditer(out))
    return producers.most_common(1)[0][0] if producers else ""


def run_record(model: IntModel) -> dict:
    """What identifies a run: model hash, tool version, date."""
    from . import __version__
    from .ir.bnnfile import model_hash

    return {"model_hash": model_hash(model), "tool_version": __version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def bench_qemu(model: IntModel, board: str, x: np.ndarray, emulated_memory: bool = False,
               opt: str = "-O2") -> BenchReport:
    from .targets.boards import get_board
    from .targets.session import count_instructions

    ic = count_instructions(model, board, x, emulated_memory, opt)
    t = totals(model, get_board(board).core)
    layers = []
    for op, n, c in zip(model.ops, ic.layers, ic.cycles_layers):
        binary = isinstance(op, (BDense, BConv2d))
        layers.append(LayerBench(op.name, op.c_function, _shape(op.in_shape), _shape(op.out_shape),
                                 op.macs if binary else 0, 0 if binary else op.macs, int(n), int(c)))
    fw = ic.firmware
    b = get_board(board)
    return BenchReport(b.name, b.core, "instructions", ic.per_inference,
                       t["flash_bytes"], code_bytes_from_map(fw.elf.with_suffix(".map")),
                       t["arena_bytes"], ic.stack_used, fw.flash_bytes, fw.ram_bytes, layers,
                       ic.tail, cycles_est=ic.cycles_per_inference, tail_cycles_est=ic.cycles_tail,
                       clock_hz=b.clock_hz, compiler=compiler_record(fw.elf),
                       scratch_bytes=t["scratch_bytes"], **run_record(model))


# Column header and "per ..." wording of each counter unit ("ns"[:-1] would read "n").
UNIT_SHORT = {"instructions": "instr.", "cycles": "cycle", "ticks": "tick", "ns": "ns"}
UNIT_ONE = {"instructions": "instruction", "cycles": "cycle", "ticks": "tick", "ns": "ns"}


def bench_table(r: BenchReport) -> str:
    est = r.cycles_est is not None
    rows = []
    for i, l in enumerate(r.layers):
        per = l.macs / l.count if l.count else 0.0
        rows.append([i, l.name, l.op, l.in_shape, l.out_shape, f"{l.binary_macs:,}",
                     f"{l.int8_macs:,}", f"{l.count:,}"] + ([f"{l.cycles_est:,}"] if est else [])
                    + [f"{per:.2f}", f"{100.0 * l.count / max(1, r.per_inference):.1f}%"])
    rows.append(["", "argmax+return", "", "", "", "", "", f"{r.tail:,}"]
                + ([f"{r.tail_cycles_est:,}"] if est else [])
                + ["", f"{100.0 * r.tail / max(1, r.per_inference):.1f}%"])
    unit = r.unit
    table = tabulate(rows, headers=["#", "layer", "kernel", "input", "output", "binary MACs",
                                    "int8 MACs", unit] + (["cycles (est.)"] if est else [])
                     + [f"MACs/{UNIT_SHORT.get(unit, unit)}", "share"],
                     tablefmt="simple", disable_numparse=True)
    macs = sum(l.macs for l in r.layers)
    rate = f", {r.counter_hz:,} ticks/s" if r.counter_hz else ""
    estimate = []
    if est:
        at = (f" = {fmt_seconds(r.cycles_est / r.clock_hz)} at {r.clock_hz / 1e6:g} MHz"
              if r.clock_hz else "")
        estimate = [f"estimated {r.core} cycles per inference: {r.cycles_est:,}{at} "
                    f"({r.cycles_est / max(1, r.per_inference):.2f} cycles per instruction; "
                    "TRM weights, docs/performance.md)"]
    return "\n".join([
        f"{r.board} ({r.core}): {r.per_inference:,} {unit} per inference "
        f"({macs / max(1, r.per_inference):.2f} MACs per {UNIT_ONE.get(unit, unit)}{rate})",
        *estimate, table, "",
        f"weights+thresholds (flash) {r.flash_bytes:,} B   code (kernels+model) {r.code_bytes:,} B   "
        f"arena {r.arena_bytes:,} B   "
        + (f"uint8 dense scratch {r.scratch_bytes:,} B   " if r.scratch_bytes else "")
        + f"stack high-water {r.stack_bytes:,} B",
        f"whole runner firmware: flash {r.firmware_flash_bytes:,} B, static RAM "
        f"{r.firmware_ram_bytes:,} B"])


def write_json(reports: list, single: bool) -> str:
    data = [r.to_json() for r in reports]
    return json.dumps(data[0] if single else data, indent=2)


def bench_firmware(model: IntModel, target, x: np.ndarray, repeats: int = 5) -> BenchReport:
    """Per-layer counts from the firmware's own counter (host ns, board cycles or ticks)."""
    from .targets.session import device

    with device(model, target, timeout=30.0) as (link, proc, fw):
        b = link.bench(np.ascontiguousarray(x.reshape(-1)), repeats=repeats, timeout=120.0)
        info = link.info()
    t = totals(model, info.core)
    layers = []
    for op, n in zip(model.ops, b.layers):
        binary = isinstance(op, (BDense, BConv2d))
        layers.append(LayerBench(op.name, op.c_function, _shape(op.in_shape), _shape(op.out_shape),
                                 op.macs if binary else 0, 0 if binary else op.macs, int(n)))
    code = code_bytes_from_map(fw.elf.with_suffix(".map")) if fw else 0
    return BenchReport(info.board, info.core, b.unit, int(b.total), t["flash_bytes"], code,
                       t["arena_bytes"], info.stack_used, fw.flash_bytes if fw else 0,
                       fw.ram_bytes if fw else 0, layers, int(b.total - sum(b.layers)),
                       counter_hz=info.counter_hz if b.unit == "ticks" else 0,
                       clock_hz=getattr(info, "clock_hz", 0) or 0,
                       compiler=compiler_record(fw.elf) if fw else "",
                       scratch_bytes=t["scratch_bytes"], **run_record(model))
