"""The plugin's cycle estimate: published figures reproduced, per-core instruction classes,
instruction counts untouched."""

import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, have

sys.path.insert(0, str(ROOT / "benchmarks"))
import cycle_calibration as cal  # noqa: E402

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(not (have("arm-none-eabi-gcc") and have("qemu-system-arm")),
                                 reason="needs gcc-arm-none-eabi and qemu-system-arm (make setup)")]


def test_published_cycle_figures_are_reproduced():
    rows = cal.calibrate()
    assert len(rows) == len(cal.CASES) >= 8
    for r in rows:
        assert r["estimate"] == r["published"], r
    loops = [r for r in rows if "loop" in r["case"]]
    assert all(r["instructions"] == 2 for r in loops)  # subs + bne per iteration, exactly


# (core, sequence, setup, expected cycles, expected instructions): the weights of
# docs/performance.md, one class at a time, on the QEMU board that runs that architecture.
_SETUP = "ldr r1, =0x20000100\n ldr r2, =0x20000200\n movs r3, #3\n"
CLASSES = [
    ("mps2-an385", "cortex-m3", "mla r0, r1, r2, r3", 2, 1),
    ("mps2-an386", "cortex-m4", "mla r0, r1, r2, r3", 1, 1),
    ("mps2-an385", "cortex-m3", "umull r0, r4, r2, r3", 4, 1),
    ("mps2-an386", "cortex-m4", "umull r0, r4, r2, r3", 1, 1),
    ("mps2-an386", "cortex-m4", "udiv r0, r2, r3", 7, 1),
    ("mps2-an386", "cortex-m4", "usada8 r0, r1, r2, r3", 1, 1),
    ("mps2-an386", "cortex-m4", "push {r4-r7, lr}\n pop {r4-r7}\n pop {r0}", 1 + 5 + 1 + 4 + 1 + 1, 3),
    ("mps2-an386", "cortex-m4", "ldm r1, {r4-r7}", 1 + 4, 1),
    ("mps2-an386", "cortex-m4", "ldrd r4, r5, [r1]", 3, 1),
    ("mps2-an386", "cortex-m4", "str r3, [r1, r3]\n str r3, [r1, #4]", 2 + 1, 2),
    ("mps2-an386", "cortex-m4", "cmp r3, #3\n bne 9f\n nop\n 9:", 1 + 1 + 1, 3),  # not taken
    ("mps2-an386", "cortex-m4", "cmp r3, #3\n beq 9f\n nop\n 9:", 1 + 3, 2),  # taken: 1 + P, P = 2
    ("mps2-an386", "cortex-m4", "cbz r3, 9f\n nop\n 9:", 2, 2),
    ("microbit", "cortex-m0", "ldr r0, [r1]\n ldr r0, [r1]\n str r0, [r2]", 6, 3),  # no pipelining
    ("microbit", "cortex-m0", "muls r0, r3, r0", 1, 1),
    ("microbit", "cortex-m0", "adds r1, r1, #0\n ldr r0, [r1]", 1 + 2, 2),  # no interlock on M0
    ("mps2-an386", "cortex-m4", "ldr r1, [r2]\n ldr r0, [r1]", 2 + 2, 2),  # dependent: not pipelined
    ("mps2-an386", "cortex-m4", "add.w r1, r1, #0\n ldr.w r0, [r1, #4]", 1 + 2 + 1, 2),  # 32-bit
    ("mps2-an386", "cortex-m4", "add.w r4, r1, #0\n ldr.w r0, [r1, #4]", 1 + 2, 2),  # independent
    ("mps2-an386", "cortex-m4", "sub sp, #8\n str r0, [sp, #4]\n add sp, #8", 1 + 1 + 1 + 1, 3),
    ("microbit", "cortex-m0", "cmp r3, #3\n beq 9f\n nop\n 9:", 1 + 3, 2),
    ("microbit", "cortex-m0plus", "cmp r3, #3\n beq 9f\n nop\n 9:", 1 + 2, 2),
]


@pytest.mark.parametrize("board,core,body,cycles,instructions", CLASSES,
                         ids=[f"{c[1]}:{c[2].splitlines()[0]}" for c in CLASSES])
def test_instruction_classes_weigh_as_documented(board, core, body, cycles, instructions):
    with tempfile.TemporaryDirectory() as tmp:
        i_body, c_body = cal.run_window(board, core, _SETUP, body + "\n9:" * ("9:" not in body), Path(tmp))
        i_empty, c_empty = cal.run_window(board, core, _SETUP, "9:", Path(tmp))
        again = cal.run_window(board, core, _SETUP, body + "\n9:" * ("9:" not in body), Path(tmp))
    assert (i_body - i_empty, c_body - c_empty) == (instructions, cycles)
    assert again == (i_body, c_body)  # deterministic
