"""The Python API: every CLI command is one of these functions plus printing.

    import bnn_mcu
    model = bnn_mcu.load("model.pt")             # or bnn_mcu.convert(my_torch_module, input_shape=(28, 28, 1))
    print(model.summary())                       # per-layer table in deployed bytes
    model.save("model.bnn")                      # the integer model (versioned, hashed)
    print(bnn_mcu.verify(model, data="fashion-mnist").table())   # PyTorch vs emulator, every bit
    bnn_mcu.generate(model, "out/c", core="cortex-m4")           # C99 for a microcontroller
    print(bnn_mcu.bench(model, target="qemu:mps2-an386").table())

Errors a user can fix are `bnn_mcu.BnnError` (one line naming the thing and the fix); a parity
failure is a result whose `.ok` is False, never an exception. Nothing here imports torch until
a PyTorch model is read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import BnnError, InputShapeError

if TYPE_CHECKING:  # pragma: no cover - names for annotations only
    import numpy as np

    from .data import Dataset
    from .ir.ops import IntModel

__all__ = ["Model", "load", "convert", "train", "evaluate", "predict", "verify", "generate",
           "bench", "Prediction", "VerifyResult", "Generated", "BenchResult"]


# -- the model -------------------------------------------------------------------------------

class Model:
    """A BNN as bnn-mcu deploys it: the integer-only model (``.ir``: packed bit weights, int32
    thresholds, integer scores) and, when it came from PyTorch, the source program
    (``.program``, a ``torch.export.ExportedProgram``) that `verify` compares it with.

    Get one with `load` (a file) or `convert` (a PyTorch module or program in memory).
    """

    def __init__(self, ir: "IntModel | None" = None, program: Any = None, name: str = "model"):
        self._ir = ir
        self._program = program
        self._file = None  # (path, trust_pickle, input_shape) while not read yet
        self.name = name
        self.metrics: dict | None = None  # what `train` measured, for a trained model

    @classmethod
    def _from_file(cls, path: str | Path, trust_pickle: bool = False, input_shape=None) -> "Model":
        """A model whose file is read on first use: callers check their other arguments
        first, and evaluate never converts a PyTorch model it only runs."""
        model = cls(name=Path(path).name)
        model._file = (Path(path), trust_pickle, input_shape)
        return model

    def _read(self) -> None:
        if self._file is None:
            return
        from .ir import bnnfile
        from .models import is_bnn_file
        path, trust_pickle, input_shape = self._file
        if not path.exists():
            from .errors import ModelError
            raise ModelError(f"{path}: no such file")
        if is_bnn_file(path):
            self._ir = bnnfile.load(path)
        else:
            from .nn.export import load_program  # torch only when a PyTorch model is given
            self._program = load_program(path, trust_pickle, input_shape)
        self._file = None

    @property
    def program(self):
        """The source torch.export program, or None for a model read from a .bnn."""
        self._read()
        return self._program

    @property
    def ir(self) -> "IntModel":
        """The integer model (converted from `program` on first use)."""
        self._read()
        if self._ir is None:
            from .models import convert_program
            self._ir = convert_program(self._program, self.name)
        return self._ir

    @property
    def input_shape(self) -> tuple:
        """(H, W, C) of one uint8 input image."""
        return tuple(self.ir.input_shape)

    @property
    def num_classes(self) -> int:
        return self.ir.num_classes

    @property
    def hash(self) -> str:
        """Hex SHA-256 of the integer model; the firmware reports its first 16 digits back."""
        from .ir.bnnfile import model_hash
        return model_hash(self.ir)

    @property
    def notes(self) -> list:
        """What the conversion did that a user should know (one line each)."""
        meta, out = self.ir.meta, []
        if meta.get("ignored_output_op"):
            out.append(f"note: the model's final {meta['ignored_output_op']} is not computed on "
                       "the device: it keeps the order of the scores, so the predicted class is "
                       "the same")
        if meta.get("unscaled_float_input"):
            out.append("note: the model takes float input and scales nothing itself, so the "
                       "device feeds it the raw pixel values 0..255; if it was trained on scaled "
                       "input (e.g. x / 255 in a data transform), put that scaling in forward() "
                       "and export again")
        return out

    def summary(self, fmt: str = "simple") -> str:
        """Per-layer table in deployed bytes (kernel, shapes, MACs, weight bits, flash, RAM);
        `fmt` is a `tabulate` format ("github" for Markdown). Use ``print(model.summary())``."""
        from .summary import summary_table
        return summary_table(self.ir, fmt=fmt)

    def totals(self, core: str | None = None) -> dict:
        """Whole-model figures: binary/int8 MACs, flash_bytes, arena_bytes, scratch_bytes (the
        uint8 dense tables' static scratch on `core`, e.g. "cortex-m0"; None: the largest over
        the Arm cores), ram_bytes, ..."""
        from .summary import totals
        return totals(self.ir, core)

    def save(self, path: str | Path) -> str:
        """Write the integer model as a `.bnn` file (missing folders are made); returns its hash."""
        from .ir import bnnfile
        from .outputs import check_writable
        check_writable(path, "the .bnn")
        return bnnfile.save(self.ir, path)

    def predict(self, x, **kw) -> "Prediction":
        """`bnn_mcu.predict(self, x, ...)`."""
        return predict(self, x, **kw)

    def verify(self, data: Any = "fashion-mnist", **kw) -> "VerifyResult":
        """`bnn_mcu.verify(self, data, ...)`."""
        return verify(self, data, **kw)

    def generate(self, out: str | Path, **kw) -> "Generated":
        """`bnn_mcu.generate(self, out, ...)`."""
        return generate(self, out, **kw)

    def bench(self, target: str = "qemu:mps2-an386", **kw) -> "BenchResult":
        """`bnn_mcu.bench(self, target, ...)`."""
        return bench(self, target, **kw)

    def __repr__(self) -> str:
        h, w, c = self.input_shape
        return (f"<bnn_mcu.Model {self.name!r}: {h}x{w}x{c} uint8 -> {self.num_classes} classes, "
                f"{len(self.ir.ops)} layers, {self.ir.param_bytes:,} B of weights and thresholds, "
                f"hash {self.hash[:16]}>")


def load(path: str | Path, *, trust_pickle: bool = False, input_shape=None) -> Model:
    """Read and convert a model file: a `torch.export` program (.pt/.pt2, what `train` writes),
    a bnn-mcu checkpoint (.ckpt), a converted .bnn, or with ``trust_pickle=True`` a pickled
    ``nn.Module`` (``input_shape=(H, W, C)`` when it does not say). A layer that cannot be
    reproduced exactly is a `BnnError` naming the graph node."""
    model = Model._from_file(path, trust_pickle, input_shape)
    model.ir  # read and convert now: errors belong to load, not to a later call
    return model


def convert(source: Any, *, input_shape: Sequence[int] | None = None,
            name: str | None = None) -> Model:
    """Convert a PyTorch BNN to the integer model (like emlearn's ``convert``).

    `source` is an ``nn.Module`` taking uint8 images N x H x W [x C] (give ``input_shape=(H, W,
    C)`` unless it has ``.config.input_shape``, as bnn-mcu presets do), a
    ``torch.export.ExportedProgram``, or a model file (then this is `load`)."""
    if isinstance(source, (str, Path)):
        return load(source, input_shape=input_shape)
    import torch

    from .nn.export import export_module
    if isinstance(source, torch.nn.Module):
        shape = input_shape or getattr(getattr(source, "config", None), "input_shape", None)
        if shape is None:
            raise BnnError("convert(module): pass input_shape=(H, W, C), e.g. (28, 28, 1)")
        program = export_module(source, tuple(shape))
        name = name or type(source).__name__
    elif isinstance(source, torch.export.ExportedProgram):
        program, name = source, name or "model"
    else:
        raise BnnError(f"convert() takes an nn.Module, an ExportedProgram or a model file, not "
                       f"a {type(source).__name__}")
    model = Model(program=program, name=name)
    model.ir
    return model


def _as_model(model: Model | str | Path) -> Model:
    """A Model for a Model or a path (read on first use)."""
    return model if isinstance(model, Model) else Model._from_file(model)


# -- data ------------------------------------------------------------------------------------

def _test_set(data: Any, limit: int | None = None):
    """(name, x, y) from a data set name ("digits", "idx:/folder", ...), a Dataset (its test
    split) or an (x, y) pair of arrays."""
    import numpy as np

    from .data import Dataset, load_dataset
    if isinstance(data, str):
        data = load_dataset(data)
    if isinstance(data, Dataset):
        name, x, y = data.name, data.test_x, data.test_y
    else:
        x, y = data
        name, x, y = "arrays", np.asarray(x), np.asarray(y)
    return name, x[:limit], y[:limit]


def read_images(path: str | Path, input_shape: Sequence[int]):
    """uint8 images N x H x W [x C] from a .npy file, shaped N x H x W x C for the model."""
    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise BnnError(f"{path}: no such file") from None
    except OSError as e:
        raise BnnError(f"{path}: cannot read ({e.strerror})") from None
    if magic != b"\x93NUMPY":  # np.load would call a text file "pickled data"
        raise BnnError(f"{path}: not a .npy file; save the uint8 images with numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise BnnError(f"{path}: not a readable .npy array ({e})") from None
    return check_images(x, input_shape, str(path))


def check_images(x, input_shape: Sequence[int], where: str = "inputs"):
    """x as N x H x W x C uint8 for a model taking (H, W, C), or a one-line error."""
    import numpy as np

    from .ir.geometry import conform_images
    h, w, c = input_shape
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise InputShapeError(f"{where}: holds {x.dtype}; inputs must be raw uint8 pixels")
    fitted = conform_images(x, tuple(input_shape)) if x.ndim > 1 else None
    if fitted is None:
        want = f"N x {h} x {w}" + (f" x {c}" if c != 1 else "")
        raise InputShapeError(f"{where}: shape {x.shape}, the model takes {want}")
    return fitted


# -- train / evaluate -----------------------------------------------------------------------

def train(preset: str, output: str | Path, *, data: Any = "fashion-mnist",
          epochs: int | None = None, width: int | None = None, depth: int | None = None,
          batch_size: int = 100, lr_start: float = 3e-3, lr_end: float | None = None,
          loss: str | None = None, glorot_lr: bool = True, dropout_in: float | None = None,
          dropout_hidden: float | None = None, stochastic: bool = False,
          augment: str | None = None, seed: int = 0, threads: int | None = None,
          lr_schedule: str | None = None, label_smoothing: float | None = None,
          two_stage: int | None = None, distill: int | None = None, rsign: bool = False,
          ste: str | None = None, device: str = "auto", resume: str | Path | None = None, progress: bool = True,
          on_data=None) -> Model | None:
    """Train a preset ("mlp", "cnn", "binarynet-mlp", "binarynet-cifar") with its recipe
    (nn/train.py PRESET_RECIPES; every option given, not None, wins; docs/training.md); write `output` (a torch.export .pt), its .ckpt (resumable) and .json (metrics).
    Returns the trained Model (``.metrics`` holds the figures), or None on the processes
    other than rank 0 under torchrun. `on_data(dataset)` is called once the data is loaded.
    `device`: "auto" (a CUDA GPU when PyTorch sees one, else the CPU), "cpu", "cuda", "cuda:N".
    An interrupted run keeps the .ckpt of its last finished epoch: pass it as `resume`."""
    from .nn.presets import ModelConfig, build_model, check_preset
    check_preset(preset)  # before minutes of data loading
    from .nn.distributed import pick_device
    pick_device(device)  # likewise
    from .data import Dataset, load_dataset
    from .nn.train import recipe, train as train_model

    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    if on_data is not None:
        on_data(dataset)
    mcfg = ModelConfig(preset, dataset.image_shape, dataset.num_classes, width, depth,
                       dropout_in, dropout_hidden, stochastic, rsign)
    build_model(mcfg)  # preset and shapes checked before any work
    tcfg = recipe(preset, epochs=epochs, batch_size=batch_size, lr_start=lr_start,
                  lr_end=lr_end, loss=loss, glorot_lr=glorot_lr, seed=seed, threads=threads,
                  augment=augment, lr_schedule=lr_schedule, label_smoothing=label_smoothing,
                  two_stage=two_stage, distill=distill, ste=ste, device=device)
    metrics = train_model(mcfg, tcfg, dataset, Path(output),
                          resume=Path(resume) if resume else None, progress=progress)
    if metrics is None:
        return None
    model = Model._from_file(output)
    model.metrics = metrics
    return model


def evaluate(model: Model | str | Path, data: Any = "fashion-mnist", *,
             limit: int | None = None) -> tuple[float, str]:
    """Test accuracy: of the PyTorch model when there is one, else of the integer model (in
    the emulator). Returns (accuracy, what was run). A path is read without converting it."""
    from .ir.geometry import conform_images
    model = _as_model(model)
    _, x, y = _test_set(data, limit)
    if model.program is None:
        fitted = conform_images(x, model.input_shape)
        if fitted is None:
            raise InputShapeError.for_shapes(model.input_shape, x.shape[1:])
        return float((predict(model, fitted).classes == y).mean()), "integer model (emulator)"
    from .nn.export import program_input_shape
    from .nn.reference import predict as torch_predict
    shape = program_input_shape(model.program)
    if shape is not None and conform_images(x[:1], shape) is None:
        raise InputShapeError.for_shapes(shape, x.shape[1:])
    return float((torch_predict(model.program, x) == y).mean()), "PyTorch model"


# -- predict / verify ------------------------------------------------------------------------

@dataclass
class Prediction:
    classes: Any  # int64 [N]: first index of the maximum score
    scores: Any  # int32 [N, classes]


def predict(model: Model | str | Path, x, *, target: str = "emulator", baud: int = 115200,
            stream: int | None = None, emulated_memory: bool = False) -> Prediction:
    """Class and int32 scores for uint8 images `x` (N x H x W [x C], or a .npy path) on
    "emulator", "host", "qemu:BOARD" or "serial:PORT": every target gives the same bits."""
    from .targets.dispatch import check_target, predict_on_target
    check_target(target, allow_all=False)
    model = _as_model(model)
    if isinstance(x, (str, Path)):
        x = read_images(x, model.input_shape)
    else:
        x = check_images(x, model.input_shape)
    scores, classes = predict_on_target(model.ir, x, target, baud=baud, stream=stream,
                                        emulated_memory=emulated_memory)
    return Prediction(classes, scores)


@dataclass
class VerifyResult:
    """What `verify` compared: on "emulator", the PyTorch model against the integer model
    (`emulator`, a ParityReport: every hidden bit); on devices, each device against the
    emulator (`devices`, DeviceParity rows: every score, and the per-layer bits of the first
    `traced` vectors)."""

    model: str
    data: str
    target: str
    emulator: Any = None  # verify.ParityReport
    devices: list = field(default_factory=list)  # verify.DeviceParity per target
    traced: int = 0
    benches: list = field(default_factory=list)  # bench.BenchReport per target (with a report)

    @property
    def ok(self) -> bool:
        return (self.emulator.ok if self.emulator is not None
                else all(r.ok for r in self.devices))

    def table(self) -> str:
        """The parity table `bnn-mcu verify` prints, ending in PARITY OK or PARITY FAILED."""
        from .verify import device_table, report_table
        if self.emulator is not None:
            return (f"{self.model} on {self.data} test set: PyTorch (eval) vs emulator\n"
                    + report_table(self.emulator))
        return "\n".join([
            f"{self.model} on {self.data} test set: device vs emulator (every score of every "
            f"vector; per-layer bits of the first {self.traced} vectors)",
            device_table(self.devices), "PARITY OK" if self.ok else "PARITY FAILED"])

    def failure(self) -> str:
        """One line on the first mismatch ('' when ok)."""
        if self.ok:
            return ""
        if self.emulator is not None:
            r = self.emulator
            return (f"{r.mismatching_bits} mismatching bits, {r.vectors - r.agree} differing "
                    "predictions")
        r = next(r for r in self.devices if not r.ok)
        return (f"{r.target}: {r.score_mismatches} vectors with differing scores, "
                f"{r.trace_mismatching_bits} differing trace bits"
                + (f"; first at vector {r.first_vector}, layer {r.first_layer}, "
                   f"channel {r.first_channel}" if r.first_vector is not None else ""))

    __str__ = table


def verify(model: Model | str | Path, data: Any = "fashion-mnist", *, target: str = "emulator",
           limit: int | None = None, stream: int | None = None, trace: int | None = None,
           count: bool = True, emulated_memory: bool = False, baud: int = 115200,
           progress: bool = True, report: str | Path | None = None,
           clock_mhz: float | None = None) -> VerifyResult:
    """Prove bit-exactness on the test split of `data` (a name, a Dataset or (x, y) arrays).

    target "emulator": the PyTorch model (eval) against the integer model, every hidden bit
    (needs a model with a PyTorch source). "host", "qemu:BOARD", "qemu:all", "serial:PORT",
    "pio:PROJECT:ENV": the generated C against the emulator, every score of every vector and
    the per-layer bits of the first `trace` vectors (default 8); `count` adds exact
    instructions (and estimated cycles) per inference on QEMU boards. `report` writes an HTML
    validation record of a device run (times at `clock_mhz`, default the board's clock), whatever
    the verdict. Returns a VerifyResult (check ``.ok``)."""
    from .targets.dispatch import check_target
    check_target(target)
    if report and target == "emulator":
        raise BnnError("verify --report records a device run: give --target host, qemu:BOARD, "
                       "qemu:all or serial:PORT")
    if report:  # before minutes of verifying
        from .outputs import check_writable
        check_writable(report, "the report")
    model = _as_model(model)
    if target == "emulator" and model.program is None:
        raise BnnError(f"{model.name}: --target emulator compares the PyTorch model with the "
                       "emulator; give the .pt model (a .bnn has no PyTorch reference)")
    name, x, y = _test_set(data, limit)
    if target == "emulator":  # the images as they are: each side reads them its own way
        from .verify import verify_against_pytorch
        return VerifyResult(model.name, name, target,
                            emulator=verify_against_pytorch(model.program, model.ir, x, y))
    from .ir.geometry import conform_images
    fitted = conform_images(x, model.input_shape)
    if fitted is None:  # before any build: the emulator says it too
        raise InputShapeError.for_shapes(model.input_shape, x.shape[1:])
    x = fitted
    result = _verify_devices(model, name, x, y, target, stream, trace, count, emulated_memory,
                             baud, progress, bool(report))
    if report:  # written whatever the verdict: a failure is a record too
        from .report_html import clock_hz, write_report
        write_report(Path(report), model.ir, result.benches, kind="verify", parity=result.devices,
                     data_name=f"{name} test set, {len(x):,} images",
                     clock_hz=clock_hz(clock_mhz), input_note="per-layer figures: the first test image")
        if progress:
            print(f"wrote {report}", file=sys.stderr)
    return result


def _verify_devices(model, name, x, y, target, stream, trace, count, emulated_memory, baud,
                    progress, with_bench=False) -> VerifyResult:
    from . import emulator
    from .targets.dispatch import device_targets
    from .targets.session import count_instructions, run_on_device
    from .verify import compare_device, first_layer_difference

    ir = model.ir
    trace_n = trace if trace is not None else min(len(x), 8)
    emu = emulator.run(ir, x, trace=True)
    result = VerifyResult(model.name, name, target, traced=trace_n)
    for t in device_targets(target, baud):
        if progress:
            print(f"{t.label}: {len(x):,} vectors ...", file=sys.stderr)
        res = run_on_device(ir, t, x, stream=stream, trace=trace_n, progress=progress,
                            emulated_memory=emulated_memory)
        row = compare_device(ir, res, emu, y)
        if row.first_vector is not None:  # name the layer and channel where it starts
            one = x[row.first_vector:row.first_vector + 1]
            again = run_on_device(ir, t, one, stream=1, trace=1, progress=False,
                                  emulated_memory=emulated_memory)
            row.first_layer, row.first_channel = first_layer_difference(
                ir, again.traces[0], emulator.run(ir, one, trace=True).layers, 0)
        if with_bench:  # the report's per-layer record: one more run, the first image
            from .bench import bench_firmware, bench_qemu
            b = (bench_qemu(ir, t.name, x[0], emulated_memory) if t.kind == "qemu"
                 else bench_firmware(ir, t, x[0], repeats=3))
            result.benches.append(b)
            if t.kind == "qemu":
                row.instructions, row.cycles_est = b.per_inference, b.cycles_est
        elif t.kind == "qemu" and count:
            ic = count_instructions(ir, t.name, x[0], emulated_memory=emulated_memory)
            row.instructions, row.cycles_est = ic.per_inference, ic.cycles_per_inference
        result.devices.append(row)
    return result


# -- generate / bench ------------------------------------------------------------------------

@dataclass
class Generated:
    folder: Path
    files: list  # every file written
    envs: list = field(default_factory=list)  # PlatformIO env names (platformio=True)
    notes: list = field(default_factory=list)  # boards left out (and why), set-up still needed
    core: str = ""
    footprint: Any = None  # codegen.footprint.Footprint: stack/flash measured for the core


def generate(model: Model | str | Path, out: str | Path, *, core: str = "cortex-m4",
             platformio: bool = False, boards: Sequence[str] | None = None,
             force: bool = False, flash_kb: int | None = None,
             ram_kb: int | None = None, prefix: str = "") -> Generated:
    """Write C99 for a microcontroller into the folder `out`: the model (data + schedule), the
    runtime kernels and a README with the API, memory table and build line for `core`.

    platformio=True writes a PlatformIO project instead, one env per board in `boards`
    (real boards such as "nucleo_f401re", or QEMU boards "qemu-mps2-an386"; default: every
    board the model fits). `force` overwrites a non-empty folder; `flash_kb`/`ram_kb` refuse
    a model over budget. The same model always gives byte-identical files."""
    out = Path(out)
    if boards and not platformio:
        raise BnnError("--board selects the envs of a PlatformIO project: add --platformio")
    if platformio:
        from .platformio.project import env_spec, generate_pio_project
        boards = [pio_env_name(b) for b in boards] if boards else None
        for b in boards or ():
            env_spec(b)  # an unknown board fails before the model is loaded
        model = _as_model(model)
        written, envs, left_out = generate_pio_project(model.ir, out, boards=boards, force=force,
                                                       flash_kb=flash_kb, ram_kb=ram_kb)
        notes = [f"left out {note}" for note in left_out]
        if any(e.qemu for e in envs):
            from .platformio.pieces import SETUP_HINT, missing_pieces
            if missing_pieces():
                notes.append(f"the QEMU envs build offline once you {SETUP_HINT}")
        return Generated(out, written, [e.name for e in envs], notes)
    from .codegen.cores import get_core
    from .codegen.generate import check_prefix
    from .codegen.project import generate_project
    core = get_core(core).name  # bad --core or --prefix: before the model is loaded
    check_prefix(prefix)
    model = _as_model(model)
    written = generate_project(model.ir, out, core=core, force=force, flash_kb=flash_kb,
                               ram_kb=ram_kb, prefix=prefix)
    return Generated(out, written, core=core, footprint=written.footprint)


def pio_env_name(name: str) -> str:
    """A QEMU board as a PlatformIO env: "qemu:mps2-an386" (the --target spelling) ->
    "qemu-mps2-an386"; other names unchanged."""
    kind, sep, board = name.partition(":")
    if sep and kind == "qemu":
        from .platformio.qemu_boards import env_name
        return env_name(board)
    return name


@dataclass
class BenchResult:
    """Per-layer counts: one bench.BenchReport per board (`reports`)."""

    reports: list

    def table(self) -> str:
        from .bench import bench_table
        return "\n\n".join(bench_table(r) for r in self.reports)

    def json(self) -> str:
        """One JSON object (a list when several boards were measured)."""
        from .bench import write_json
        return write_json(self.reports, single=len(self.reports) == 1)

    def write_report(self, path: str | Path, model: Model, clock_mhz: float | None = None,
                     input_note: str = "") -> Path:
        """A self-contained HTML validation record: model hash, tool version, compiler and
        flags, per-layer instructions, estimated cycles and times at `clock_mhz` (default: the
        board's clock), memory, charts."""
        from .outputs import check_writable
        from .report_html import clock_hz, write_report
        check_writable(path, "the report")
        write_report(Path(path), _as_model(model).ir, self.reports,
                     clock_hz=clock_hz(clock_mhz), input_note=input_note)
        return Path(path)

    __str__ = table


def bench(model: Model | str | Path, target: str = "qemu:mps2-an386", *, x=None,
          data: Any = None, repeats: int = 5, emulated_memory: bool = False,
          baud: int = 115200) -> BenchResult:
    """Per-layer instruction counts (exact, QEMU boards: "qemu:BOARD", "qemu:all") or counter
    readings ("host": ns; "serial:PORT": DWT cycles, SysTick ticks on M0) for one inference,
    plus flash, arena and stack. The input is `x` (one H x W x C uint8 image), else the first
    test image of `data` when it fits the model, else a fixed random image (the counts depend
    on shapes, not on values)."""
    from .bench import bench_firmware, bench_qemu
    from .targets.dispatch import device_targets
    check_bench_target(target)
    model = _as_model(model)
    image = _bench_input(model, x, data)
    reports = []
    for t in device_targets(target, baud):
        if t.kind == "qemu":
            reports.append(bench_qemu(model.ir, t.name, image, emulated_memory))
        else:
            reports.append(bench_firmware(model.ir, t, image, repeats=repeats))
    return BenchResult(reports)


def check_bench_target(target: str) -> None:
    """A one-line error (before any work) for a target bench cannot measure."""
    from .targets.dispatch import check_target
    check_target(target)
    if target == "emulator":
        raise BnnError("bench needs a device target: host, qemu:BOARD, qemu:all or serial:PORT")


def _bench_input(model: Model, x, data):
    import numpy as np

    shape = model.input_shape
    if x is not None:
        return check_images(np.asarray(x)[None], shape, "x")[0]
    if data is not None:
        try:
            first = _test_set(data, 1)[1]
            if first.shape[1:] == shape:
                return first[0]
        except BnnError:
            pass
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
