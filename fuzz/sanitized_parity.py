"""Whole-test-set parity of the host build under AddressSanitizer + UndefinedBehaviorSanitizer.

    python fuzz/sanitized_parity.py MODEL [MODEL ...] [--data fashion-mnist] [--limit N]
                                    [--stream 500] [--cc gcc|clang]

Each MODEL (.pt/.pt2/.bnn) is converted, its C generated and built for the host with
-fsanitize=address,undefined -fno-sanitize-recover=all (the whole runner: app, protocol,
kernels, generated model, host port), then every test image goes through it: the first
--stream vectors over the serial protocol, the rest through the bulk region, a few traced
layer by layer. Scores must equal the emulator's on every vector and layer; any sanitizer
report aborts the firmware, which fails the run. Prints one line of figures per model; exits
non-zero on any mismatch or report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


def check_model(path: str, x: np.ndarray, y: np.ndarray, stream: int, trace: int) -> tuple:
    """(verify.DeviceParity, seconds to build, seconds to run) for one model."""
    from bnn_mcu import emulator
    from bnn_mcu.models import load_model
    from bnn_mcu.targets.host import HostProcess
    from bnn_mcu.targets.link import DeviceLink
    from bnn_mcu.targets.protocol import bulk_image
    from bnn_mcu.targets.session import DeviceResult, Target, build_runner
    from bnn_mcu.verify import compare_device

    model = load_model(path)
    t0 = time.monotonic()
    fw = build_runner(model, "host", extra_cflags=SANITIZE, quiet=True)
    built = time.monotonic() - t0
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    t0 = time.monotonic()
    with HostProcess(fw.elf, bulk=bulk_image(flat[stream:]), read_timeout=60.0) as ser:
        link = DeviceLink(ser, timeout=60.0)
        try:
            link.wait_ready(timeout=60.0)
            streamed = link.run(flat[:stream])
            bulk = link.bulk()
            traces = [link.trace(flat[i]).layers for i in range(trace)]
            info = link.info()  # stack high-water mark after everything
            link.exit()
        finally:
            link.close()
    ran = time.monotonic() - t0
    res = DeviceResult(Target("host", "host"), np.concatenate([streamed.scores, bulk.scores]),
                       np.concatenate([streamed.classes, bulk.classes]),
                       np.concatenate([streamed.counts, bulk.counts]), info=info,
                       streamed=stream, bulk=len(x) - stream, firmware=fw, traces=traces)
    return compare_device(model, res, emulator.run(model, x, trace=True), y), built, ran


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--stream", type=int, default=500)
    ap.add_argument("--trace", type=int, default=8)
    args = ap.parse_args(argv)

    from bnn_mcu.data import load_dataset
    data = load_dataset(args.data)
    n = args.limit or len(data.test_x)
    x, y = data.test_x[:n], data.test_y[:n]
    ok = True
    for path in args.models:
        p, built, ran = check_model(path, x, y, min(args.stream, n), min(args.trace, n))
        ok &= p.score_mismatches == 0 and p.trace_mismatching_bits == 0
        print(f"{Path(path).name}: {p.vectors:,} vectors on the ASan+UBSan host build "
              f"({p.streamed:,} serial, {p.bulk:,} bulk): {p.score_mismatches} vectors with "
              f"differing scores, {p.trace_mismatching_bits:,}/{p.trace_bits:,} differing traced "
              f"bits ({p.traced} vectors), accuracy {p.correct / max(1, p.vectors):.4f}, "
              f"no sanitizer report; stack high-water {p.stack_bytes:,} B; build {built:.1f} s, "
              f"run {ran:.1f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
