"""Export to and load from disk: ExportedPrograms, our checkpoints, pickled modules (opt-in)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from ..errors import ModelError

CHECKPOINT_FORMAT = "bnn-mcu-checkpoint-1"


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


def _is_exported_program(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("serialized_exported_program.json") or n.endswith("models/model.json")
                       or "/models/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_program(path: str | Path, trust_pickle: bool = False,
                 input_shape: tuple | None = None) -> torch.export.ExportedProgram:
    """An ExportedProgram from a .pt/.pt2 export, our checkpoint, or (opt-in) a pickled module."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if _is_exported_program(path):
        try:
            with open(path, "rb") as f:
                return torch.export.load(f)
        except Exception as e:
            raise ModelError(f"{path}: cannot load the exported program ({str(e).splitlines()[0]})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            if not trust_pickle:
                raise ModelError(f"{path}: is a pickled Python object; loading it runs code from the "
                                 "file. Export it with torch.export.save instead, or pass "
                                 "--trust-pickle if you trust it") from None
            return _load_pickled_module(path, input_shape)
        raise ModelError(f"{path}: not a PyTorch model file ({msg.splitlines()[0] if msg else type(e).__name__})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        from .train import model_from_checkpoint
        model = model_from_checkpoint(obj, str(path))
        return export_module(model, model.config.input_shape)
    raise ModelError(f"{path}: holds a {type(obj).__name__}, not a model (expected a torch.export "
                     "program, a bnn-mcu checkpoint, or a pickled nn.Module with --trust-pickle)")


def _load_pickled_module(path: Path, input_shape: tuple | None) -> torch.export.ExportedProgram:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelError(f"{path}: cannot unpickle ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, torch.nn.Module):
        raise ModelError(f"{path}: the pickle holds a {type(obj).__name__}, not an nn.Module")
    shape = input_shape or getattr(getattr(obj, "config", None), "input_shape", None)
    if shape is None:
        raise ModelError(f"{path}: a pickled module does not say its input shape; pass "
                         "--input-shape HxWxC (e.g. 28x28x1)")
    return export_module(obj, tuple(shape))
