"""MODEL arguments: a `.bnn` integer model, or a PyTorch model converted on the fly."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError
from .ir import bnnfile
from .ir.ops import IntModel

MODEL_KINDS = ("a torch.export program (.pt/.pt2), a bnn-mcu checkpoint (.ckpt), a .bnn, or "
               "with --trust-pickle a pickled nn.Module")


def is_bnn_file(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(bnnfile.MAGIC)) == bnnfile.MAGIC
    except OSError:
        return False


def convert_program(ep, name: str) -> IntModel:
    """ExportedProgram -> integer model (importer, then the pass list)."""
    from .ir.passes import lower
    from .nn.importer import import_program

    model = lower(import_program(ep, name))
    model.meta["source"] = name
    return model


def load_model(path: str | Path, trust_pickle: bool = False, input_shape=None) -> IntModel:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if is_bnn_file(path):
        return bnnfile.load(path)
    from .nn.export import load_program  # torch only when a PyTorch model is given

    return convert_program(load_program(path, trust_pickle, input_shape), path.name)
