"""`--target` for predict and verify: emulator, host, qemu:BOARD, qemu:all, serial:PORT,
pio:PROJECT:ENV."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import BnnError, InputShapeError, MismatchError

TARGET_HELP = "emulator, host, qemu:BOARD, qemu:all, serial:PORT, pio:PROJECT:ENV"


def device_targets(text: str, baud: int):
    """The device targets a --target names (qemu:all = every QEMU board)."""
    from .boards import QEMU_BOARDS
    from .session import Target, parse_device_target

    if text == "qemu:all":
        return [Target("qemu", b) for b in QEMU_BOARDS]
    return [parse_device_target(text, baud)]


def check_target(text: str, allow_all: bool = True) -> None:
    """Fail fast (before loading models or data) on a target that does not exist."""
    if text == "emulator" or (allow_all and text == "qemu:all"):
        return
    if text.partition(":")[0] not in ("host", "qemu", "serial", "pio"):
        raise BnnError(f"unknown target {text!r}; use one of: {TARGET_HELP}")
    device_targets(text, 115200)


def predict_on_target(model, x: np.ndarray, target: str, args):
    check_target(target, allow_all=False)
    from .. import emulator
    if target == "emulator":
        r = emulator.run(model, x)
        return r.scores, r.predictions
    from .session import run_on_device
    (t,) = device_targets(target, getattr(args, "baud", 115200))
    res = run_on_device(model, t, x, stream=getattr(args, "stream", None),
                        emulated_memory=getattr(args, "emulated_memory", False))
    return res.scores, res.classes


def verify_on_target(args) -> int:
    from ..data import load_dataset
    from ..models import is_bnn_file

    check_target(args.target)
    if args.target == "emulator":
        if getattr(args, "report", None):
            raise BnnError("verify --report records a device run: give --target host, qemu:BOARD, "
                           "qemu:all or serial:PORT")
        if is_bnn_file(args.model):
            raise BnnError(f"{args.model}: --target emulator compares the PyTorch model with the "
                           "emulator; give the .pt model (a .bnn has no PyTorch reference)")
        return _verify_emulator(args, load_dataset(args.data))
    return _verify_devices(args, load_dataset(args.data))


def _verify_emulator(args, data) -> int:
    from ..models import convert_program
    from ..nn.export import load_program
    from ..verify import report_table, verify_against_pytorch

    x, y = data.test_x[: args.limit], data.test_y[: args.limit]
    ep = load_program(args.model, args.trust_pickle, args.input_shape)
    model = convert_program(ep, Path(args.model).name)
    rep = verify_against_pytorch(ep, model, x, y)
    print(f"{Path(args.model).name} on {data.name} test set: PyTorch (eval) vs emulator")
    print(report_table(rep))
    if not rep.ok:
        raise MismatchError(f"{rep.mismatching_bits} mismatching bits, "
                            f"{rep.vectors - rep.agree} differing predictions")
    return 0


def _verify_devices(args, data) -> int:
    from .. import emulator
    from ..ir.geometry import conform_images
    from ..models import load_model
    from ..verify import compare_device, device_table, first_layer_difference
    from .session import count_instructions, run_on_device

    model = load_model(args.model, args.trust_pickle, args.input_shape)
    targets = device_targets(args.target, args.baud)
    x, y = data.test_x[: args.limit], data.test_y[: args.limit]
    fitted = conform_images(x, tuple(model.input_shape))
    if fitted is None:  # before any build: the emulator says it too
        raise InputShapeError.for_shapes(model.input_shape, x.shape[1:])
    x = fitted
    trace_n = args.trace if args.trace is not None else min(len(x), 8)
    emu = emulator.run(model, x, trace=True)
    rows, benches = [], []
    for t in targets:
        print(f"{t.label}: {len(x):,} vectors ...", file=sys.stderr)
        res = run_on_device(model, t, x, stream=args.stream, trace=trace_n,
                            emulated_memory=args.emulated_memory)
        row = compare_device(model, res, emu, y)
        if row.first_vector is not None:  # name the layer and channel where it starts
            again = run_on_device(model, t, x[row.first_vector:row.first_vector + 1], stream=1,
                                  trace=1, progress=False, emulated_memory=args.emulated_memory)
            sub = emulator.run(model, x[row.first_vector:row.first_vector + 1], trace=True)
            row.first_layer, row.first_channel = first_layer_difference(
                model, again.traces[0], sub.layers, 0)
        if getattr(args, "report", None):  # the per-layer record: one more run, the first image
            from ..bench import bench_firmware, bench_qemu
            bench = (bench_qemu(model, t.name, x[0], args.emulated_memory) if t.kind == "qemu"
                     else bench_firmware(model, t, x[0], repeats=3))
            benches.append(bench)
            if t.kind == "qemu":
                row.instructions, row.cycles_est = bench.per_inference, bench.cycles_est
        elif t.kind == "qemu" and not args.no_count:
            ic = count_instructions(model, t.name, x[0], emulated_memory=args.emulated_memory)
            row.instructions, row.cycles_est = ic.per_inference, ic.cycles_per_inference
        rows.append(row)
    print(f"{Path(args.model).name} on {data.name} test set: device vs emulator "
          "(every score of every vector; per-layer bits of the first "
          f"{trace_n} vectors)")
    print(device_table(rows))
    bad = [r for r in rows if not r.ok]
    print("PARITY OK" if not bad else "PARITY FAILED")
    if getattr(args, "report", None):  # written whatever the verdict: a failure is a record too
        from ..report_html import clock_hz, write_report
        write_report(Path(args.report), model, benches, kind="verify", parity=rows,
                     data_name=f"{data.name} test set, {len(x):,} images",
                     clock_hz=clock_hz(args.clock_mhz),
                     input_note="per-layer figures: the first test image")
        print(f"wrote {args.report}", file=sys.stderr)
    if bad:
        r = bad[0]
        raise MismatchError(f"{r.target}: {r.score_mismatches} vectors with differing scores, "
                            f"{r.trace_mismatching_bits} differing trace bits"
                            + (f"; first at vector {r.first_vector}, layer {r.first_layer}, "
                               f"channel {r.first_channel}" if r.first_vector is not None else ""))
    return 0
