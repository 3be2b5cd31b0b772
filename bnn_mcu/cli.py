"""bnn-mcu command line. Every user mistake is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import BnnError
from .outputs import check_writable

PROG = "bnn-mcu"
# Mirrors bnn_mcu.nn.presets.PRESETS (kept here so --help does not import torch; a test checks).
PRESET_NAMES = ("mlp", "cnn", "binarynet-mlp", "binarynet-cifar")


def _shape(text: str) -> tuple:
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW or HxWxC") from None
    if len(dims) == 2:
        dims += (1,)
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW or HxWxC")
    return dims


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a .pt/.pt2 torch.export program, a bnn-mcu "
                   "checkpoint (.ckpt) or a converted .bnn model")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled nn.Module (unpickling runs code from the file)")
    p.add_argument("--input-shape", type=_shape, metavar="HxWxC",
                   help="input shape of a pickled module (e.g. 28x28x1)")


def _load(args):
    from .models import load_model
    return load_model(args.model, args.trust_pickle, args.input_shape)


# -- train / evaluate ------------------------------------------------------------------------

def cmd_train(args) -> int:
    from .data import load_dataset
    from .nn.presets import ModelConfig
    from .nn.distributed import join
    from .nn.train import TrainConfig, train

    world = join()  # under torchrun: one of several processes; only rank 0 prints
    data = load_dataset(args.data)
    if world.main:
        print(data.summary())
    mcfg = ModelConfig(args.preset, data.image_shape, data.num_classes, args.width, args.depth,
                       args.dropout_in, args.dropout_hidden, args.stochastic)
    from .nn.presets import build_model
    build_model(mcfg)  # validate the preset and shapes before any work
    tcfg = TrainConfig(args.epochs, args.batch_size, args.lr_start, args.lr_end, args.loss,
                       args.glorot_lr, args.seed, args.threads, augment=args.augment)
    m = train(mcfg, tcfg, data, Path(args.output), resume=args.resume, progress=not args.quiet)
    if m is None:
        return 0
    print(f"best epoch {m['best_epoch']}: validation accuracy {m['val_acc']:.4f}, "
          f"test accuracy {m['test_acc']:.4f} ({m['minutes']:.1f} min)")
    print(f"wrote {m['model']} (torch.export), {m['checkpoint']} (resumable), "
          f"{Path(args.output).with_suffix('.json')} (metrics)")
    return 0


def cmd_evaluate(args) -> int:
    from .data import load_dataset
    from .errors import InputShapeError
    from .nn.export import load_program, program_input_shape
    from .ir.geometry import conform_images
    from .nn.reference import predict

    data = load_dataset(args.data)
    x, y = data.test_x[: args.limit], data.test_y[: args.limit]
    path = Path(args.model)
    from .models import is_bnn_file
    if is_bnn_file(path):
        from . import emulator
        from .ir import bnnfile
        pred = emulator.run(bnnfile.load(path), x).predictions
        acc = float((pred == y).mean())
        kind = "integer model (emulator)"
    else:
        ep = load_program(path, args.trust_pickle, args.input_shape)
        shape = program_input_shape(ep)
        if shape is not None and conform_images(x[:1], shape) is None:
            raise InputShapeError.for_shapes(shape, data.image_shape)
        acc = float((predict(ep, x) == y).mean())
        kind = "PyTorch model"
    print(f"{path.name}: {kind}, {data.name} test set, {len(y):,} images: accuracy {acc:.4f}")
    return 0


# -- convert / inspect / predict / verify -----------------------------------------------------

def cmd_convert(args) -> int:
    from .ir import bnnfile
    from .summary import totals

    check_writable(args.output, "the .bnn")  # creates missing folders, as train does
    model = _load(args)
    digest = bnnfile.save(model, args.output)
    t = totals(model)
    print(f"wrote {args.output}: {len(model.ops)} layers, {t['flash_bytes']:,} B constant data, "
          f"{t['arena_bytes']:,} B arena, hash {digest[:16]}")
    return 0


def cmd_inspect(args) -> int:
    from .ir.bnnfile import model_hash
    from .summary import summary_table

    if args.graph:
        return _inspect_graph(args)
    model = _load(args)
    h, w, c = model.input_shape
    print(f"{Path(args.model).name}: input {h}x{w}x{c} uint8, {model.num_classes} classes, "
          f"hash {model_hash(model)[:16]}")
    print(summary_table(model))
    ignored = model.meta.get("ignored_output_op")
    if ignored:
        print(f"note: the model's final {ignored} is not computed on the device: it keeps the "
              "order of the scores, so the predicted class is the same")
    return 0


def _inspect_graph(args) -> int:
    from .models import is_bnn_file
    from .nn.export import load_program
    from .nn.graph_reading import read_graph

    if is_bnn_file(args.model):
        from .errors import ModelError
        raise ModelError(f"{args.model}: a .bnn holds the converted model only; --graph reads "
                         "the PyTorch program (.pt/.pt2/.ckpt)")
    ep = load_program(Path(args.model), args.trust_pickle, args.input_shape)
    table, error = read_graph(ep, Path(args.model).name)
    print(table)
    if error is not None:
        raise error
    return 0


def _inputs(path: str, model):
    import numpy as np
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BnnError(f"{path}: no such file") from None
    except (ValueError, OSError) as e:
        raise BnnError(f"{path}: not a .npy array ({e})") from None
    h, w, c = model.input_shape
    if x.dtype != np.uint8:
        raise BnnError(f"{path}: holds {x.dtype}; inputs must be raw uint8 pixels")
    if x.shape[1:] == (h, w) and c == 1:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (h, w, c):
        want = f"N x {h} x {w}" + (f" x {c}" if c != 1 else "")
        raise BnnError(f"{path}: shape {x.shape}, the model takes {want}")
    return x


def cmd_predict(args) -> int:
    import numpy as np
    from .targets.dispatch import check_target, predict_on_target

    check_target(args.target, allow_all=False)
    for out, what in ((args.output, "the predictions"), (args.scores, "the scores")):
        if out:  # before a device run that may take minutes
            check_writable(out, what)
    model = _load(args)
    x = _inputs(args.inputs, model)
    scores, pred = predict_on_target(model, x, args.target, args)
    try:
        np.save(args.output, pred.astype(np.int64))
        if args.scores:
            np.save(args.scores, scores.astype(np.int32))
    except OSError as e:
        raise BnnError(f"cannot write the predictions: {e.strerror}: {e.filename}") from None
    print(f"{len(pred):,} predictions on {args.target} -> {args.output}"
          + (f", scores -> {args.scores}" if args.scores else ""))
    return 0


def cmd_verify(args) -> int:
    from .targets.dispatch import verify_on_target

    if args.report:  # before minutes of verifying
        check_writable(args.report, "the report")
    return verify_on_target(args)


# -- generate ---------------------------------------------------------------------------------

def cmd_generate(args) -> int:
    from .codegen.project import generate_project

    if args.board and not args.platformio:
        raise BnnError("--board selects the envs of a PlatformIO project: add --platformio")
    if args.platformio:  # -- PlatformIO project (bnn_mcu/platformio) --
        from .platformio.project import env_spec, generate_pio_project
        for name in args.board or ():
            env_spec(name)  # an unknown board fails before the model is loaded
        model = _load(args)
        written, envs, left_out = generate_pio_project(
            model, Path(args.output), boards=args.board, force=args.force,
            flash_kb=args.flash_kb, ram_kb=args.ram_kb)
        for note in left_out:
            print(f"left out {note}", file=sys.stderr)
        print(f"wrote {len(written)} files to {args.output}: PlatformIO project with envs "
              f"{', '.join(e.name for e in envs)}")
        return 0
    from .codegen.cores import get_core
    from .codegen.generate import check_prefix

    core = get_core(args.core).name  # bad --core or --prefix: before the model is loaded
    check_prefix(args.prefix)
    model = _load(args)
    written = generate_project(model, Path(args.output), core=core, force=args.force,
                               flash_kb=args.flash_kb, ram_kb=args.ram_kb, prefix=args.prefix)
    print(f"wrote {len(written)} files to {args.output} (core {core}; API and build line in "
          f"{Path(args.output) / 'README.md'})")
    fp = written.footprint
    if fp is not None:
        from .codegen.project import footprint_table
        print(f"measured with {fp.compiler} (stack: -fstack-usage, deepest chain; flash and "
              f"arena: linker map)\n{footprint_table(fp)}")
    return 0


def cmd_pio_setup(args) -> int:
    from .platformio.pieces import PIO_VERSION, setup

    core = setup(args.core_dir, install=not args.no_install,
                 log=lambda msg: print(msg, file=sys.stderr))
    print(f"PlatformIO {PIO_VERSION} ready for offline builds in {core}; to run pio yourself:\n"
          f"  export PLATFORMIO_CORE_DIR={core} PLATFORMIO_DISABLE_UPGRADE_CHECK=true "
          "PLATFORMIO_SETTING_ENABLE_TELEMETRY=No")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench_firmware, bench_qemu, bench_table, write_json
    from .targets.dispatch import check_target, device_targets

    check_target(args.target)
    if args.target == "emulator":
        raise BnnError("bench needs a device target: host, qemu:BOARD, qemu:all or serial:PORT")
    model = _load(args)
    x = _bench_input(args, model)
    if args.report:  # before minutes of benchmarking
        check_writable(args.report, "the report")
    reports = []
    for t in device_targets(args.target, args.baud):
        if t.kind == "qemu":
            reports.append(bench_qemu(model, t.name, x, args.emulated_memory))
        else:
            reports.append(bench_firmware(model, t, x, repeats=args.repeats))
    if args.json:
        print(write_json(reports, single=len(reports) == 1))
    else:
        print("\n\n".join(bench_table(r) for r in reports))
    if args.report:
        from .report_html import clock_hz, write_report
        h, w, c = model.input_shape
        write_report(Path(args.report), model, reports, clock_hz=clock_hz(args.clock_mhz),
                     input_note=f"one {h}x{w}x{c} image: the first test image of {args.data} when "
                                "it fits the model, else a fixed random image (seed 0)")
        print(f"wrote {args.report}", file=sys.stderr)
    return 0


def _report_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--report", metavar="HTML",
                   help=f"also write a self-contained HTML {what} report (model hash, compiler and "
                        "flags, per-layer table, charts)")
    p.add_argument("--clock-mhz", type=_float_in(0), metavar="MHZ",
                   help="core clock for the report's times (default: the board's clock)")


def _bench_input(args, model):
    """The first test image of --data when it fits the model; else a fixed random image."""
    import numpy as np
    from .data import load_dataset

    h, w, c = model.input_shape
    try:
        x = load_dataset(args.data).test_x[0]
        if x.shape == (h, w, c):
            return x
    except BnnError:
        pass
    return np.random.default_rng(0).integers(0, 256, (h, w, c), dtype=np.uint8)


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args)


def _int_from(low: int):
    """An argparse type: an integer >= low (a count of 0 or less is a mistake, not a request)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value
    return parse


def _float_in(low: float, high: float | None = None, low_ok: bool = False):
    """An argparse type: a number > low (>= low with low_ok; and < high when given)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not ((value > low or (low_ok and value == low)) and (high is None or value < high)):
            bound = (f"in [{low:g}, {high:g})" if low_ok else f"between {low:g} and {high:g}") \
                if high is not None else f"above {low:g}"
            raise argparse.ArgumentTypeError(f"{value:g} is not {bound}")
        return value
    return parse


POSITIVE = _int_from(1)


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baud", type=POSITIVE, default=115200, help="serial targets (default 115200)")
    p.add_argument("--stream", type=_int_from(0), metavar="N",
                   help="vectors sent through the serial protocol on host/QEMU (default 200; "
                        "the rest go through the bulk region); real boards stream all")
    p.add_argument("--emulated-memory", action="store_true",
                   help="QEMU only: link for the enlarged emulated memories (micro:bit) to test a "
                        "model bigger than the real part")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Binarized neural networks on "
                                "microcontrollers: train, convert, generate C, prove bit-exactness.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a BNN preset on a data set")
    t.add_argument("--preset", required=True, help="one of: " + ", ".join(PRESET_NAMES))
    t.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist, mnist5k, digits or idx:/path/to/folder (default fashion-mnist)")
    t.add_argument("--epochs", type=POSITIVE, default=10)
    t.add_argument("-o", "--output", required=True, help="model.pt to write (plus .ckpt and .json)")
    t.add_argument("--width", type=POSITIVE, help="hidden units (MLP) or base channels (CNN)")
    t.add_argument("--depth", type=POSITIVE, help="hidden layers (MLP) or conv blocks (CNN)")
    t.add_argument("--batch-size", type=POSITIVE, default=100)
    t.add_argument("--lr-start", type=_float_in(0.0), default=3e-3)
    t.add_argument("--lr-end", type=_float_in(0.0), default=3e-7)
    t.add_argument("--loss", choices=["ce", "hinge"], default="ce",
                   help="cross-entropy (default) or BinaryNet's squared hinge on +-1 targets")
    t.add_argument("--glorot-lr", action=argparse.BooleanOptionalAction, default=True,
                   help="BinaryNet per-layer Glorot learning-rate scaling of binary weights "
                        "(default on)")
    t.add_argument("--dropout-in", type=_float_in(0.0, 1.0, low_ok=True))
    t.add_argument("--dropout-hidden", type=_float_in(0.0, 1.0, low_ok=True))
    t.add_argument("--stochastic", action="store_true",
                   help="stochastic (hard-sigmoid) binarization of activations while training")
    t.add_argument("--augment", choices=["none", "shift", "shift-flip"], default="none",
                   help="random +-2 px shifts (and horizontal flips) of training images")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=POSITIVE, help="torch CPU threads")
    t.add_argument("--resume", type=Path, help="continue from a .ckpt written by train")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy of a model")
    _model_args(e)
    e.add_argument("--data", default="fashion-mnist")
    e.add_argument("--limit", type=POSITIVE)
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("convert", help="convert a PyTorch BNN to an integer .bnn model")
    _model_args(c)
    c.add_argument("-o", "--output", required=True)
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("inspect", help="per-layer table of the deployed model")
    _model_args(i)
    i.add_argument("--graph", action="store_true",
                   help="show node by node how the converter read the PyTorch graph (where a "
                        "refused model stopped)")
    i.set_defaults(func=cmd_inspect)

    pr = sub.add_parser("predict", help="predict classes for uint8 images in a .npy file")
    _model_args(pr)
    pr.add_argument("--inputs", required=True, help="X.npy: N x H x W [x C] uint8")
    pr.add_argument("--target", default="emulator",
                    help="emulator, host, qemu:BOARD, serial:PORT (default emulator)")
    pr.add_argument("-o", "--output", required=True, help="PRED.npy (int64 classes)")
    pr.add_argument("--scores", help="also write the int32 scores to this .npy")
    _device_args(pr)
    pr.set_defaults(func=cmd_predict)

    v = sub.add_parser("verify", help="prove bit-exactness on a target (parity ladder)")
    _model_args(v)
    v.add_argument("--target", default="emulator",
                   help="emulator (PyTorch vs emulator), host, qemu:BOARD, qemu:all, serial:PORT, "
                        "pio:PROJECT:ENV (a QEMU env of a generated PlatformIO project)")
    v.add_argument("--data", default="fashion-mnist")
    v.add_argument("--limit", type=POSITIVE, help="first N test images only")
    _device_args(v)
    v.add_argument("--trace", type=_int_from(0), default=None, metavar="N",
                   help="per-layer trace parity on the first N vectors (device targets, default 8)")
    v.add_argument("--no-count", action="store_true",
                   help="skip the exact instruction count on QEMU boards")
    _report_args(v, "validation")
    v.set_defaults(func=cmd_verify)

    g = sub.add_parser("generate", help="generate C for a microcontroller")
    _model_args(g)
    g.add_argument("-o", "--output", required=True, help="output folder")
    g.add_argument("--core", default="cortex-m4",
                   help="cortex-m0, cortex-m0plus, cortex-m3, cortex-m4, cortex-m7, cortex-m33, "
                        "cortex-m55, cortex-m85 (or m4, m0+, ...) or host: the build line, and "
                        "the stack and flash figures measured for it (default cortex-m4)")
    g.add_argument("--prefix", default="",
                   help="start every file name and external symbol with this (e.g. kws_), so "
                        "two generated models link into one firmware")
    g.add_argument("--force", action="store_true", help="write into a non-empty folder")
    g.add_argument("--flash-kb", type=POSITIVE, help="refuse models whose constants exceed this")
    g.add_argument("--ram-kb", type=POSITIVE, help="refuse models whose RAM exceeds this")
    # -- PlatformIO project (bnn_mcu/platformio) --
    g.add_argument("--platformio", action="store_true",
                   help="write a PlatformIO project (platformio.ini, src/, lib/) with one env per "
                        "board instead of a plain C folder")
    g.add_argument("--board", action="append", metavar="ID",
                   help="with --platformio: an env to include (repeatable): a real board "
                        "(nucleo_f401re, nucleo_f746zg, nucleo_l552ze_q, bluepill_f103c8, "
                        "nano33ble, pico) or a QEMU board (qemu-mps2-an386, ...); default: every "
                        "board the model fits")
    g.set_defaults(func=cmd_generate)

    ps = sub.add_parser("pio-setup", help="prepare PlatformIO for offline builds of the QEMU envs "
                        "(private core dir; idempotent)")
    ps.add_argument("--core-dir", type=Path,
                    help="PlatformIO core dir to prepare (default: $BNN_PIO_CORE_DIR or "
                         "~/.cache/bnn-mcu/platformio-VERSION)")
    ps.add_argument("--no-install", action="store_true",
                    help="do not pip-install the pinned PlatformIO and SCons when missing")
    ps.set_defaults(func=cmd_pio_setup)

    b = sub.add_parser("bench", help="exact per-layer instruction counts, estimated cycles and memory "
                                     "on a target")
    _model_args(b)
    b.add_argument("--target", default="qemu:mps2-an386",
                   help="qemu:BOARD (exact instructions), qemu:all, host (ns) or serial:PORT "
                        "(cycles); default qemu:mps2-an386")
    b.add_argument("--data", default="fashion-mnist", help="the input is its first test image")
    b.add_argument("--json", action="store_true", help="print one JSON object (a list for qemu:all)")
    _report_args(b, "bench")
    b.add_argument("--repeats", type=POSITIVE, default=5, help="firmware-counter targets: best of N")
    _device_args(b)
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="the whole chain on a built-in default")
    d.add_argument("--out", default="out/demo", help="work folder (default out/demo)")
    d.add_argument("--epochs", type=POSITIVE, default=None)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BnnError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
