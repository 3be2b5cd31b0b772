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
    """The MODEL argument, read when the API first needs it (after its other checks)."""
    from .api import Model
    return Model._from_file(args.model, args.trust_pickle, args.input_shape)


# Each command is a function of bnn_mcu.api (the Python API) plus printing.

# -- train / evaluate ------------------------------------------------------------------------

def cmd_train(args) -> int:
    import time
    from .api import train
    from .nn.distributed import join

    world = join(args.device)  # under torchrun: one of several processes; only rank 0 prints
    started = time.time()
    try:
        model = train(args.preset, args.output, data=args.data, epochs=args.epochs,
                      width=args.width, depth=args.depth, batch_size=args.batch_size,
                      lr_start=args.lr_start, lr_end=args.lr_end, loss=args.loss,
                      glorot_lr=args.glorot_lr, dropout_in=args.dropout_in,
                      dropout_hidden=args.dropout_hidden, stochastic=args.stochastic,
                      augment=args.augment, seed=args.seed, threads=args.threads,
                      lr_schedule=args.lr_schedule, label_smoothing=args.label_smoothing,
                      two_stage=args.two_stage, distill=args.distill, rsign=args.rsign,
                      ste=args.ste, device=args.device,
                      resume=args.resume, progress=not args.quiet,
                      on_data=lambda data: world.main and print(data.summary()))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; {_kept_checkpoint(Path(args.output), started)}",
              file=sys.stderr)
        return 130
    if model is None:
        return 0
    m = model.metrics
    print(f"best epoch {m['best_epoch']}: validation accuracy {m['val_acc']:.4f}, "
          f"test accuracy {m['test_acc']:.4f} ({m['minutes']:.1f} min)")
    print(f"wrote {m['model']} (torch.export), {m['checkpoint']} (resumable), "
          f"{Path(args.output).with_suffix('.json')} (metrics)")
    return 0


def _kept_checkpoint(output: Path, started: float) -> str:
    """What an interrupted train leaves: the .ckpt of the last finished epoch, if any."""
    ckpt = output.with_suffix(".ckpt")
    try:
        fresh = ckpt.stat().st_mtime >= started
    except OSError:
        fresh = False
    if not fresh:
        return "no epoch finished, so no checkpoint was written"
    return (f"{ckpt} holds the last finished epoch: continue with the same command plus "
            f"--resume {ckpt}")


def cmd_evaluate(args) -> int:
    from .api import evaluate
    from .data import load_dataset

    data = load_dataset(args.data)
    acc, kind = evaluate(_load(args), data, limit=args.limit)
    n = len(data.test_y[: args.limit])
    print(f"{Path(args.model).name}: {kind}, {data.name} test set, {n:,} images: accuracy {acc:.4f}")
    return 0


# -- convert / inspect / predict / verify -----------------------------------------------------

def cmd_convert(args) -> int:
    check_writable(args.output, "the .bnn")  # creates missing folders, as train does
    model = _load(args)
    digest = model.save(args.output)
    for note in model.notes:
        print(note, file=sys.stderr)
    t = model.totals()
    print(f"wrote {args.output}: {len(model.ir.ops)} layers, {t['flash_bytes']:,} B constant data, "
          f"{t['arena_bytes']:,} B arena, hash {digest[:16]}")
    return 0


def cmd_inspect(args) -> int:
    if args.graph:
        return _inspect_graph(args)
    model = _load(args)
    h, w, c = model.input_shape
    print(f"{Path(args.model).name}: input {h}x{w}x{c} uint8, {model.num_classes} classes, "
          f"hash {model.hash[:16]}")
    print(model.summary())
    for note in model.notes:
        print(note)
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


def _save_npy(path: str, array, what: str) -> None:
    """Exactly at `path` (numpy.save would append .npy to any other name)."""
    import numpy as np
    try:
        with open(path, "wb") as f:
            np.save(f, array)
    except OSError as e:
        raise BnnError(f"cannot write {what}: {e.strerror}: {e.filename or path}") from None


def cmd_predict(args) -> int:
    import numpy as np
    from .api import predict
    from .targets.dispatch import check_target

    check_target(args.target, allow_all=False)  # before the outputs' folders are made
    for out, what in ((args.output, "the predictions"), (args.scores, "the scores")):
        if out:  # before a device run that may take minutes
            check_writable(out, what)
    model = _load(args)
    p = predict(model, args.inputs, target=args.target, baud=args.baud, stream=args.stream,
                emulated_memory=args.emulated_memory)
    _save_npy(args.output, p.classes.astype(np.int64), "the predictions")
    if args.scores:
        _save_npy(args.scores, p.scores.astype(np.int32), "the scores")
    print(f"{len(p.classes):,} predictions on {args.target} -> {args.output}"
          + (f", scores -> {args.scores}" if args.scores else ""))
    return 0


def cmd_verify(args) -> int:
    from .api import verify
    from .errors import MismatchError

    result = verify(_load(args), args.data, target=args.target, limit=args.limit,
                    stream=args.stream, trace=args.trace, count=not args.no_count,
                    emulated_memory=args.emulated_memory, baud=args.baud, report=args.report,
                    clock_mhz=args.clock_mhz)
    print(result.table())
    if not result.ok:
        raise MismatchError(result.failure())
    return 0


# -- generate ---------------------------------------------------------------------------------

def cmd_generate(args) -> int:
    from .api import generate

    if not args.platformio:  # a bad --core or --prefix: before the model is loaded
        from .codegen.cores import get_core
        from .codegen.generate import check_prefix
        get_core(args.core)
        check_prefix(args.prefix)
    model = _load(args)
    for note in model.notes:
        print(note, file=sys.stderr)
    g = generate(model, args.output, core=args.core, platformio=args.platformio,
                 boards=args.board, force=args.force, flash_kb=args.flash_kb, ram_kb=args.ram_kb,
                 prefix=args.prefix)
    for note in g.notes:
        print(note, file=sys.stderr)
    if args.platformio:
        print(f"wrote {len(g.files)} files to {args.output}: PlatformIO project with envs "
              f"{', '.join(g.envs)}")
    else:
        print(f"wrote {len(g.files)} files to {args.output} (core {g.core}; API and build line "
              f"in {Path(args.output) / 'README.md'})")
        if g.footprint is not None:
            from .codegen.project import footprint_table
            print(f"measured with {g.footprint.compiler} (stack: -fstack-usage, deepest chain; "
                  f"flash and static RAM (arena, scratch): linker map)\n{footprint_table(g.footprint)}")
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
    from .api import bench, check_bench_target

    check_bench_target(args.target)
    model = _load(args)
    if args.report:  # before minutes of benchmarking
        check_writable(args.report, "the report")
    result = bench(model, args.target, data=args.data, repeats=args.repeats,
                   emulated_memory=args.emulated_memory, baud=args.baud)
    print(result.json() if args.json else result.table())
    if args.report:
        h, w, c = model.input_shape
        result.write_report(args.report, model, clock_mhz=args.clock_mhz,
                            input_note=f"one {h}x{w}x{c} image: the first test image of "
                                       f"{args.data} when it fits the model, else a fixed random "
                                       "image (seed 0)")
        print(f"wrote {args.report}", file=sys.stderr)
    return 0


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
DATA_HELP = "fashion-mnist, mnist5k, digits or idx:/path/to/folder (default fashion-mnist)"


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baud", type=POSITIVE, default=115200, help="serial targets (default 115200)")
    p.add_argument("--stream", type=_int_from(0), metavar="N",
                   help="vectors sent through the serial protocol on host/QEMU (default 200; "
                        "the rest go through the bulk region); real boards stream all")
    p.add_argument("--emulated-memory", action="store_true",
                   help="QEMU only: link for the enlarged emulated memories (micro:bit) to test a "
                        "model bigger than the real part")


def _report_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--report", metavar="HTML",
                   help=f"also write a self-contained HTML {what} report (model hash, compiler and "
                        "flags, per-layer table, charts)")
    p.add_argument("--clock-mhz", type=_float_in(0), metavar="MHZ",
                   help="core clock for the report's times (default: the board's clock)")


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
    t.add_argument("--epochs", type=POSITIVE,
                   help="passes over the training set (default: the preset's recipe, else 10)")
    t.add_argument("-o", "--output", required=True, help="model.pt to write (plus .ckpt and .json)")
    t.add_argument("--width", type=POSITIVE, help="hidden units (MLP) or base channels (CNN)")
    t.add_argument("--depth", type=POSITIVE, help="hidden layers (MLP) or conv blocks (CNN)")
    t.add_argument("--batch-size", type=POSITIVE, default=100,
                   help="images per step (per process under torchrun; default 100)")
    t.add_argument("--lr-start", type=_float_in(0.0), default=3e-3,
                   help="initial learning rate (default 3e-3)")
    t.add_argument("--lr-end", type=_float_in(0.0),
                   help="final learning rate (default: the preset's recipe, else 3e-7)")
    t.add_argument("--loss", choices=["ce", "hinge"],
                   help="cross-entropy or BinaryNet's squared hinge on +-1 targets (default: "
                        "the preset's recipe, else ce)")
    t.add_argument("--glorot-lr", action=argparse.BooleanOptionalAction, default=True,
                   help="BinaryNet per-layer Glorot learning-rate scaling of binary weights "
                        "(default on)")
    t.add_argument("--dropout-in", type=_float_in(0.0, 1.0, low_ok=True),
                   help="dropout rate on the input (default: the preset's)")
    t.add_argument("--dropout-hidden", type=_float_in(0.0, 1.0, low_ok=True),
                   help="dropout rate on hidden layers (default: the preset's)")
    t.add_argument("--stochastic", action="store_true",
                   help="stochastic (hard-sigmoid) binarization of activations while training")
    t.add_argument("--augment", choices=["none", "shift", "flip", "shift-flip"],
                   help="random +-2 px shifts and/or horizontal flips of training images "
                        "(default: the preset's recipe, else none)")
    t.add_argument("--lr-schedule", choices=["exp", "cosine"],
                   help="learning rate from --lr-start to --lr-end: exponential per epoch "
                        "(BinaryNet) or cosine per step (default: the preset's recipe, else exp)")
    t.add_argument("--label-smoothing", type=_float_in(0.0, 1.0, low_ok=True),
                   help="cross-entropy against smoothed labels (e.g. 0.1; default 0)")
    t.add_argument("--rsign", action="store_true",
                   help="a learned per-channel shift before every sign (ReActNet's RSign; "
                        "folds into the integer thresholds)")
    t.add_argument("--ste", choices=["clip", "approx"],
                   help="the sign's training gradient: clip (BinaryNet: 1 where |x| <= 1) or "
                        "approx (Bi-Real Net's 2 - 2|x|); deploys the same (default: the "
                        "preset's recipe, else clip)")
    t.add_argument("--two-stage", type=_int_from(0), metavar="N",
                   help="train the first N epochs with real-valued (hardtanh) activations, "
                        "then binary; only binary epochs can be the kept model (default 0)")
    t.add_argument("--distill", type=_int_from(0), metavar="N",
                   help="first train a real-valued twin of the model for N epochs, then learn "
                        "from its outputs as well as from the labels (default: half the "
                        "epochs for mlp, else 0; --distill 0 to skip)")
    t.add_argument("--seed", type=int, default=0,
                   help="initialization, shuffling and augmentation seed (default 0)")
    t.add_argument("--threads", type=POSITIVE,
                   help="torch CPU threads (default: 1 for models under 2 M MACs per image, "
                        "else the cores the load average leaves idle; train prints its choice)")
    t.add_argument("--device", default="auto",
                   help="auto (default: a CUDA GPU when PyTorch sees one, else the CPU), cpu, "
                        "cuda or cuda:N (under torchrun, cuda is each process's LOCAL_RANK GPU)")
    t.add_argument("--resume", type=Path, help="continue from a .ckpt written by train")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy of a model")
    _model_args(e)
    e.add_argument("--data", default="fashion-mnist", help=DATA_HELP)
    e.add_argument("--limit", type=POSITIVE, help="first N test images only")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("convert", help="convert a PyTorch BNN to an integer .bnn model")
    _model_args(c)
    c.add_argument("-o", "--output", required=True, help="the .bnn file to write")
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
    v.add_argument("--data", default="fashion-mnist", help=DATA_HELP)
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

    b = sub.add_parser("bench", help="exact per-layer instruction counts and memory on a target")
    _model_args(b)
    b.add_argument("--target", default="qemu:mps2-an386",
                   help="qemu:BOARD (exact instructions), qemu:all, host (ns) or serial:PORT "
                        "(cycles); default qemu:mps2-an386")
    b.add_argument("--data", default="fashion-mnist", help="the input is its first test image")
    b.add_argument("--json", action="store_true", help="print one JSON object (a list for qemu:all)")
    b.add_argument("--repeats", type=POSITIVE, default=5, help="firmware-counter targets: best of N")
    _device_args(b)
    _report_args(b, "bench")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="the whole chain on a built-in default")
    d.add_argument("--out", default="out/demo", help="work folder (default out/demo)")
    d.add_argument("--epochs", type=POSITIVE, default=None,
                   help="training epochs of the demo's MLP (default 8)")
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
