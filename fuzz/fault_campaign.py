"""Serial fault-injection campaign on QEMU (or the host build): the figures of docs/robustness.md.

    python fuzz/fault_campaign.py [--model X.pt] [--board mps2-an386] [--data fashion-mnist]
                                  [--scale 1.0]

Scenarios (each: a fresh firmware process behind bnn_mcu/targets/faultproxy.py, vectors
streamed over RUN and/or run from the bulk region, every result compared with the emulator):
a digits-sized model (8x8 inputs, 64-byte requests) and MODEL (Fashion-MNIST test images,
784-byte requests; default: a random MLP of that size) under 1% and 0.1% byte corruption in
both directions, under a mix of every fault kind, and behind a link that damages every
request. Every scenario uses DeviceLink's default retry budget (retries=3). Prints a markdown
table; exits 1 if a damaged frame ever passed the CRC or a wrong result was reported
(faulty_run raises).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def scenarios(small, big, x_small, x_big, scale: float) -> list:
    from bnn_mcu.targets.faultproxy import Faults

    def n(k):
        return max(1, int(k * scale))
    c1, c01, none = Faults(corrupt=0.01), Faults(corrupt=0.001), Faults()
    mix = Faults(drop=0.002, corrupt=0.002, duplicate=0.002, truncate=0.01, repeat=0.02,
                 delay=0.01, delay_s=0.01)
    dead = Faults(corrupt=0.2)  # no 76-byte request gets through (0.8**76 = 4e-8)
    return [  # name, model, streamed vectors, bulk vectors, faults down/up
        ("8x8 model, 1% corruption", small, x_small[:n(300)], x_small[:n(3000)], c1, c1),
        ("28x28 model, 1% corruption, bulk", big, None, x_big[:n(2000)], c1, c1),
        ("28x28 model, 1% corruption, streamed", big, x_big[:n(50)], None, c1, c1),
        ("28x28 model, 0.1% corruption, streamed + bulk", big, x_big[:n(200)], x_big[:n(2000)],
         c01, c01),
        ("8x8 model, every fault kind mixed", small, x_small[:n(300)], x_small[:n(2000)], mix, mix),
        ("8x8 model, 20% corruption host->device (every request damaged)", small,
         x_small[:n(300)], None, dead, none),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a .pt/.pt2/.bnn for 28x28x1 inputs (default: random MLP)")
    ap.add_argument("--board", default="mps2-an386", help="a QEMU board, or host")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the vector counts")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    from bnn_mcu.data import load_dataset
    from bnn_mcu.ir.synthetic import random_model
    from bnn_mcu.models import load_model
    from bnn_mcu.targets.faultproxy import faulty_run
    from bnn_mcu.targets.link import DEFAULT_RETRIES
    from bnn_mcu.targets.protocol import bulk_image
    from bnn_mcu.targets.qemu import start_target
    from bnn_mcu.targets.session import build_runner

    small = random_model(21, input_shape=(8, 8, 1), layers=[
        ("conv", dict(out=8, k=3, pad=1)), ("pool", dict(k=2)), ("dense", dict(out=16)),
        ("dense", dict(out=10))])
    big = load_model(args.model) if args.model else random_model(
        22, input_shape=(28, 28, 1), layers=[("dense", dict(out=256)), ("dense", dict(out=10))])
    rng = np.random.default_rng(args.seed)
    x_small = rng.integers(0, 256, (3000, 8, 8, 1), dtype=np.uint8)
    x_big = load_dataset(args.data).test_x[:2000]

    print("| scenario | vectors (serial + bulk) | outcome | frames damaged host->device / "
          "device->host | rejected | undetected | retransmits | time |")
    print("|---|---|---|---|---|---|---|---|")
    bad = 0
    for i, (name, model, stream, bulk, down, up) in enumerate(
            scenarios(small, big, x_small, x_big, args.scale)):
        elf = build_runner(model, args.board, quiet=True).elf
        flat = None if bulk is None else bulk.reshape(len(bulk), -1)
        proc = start_target(args.board, elf, bulk=bulk_image(flat) if flat is not None else None)
        r = faulty_run(proc, model, stream, bulk, down, up, seed=args.seed + i, timeout=1.0,
                       retries=DEFAULT_RETRIES)
        s_d, s_h = r.proxy.stats["to_device"], r.proxy.stats["to_host"]
        bad += r.undetected
        outcome = "exact" if r.outcome == "exact" else f"stopped: {r.outcome}"
        print(f"| {name} | {r.streamed:,} + {r.bulk:,} | {outcome} | {s_d.frames_damaged:,}/"
              f"{s_d.frames_sent:,} / {s_h.frames_damaged:,}/{s_h.frames_sent:,} | "
              f"{s_d.rejected_delivered + s_h.rejected_delivered:,} | {r.undetected} | "
              f"{r.link_stats.retransmits:,} | {r.seconds:.0f} s |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
