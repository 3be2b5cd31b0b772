"""Calibrate the QEMU plugin's cycle estimate against published cycle figures.

    .venv/bin/python benchmarks/cycle_calibration.py

Each case is a small Thumb sequence whose cycle count is published, either measured on real
silicon or stated by Arm's Technical Reference Manual. It is assembled here into a bare program
(vector table, `bl mark`, the sequence, `bl mark`, semihosting exit), run under QEMU with the
project's TCG plugin for the named core, and the plugin's estimate is printed beside the
published figure:

  - per-iteration cost of a `subs` + taken conditional branch delay loop: the difference between
    two loop lengths, so call overheads cancel;
  - a straight sequence: the window with the sequence minus the window without it.

The instruction counts are checked too (they must be exactly the sequence's length).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnn_mcu.targets.qemu import icount_plugin  # noqa: E402

BLAATSCHAAP = "blaatschaap.be, 'Wait a microsecond' (delay loop run from RAM, measured)"
M34_TRM = ("Arm Cortex-M3 TRM (DDI 0337) / Cortex-M4 TRM (DDI 0439), 'Load/store timings' "
           "worked examples")


@dataclass(frozen=True)
class Case:
    name: str
    board: str  # QEMU machine that runs the code (the core's timings are the plugin's `core`)
    core: str
    published: int  # cycles
    source: str
    body: str = ""  # a straight sequence (its cost: window with it minus window without)
    setup: str = ""  # before the first mark
    loop: bool = False  # the delay loop: cost per iteration
    at_least: bool = False  # the published figure is a minimum ("at least N cycles")


_RAM_SETUP = """
    ldr r1, =0x00000100
    ldr r2, =0x20000100
    ldr r3, =0x20000200
    movs r5, #16
"""

CASES = [
    Case("delay loop subs+bne, per iteration", "microbit", "cortex-m0", 4,
         BLAATSCHAAP + ", STM32F072", loop=True),
    Case("delay loop subs+bne, per iteration", "microbit", "cortex-m0plus", 3,
         BLAATSCHAAP + ", STM32L051", loop=True),
    Case("delay loop subs+bne, per iteration", "mps2-an385", "cortex-m3", 4,
         BLAATSCHAAP + ", STM32F103", loop=True),
    Case("LDR R0,[R1]; LDR R1,[R2]", "mps2-an386", "cortex-m4", 3, M34_TRM,
         body="ldr r0, [r1]\n ldr r1, [r2]", setup=_RAM_SETUP),
    Case("LDR R0,[R1,R2]; STR R0,[R3,#20]", "mps2-an386", "cortex-m4", 3, M34_TRM,
         body="ldr r0, [r1, r2]\n str r0, [r3, #20]",
         setup=_RAM_SETUP + "ldr r1, =0x100\n ldr r2, =0x20000000\n"),
    Case("LDR R0,[R1,R5]; LDR R1,[R2]; LDR R2,[R3,#4]", "mps2-an385", "cortex-m3", 4, M34_TRM,
         body="ldr r0, [r1, r5]\n ldr r1, [r2]\n ldr r2, [r3, #4]", setup=_RAM_SETUP),
    Case("ADD R1,R1,#0; LDR R0,[R1] (address interlock)", "mps2-an386", "cortex-m4", 1 + 2 + 1,
         M34_TRM, body="adds r1, r1, #0\n ldr r0, [r1]", setup=_RAM_SETUP),
    Case("LDR PC,[R1] (taken)", "mps2-an386", "cortex-m4", 5, M34_TRM, at_least=True,
         body="ldr.w pc, [r1]\n nop\n nop\n 9:",
         setup="ldr r2, =(9f + 1)\n ldr r1, =0x20000300\n str r2, [r1]\n"),
    Case("TBB [PC,R0] (taken)", "mps2-an386", "cortex-m4", 6, M34_TRM, at_least=True,
         body="tbb [pc, r0]\n .byte 1, 0\n 9:", setup="movs r0, #0\n"),
]

_PROGRAM = """
    .syntax unified
    .thumb
    .section .text
    .word 0x20004000
    .word reset + 1
    .thumb_func
reset:
{setup}
    bl mark
{body}
    bl mark
    movs r0, #0x18
    ldr r1, =0x20026
    bkpt 0xab
    b .
    .ltorg
    .align 2
    .thumb_func
    .global mark
mark:
    bx lr
"""

_CPU = {"cortex-m0": "cortex-m0", "cortex-m0plus": "cortex-m0", "cortex-m3": "cortex-m3",
        "cortex-m4": "cortex-m4"}


def run_window(board: str, core: str, setup: str, body: str, work: Path) -> tuple[int, int]:
    """(instructions, estimated cycles) from the first mark to the second."""
    src = work / "prog.S"
    src.write_text(_PROGRAM.format(setup=setup, body=body))
    elf = work / "prog.elf"
    subprocess.run(["arm-none-eabi-gcc", f"-mcpu={_CPU[core]}", "-mthumb", "-nostdlib",
                    "-nostartfiles", "-Wl,-Ttext=0x0", "-Wl,--entry=reset", "-o", str(elf),
                    str(src)], check=True, capture_output=True, text=True, timeout=60)
    syms = subprocess.run(["arm-none-eabi-nm", str(elf)], check=True, capture_output=True,
                          text=True).stdout
    mark = next(int(line.split()[0], 16) for line in syms.splitlines()
                if line.split()[-1] == "mark") & ~1
    out = work / "counts.txt"
    out.unlink(missing_ok=True)
    subprocess.run(["qemu-system-arm", "-M", board, "-kernel", str(elf), "-display", "none",
                    "-monitor", "none", "-nodefaults", "-semihosting-config",
                    "enable=on,target=native", "-plugin",
                    f"{icount_plugin()},mark=0x{mark:x},core={core},out={out}"],
                   check=True, capture_output=True, timeout=30)
    marks = [tuple(map(int, line.split()[1:3])) for line in out.read_text().splitlines()
             if line.startswith("mark ")]
    (i0, c0), (i1, c1) = marks[:2]
    return i1 - i0, c1 - c0


def measure(case: Case, work: Path) -> tuple[float, int]:
    """(the plugin's cycles for the case, instructions it executed)."""
    if case.loop:
        def loop(n):
            return run_window(case.board, case.core, f"movs r0, #{n}",
                              "1: subs r0, r0, #1\n bne 1b", work)
        (i1, c1), (i2, c2) = loop(10), loop(110)
        return (c2 - c1) / 100, (i2 - i1) // 100
    i_body, c_body = run_window(case.board, case.core, case.setup, case.body, work)
    # the empty window keeps the label "9:" a setup may point at (a label costs nothing)
    i_empty, c_empty = run_window(case.board, case.core, case.setup, "9:", work)
    return c_body - c_empty, i_body - i_empty


def calibrate() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            cycles, instructions = measure(case, Path(tmp))
            rows.append({"case": case.name, "core": case.core, "published": case.published,
                         "at_least": case.at_least, "estimate": cycles,
                         "instructions": instructions, "source": case.source})
    return rows


def main() -> int:
    rows = calibrate()
    print(f"{'sequence':46} {'core':14} {'published':>10} {'plugin':>7}  source")
    for r in rows:
        pub = ("≥" if r["at_least"] else "") + str(r["published"])
        print(f"{r['case']:46} {r['core']:14} {pub:>10} {r['estimate']:>7g}  {r['source']}")
    agree = sum(r["estimate"] == r["published"] for r in rows)
    print(f"\n{agree} of {len(rows)} published figures reproduced exactly")
    return 0 if agree == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
