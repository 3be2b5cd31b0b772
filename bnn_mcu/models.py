"""MODEL arguments: a `.bnn` integer model, or a PyTorch model converted on the fly."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ModelError
from .inputs import read_regular_file
from .ir import bnnfile
from .ir.ops import IntModel

MODEL_KINDS = ("a torch.export program (.pt/.pt2), a bnn-mcu checkpoint (.ckpt), a .bnn, or "
               "with --trust-pickle a pickled nn.Module")


def is_bnn_file(path: str | Path) -> bool:
    """A regular file that starts like a .bnn (stat first: opening a FIFO would block)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(len(bnnfile.MAGIC)) == bnnfile.MAGIC
    except OSError:
        return False


def convert_program(ep, name: str) -> IntModel:
    """ExportedProgram -> integer model (importer, then the pass list)."""
    from .ir.passes import lower
    from .nn.importer import import_program

    from .escape import one_line

    name = one_line(name)  # a file name may hold line breaks; the .bnn reader wants one line
    model = lower(import_program(ep, name))
    model.meta["source"] = name
    return model


def load_model(path: str | Path, trust_pickle: bool = False, input_shape=None) -> IntModel:
    path = Path(path)
    data = read_regular_file(path, what=f"model file ({MODEL_KINDS})")  # read once
    if data.startswith(bnnfile.MAGIC):
        if len(data) > bnnfile.MAX_BNN_BYTES:
            raise ModelError(f"{path}: is {len(data):,} bytes, more than the "
                             f"{bnnfile.MAX_BNN_BYTES:,} a .bnn model file may have")
        return bnnfile.parse(data, str(path))
    from .nn.export import program_from_bytes  # torch only when a PyTorch model is given

    return convert_program(program_from_bytes(path, data, trust_pickle, input_shape), path.name)
