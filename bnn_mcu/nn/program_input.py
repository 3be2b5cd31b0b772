"""How an exported program takes its images, and feeding it data-set images that way.

Data sets and devices hold images as raw uint8 H x W x C bytes. Outside models take them in
their own spelling: N x H x W, N x H x W x 1, N x 1 x H x W (one channel, so the same byte
order), as uint8 or as float pixels 0..255, exported with a dynamic batch or a fixed one
(`torch.export.export(model, (x[:4],))`, as the PyTorch docs show). One reading of that, used
by the importer, the PyTorch reference runs and `evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModelError

# float inputs are accepted when they carry the 0..255 pixel values themselves
_INPUT_DTYPES = (torch.uint8, torch.float32, torch.float64)


@dataclass(frozen=True)
class ProgramInput:
    hwc: tuple  # (H, W, C) of the raw image the device takes
    sample_shape: tuple  # one image as the program takes it (no batch dimension)
    dtype: torch.dtype
    static_batch: int | None  # the batch size the program was exported with, if fixed

    def to_program(self, x: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, C] images -> the program's input tensor (same bytes, its spelling)."""
        t = torch.from_numpy(np.ascontiguousarray(x)).reshape((len(x),) + self.sample_shape)
        return t if self.dtype == torch.uint8 else t.to(self.dtype)


def image_hwc(sample_shape: tuple) -> tuple | None:
    """(H, W, C) of one input image, or None when the shape is not an image we can read.

    Flat vectors (N x pixels) are one row of pixels. 3-D shapes are channels-last unless they lead with a single channel and end with more than
    4 values (N x 1 x H x W): with one channel both spellings have the same byte order."""
    if len(sample_shape) == 1:  # flat vectors: the pixels as one row
        return (1, sample_shape[0], 1)
    if len(sample_shape) == 2:
        return (sample_shape[0], sample_shape[1], 1)
    if len(sample_shape) == 3:
        a, b, c = sample_shape
        if a == 1 and c > 4:
            return (b, c, 1)
        return (a, b, c)
    return None


def program_input(ep: torch.export.ExportedProgram, name: str = "model") -> ProgramInput:
    names = list(ep.graph_signature.user_inputs)
    if len(names) != 1:
        raise ModelError(f"{name}: the model takes {len(names)} inputs; bnn-mcu models take one "
                         "image batch")
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == names[0])
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor) or val.dim() < 1:
        raise ModelError(f"{name}: the model's input is not a tensor")
    if val.dtype not in _INPUT_DTYPES:
        raise ModelError(f"{name}: the model's input is {val.dtype}; bnn-mcu models take 8-bit "
                         "pixels as uint8 (or as float values 0..255) and scale them inside "
                         "the model")
    batch = val.shape[0]
    static = int(batch) if isinstance(batch, int) else None
    sample = tuple(int(s) for s in val.shape[1:])
    hwc = image_hwc(sample)
    if hwc is None:
        raise ModelError(f"{name}: input shape {tuple(val.shape)} is not N x H x W, "
                         "N x H x W x C, N x 1 x H x W or N x pixels")
    return ProgramInput(hwc, sample, val.dtype, static)


@torch.no_grad()
def run_batches(spec: ProgramInput, fn, x: np.ndarray, batch: int = 500):
    """Call fn(input tensor) on x in batches the program accepts; yields (n_valid, output).

    A program exported with a fixed batch only runs on that batch size: the last batch is
    padded with copies of its first image and the caller keeps the first n_valid rows."""
    size = spec.static_batch or batch
    for i in range(0, len(x), size):
        xb = x[i:i + size]
        n = len(xb)
        if spec.static_batch and n < size:
            xb = np.concatenate([xb, np.repeat(xb[:1], size - n, axis=0)])
        yield n, fn(spec.to_program(xb))
