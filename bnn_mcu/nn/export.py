"""Export to and load from disk: ExportedPrograms, our checkpoints, pickled modules (opt-in).

Loading is safe by default: no file runs code unless --trust-pickle. A model file is read once
(bnn_mcu/inputs.py: a regular file of bounded size), so every step sees the same bytes. A zip
is accepted only when Python's zipfile and torch's own reader cannot disagree about it, and
its sizes are budgeted (nn/archive.py); a torch.export archive is then held to a plain program
(nn/program_vetting.py: no pickled, opaque or compiled payload, tensor bytes, node targets and
shape expressions from allow-lists), read through torch's reader, i.e. the bytes torch will
load. torch.export.load then runs on those same bytes with every torch.load forced to
weights_only and a time limit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import threading
from pathlib import Path

import torch

from ..errors import ModelError
from ..escape import one_line
from ..inputs import read_regular_file
from ..models import MODEL_KINDS
from .archive import open_archive
from .program_vetting import is_program, vet_program

CHECKPOINT_FORMAT = "bnn-mcu-checkpoint-1"
#: Seconds torch.export.load may take (it evaluates symbolic shapes with sympy; a vetted
#: expression takes milliseconds, this is the second line of defence).
LOAD_SECONDS = 120


def export_module(module: torch.nn.Module, input_shape: tuple) -> torch.export.ExportedProgram:
    """torch.export with a dynamic batch; input is uint8 N x H x W (C = 1) or N x H x W x C."""
    h, w, c = input_shape
    shape = (2, h, w) if c == 1 else (2, h, w, c)
    example = torch.zeros(shape, dtype=torch.uint8)
    module = module.eval()
    try:
        return torch.export.export(module, (example,),
                                   dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    except Exception as e:  # torch's own message says which line could not be traced
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"torch.export failed on the model: {first}") from None


def save_program(ep: torch.export.ExportedProgram, path: str | Path) -> None:
    path = Path(path)
    try:
        with open(path, "wb") as f:  # a file object: torch.export warns about non-.pt2 names
            torch.export.save(ep, f)
    except OSError as e:
        raise ModelError(f"{path}: cannot write ({e.strerror or e})") from None


@contextlib.contextmanager
def _weights_only_loads():
    """Every torch.load inside is weights_only (even where torch asks for full unpickling), and
    torch's tracebacks about bad archives stay out of the user's terminal."""
    saved = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = saved
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _time_limit(path: Path, seconds: float):
    """SIGALRM after `seconds` (main thread only: elsewhere no limit can be set this way)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise ModelError(f"{path}: loading took more than {seconds:g} s; refused")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _looks_pickled(data: bytes) -> bool:
    """Legacy torch.save files and pickles of protocol 2+ start with the PROTO opcode 0x80."""
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def _looks_zipped(data: bytes) -> bool:
    """A zip (perhaps with data in front, which open_archive refuses by name), not a pickle."""
    return data.startswith(b"PK\x03\x04") or (
        not _looks_pickled(data) and b"PK\x05\x06" in data[-(1 << 16) - 22:])


def load_program(path: str | Path, trust_pickle: bool = False,
                 input_shape: tuple | None = None) -> torch.export.ExportedProgram:
    """An ExportedProgram from a .pt/.pt2 export, our checkpoint, or (opt-in) a pickled module."""
    path = Path(path)
    return program_from_bytes(path, read_regular_file(path, what=f"model file ({MODEL_KINDS})"),
                              trust_pickle, input_shape)


def program_from_bytes(path: Path, data: bytes, trust_pickle: bool = False,
                       input_shape: tuple | None = None) -> torch.export.ExportedProgram:
    """load_program on a file's bytes, already read (`path` names it in messages)."""
    if _looks_zipped(data):
        archive = open_archive(path, data)
        if is_program(archive):
            if not trust_pickle:
                vet_program(archive)
            return _load_exported(path, data, trust_pickle)
    elif not _looks_pickled(data):
        raise ModelError(f"{path}: not a model file; expected {MODEL_KINDS}")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            if not trust_pickle:
                raise ModelError(f"{path}: is a pickled Python object; loading it runs code from the "
                                 "file. Export it with torch.export.save instead, or pass "
                                 "--trust-pickle if you trust it") from None
            return _load_pickled_module(path, data, input_shape)
        raise ModelError(f"{path}: not a PyTorch model file ({msg.splitlines()[0] if msg else type(e).__name__})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        from .train import model_from_checkpoint
        model = model_from_checkpoint(obj, str(path))
        return export_module(model, model.config.input_shape)
    raise ModelError(f"{path}: holds a {type(obj).__name__}, not a model (expected a torch.export "
                     "program, a bnn-mcu checkpoint, or a pickled nn.Module with --trust-pickle)")


def _load_exported(path: Path, data: bytes, trust_pickle: bool) -> torch.export.ExportedProgram:
    guard = contextlib.nullcontext() if trust_pickle else _weights_only_loads()
    try:
        with guard, _time_limit(path, LOAD_SECONDS):
            return torch.export.load(io.BytesIO(data))
    except ModelError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        first = one_line(first.replace("\x1b[1m", "").replace("\x1b[0m", ""))  # torch's bold
        raise ModelError(f"{path}: cannot load the exported program ({first[:200]})") from None


def _load_pickled_module(path: Path, data: bytes,
                         input_shape: tuple | None) -> torch.export.ExportedProgram:
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelError(f"{path}: cannot unpickle ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, torch.nn.Module):
        raise ModelError(f"{path}: the pickle holds a {type(obj).__name__}, not an nn.Module")
    shape = input_shape or getattr(getattr(obj, "config", None), "input_shape", None)
    if shape is None:
        raise ModelError(f"{path}: a pickled module does not say its input shape; pass "
                         "--input-shape HxWxC (e.g. 28x28x1)")
    return export_module(obj, tuple(shape))


def program_input_shape(ep: torch.export.ExportedProgram) -> tuple | None:
    """(H, W, C) of the image an exported program takes; None when it does not take one image
    batch (the importer says why)."""
    from .program_input import program_input

    try:
        return program_input(ep).hwc
    except ModelError:
        return None
