"""Soak test: many inferences in one QEMU run, every result exact, the stack high-water mark stable.

    python fuzz/soak.py MODEL [--board mps2-an386] [--inferences 100000] [--vectors 10000]
                        [--data fashion-mnist] [--emulated-memory]

The first --vectors test images are preloaded into the board's bulk region once; BULK
requests then run them pass after pass in the same firmware process until --inferences
results came back. After each pass: every score must equal the emulator's (so every pass is
identical to every other), and the stack high-water mark (INFO, painted stack) must not grow
after the first pass. Prints one line per pass and a summary; exits 1 on any mismatch or
growth. tests/test_safety.py runs a 2,000-inference version.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SoakResult:
    board: str
    inferences: int = 0
    passes: int = 0
    mismatching: int = 0  # vectors whose scores differ from the emulator's, over all passes
    stack: list = field(default_factory=list)  # high-water mark after init, then each pass
    seconds: float = 0.0
    unit: str = ""
    counts: tuple = ()  # min and max counter delta per inference over the run

    @property
    def stable(self) -> bool:
        return len(set(self.stack[1:])) <= 1

    @property
    def ok(self) -> bool:
        return self.mismatching == 0 and self.stable and self.inferences > 0


def soak(model, board: str, x: np.ndarray, inferences: int, emulated_memory: bool = False,
         progress=None) -> SoakResult:
    from bnn_mcu import emulator
    from bnn_mcu.ir.bnnfile import model_hash
    from bnn_mcu.targets.link import DeviceLink
    from bnn_mcu.targets.protocol import bulk_image
    from bnn_mcu.targets.qemu import QemuProcess
    from bnn_mcu.targets.session import build_runner

    want = emulator.run(model, x).scores
    fw = build_runner(model, board, emulated_memory=emulated_memory, quiet=True)
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    out = SoakResult(board)
    lo, hi = None, None
    t0 = time.monotonic()
    with QemuProcess(board, fw.elf, bulk=bulk_image(flat), read_timeout=30.0) as ser:
        link = DeviceLink(ser, timeout=30.0, expected_hash=model_hash(model)[:16])
        try:
            info = link.wait_ready(timeout=30.0)
            out.unit = info.counter_unit
            out.stack.append(info.stack_used)
            while out.inferences < inferences:
                n = min(len(flat), inferences - out.inferences)
                r = link.bulk(count=n)
                out.mismatching += int(np.any(r.scores != want[:n], axis=1).sum())
                out.inferences += n
                out.passes += 1
                out.stack.append(link.info().stack_used)
                lo = int(r.counts.min()) if lo is None else min(lo, int(r.counts.min()))
                hi = int(r.counts.max()) if hi is None else max(hi, int(r.counts.max()))
                if progress:
                    progress(out, time.monotonic() - t0)
            link.exit()
        finally:
            link.close()
    out.seconds = time.monotonic() - t0
    out.counts = (lo, hi)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--board", default="mps2-an386")
    ap.add_argument("--inferences", type=int, default=100_000)
    ap.add_argument("--vectors", type=int, default=10_000)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--emulated-memory", action="store_true")
    args = ap.parse_args(argv)

    from bnn_mcu.data import load_dataset
    from bnn_mcu.models import load_model

    model = load_model(args.model)
    x = load_dataset(args.data).test_x[:args.vectors]

    def progress(r, s):
        print(f"pass {r.passes}: {r.inferences:,} inferences, {r.mismatching} mismatching, "
              f"stack high-water {r.stack[-1]:,} B, {r.inferences / s:,.0f} inferences/s",
              flush=True)

    r = soak(model, args.board, x, args.inferences, args.emulated_memory, progress)
    print(f"{args.board}: {r.inferences:,} inferences in {r.passes} passes over {len(x):,} "
          f"vectors, {r.seconds:.0f} s ({r.inferences / max(r.seconds, 1e-9):,.0f}/s): "
          f"{r.mismatching} mismatching results; stack high-water {r.stack[0]:,} B after init, "
          f"{sorted(set(r.stack[1:]))} B after each pass ({'stable' if r.stable else 'GROWING'}); "
          f"{r.unit} per inference {r.counts[0]:,}..{r.counts[1]:,}")
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
