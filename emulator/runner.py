"""Run an integer model on a batch of uint8 images, op by op."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bnn_mcu.errors import InputShapeError
from bnn_mcu.ir.geometry import conform_images

from .kernels import KERNELS, argmax_s32


@dataclass
class EmulatorResult:
    scores: np.ndarray  # int32 [B, classes]
    predictions: np.ndarray  # int64 [B]
    layers: list = field(default_factory=list)  # per op: its raw output (packed words / scores)


def _as_batch(model, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise InputShapeError(f"inputs must be uint8 raw pixels, got {x.dtype}")
    fitted = conform_images(x, tuple(model.input_shape))
    if fitted is None:
        raise InputShapeError.for_shapes(model.input_shape, x.shape[1:])
    return fitted


def run(model, x: np.ndarray, trace: bool = False, batch: int = 1000) -> EmulatorResult:
    """Execute `model` on uint8 images x [B, H, W(, C)]; with trace, keep every op's output."""
    x = _as_batch(model, x)
    scores, layers = [], [[] for _ in model.ops] if trace else []
    for i in range(0, len(x), batch):
        act = x[i:i + batch]
        for j, op in enumerate(model.ops):
            # same NHWC bytes, the op's own rows (a 1-D conv reads H x W as 1 x HW)
            act = act.reshape((act.shape[0],) + tuple(op.in_shape[:2]) + act.shape[3:])
            act = KERNELS[op.kind](act, op)
            if trace:
                layers[j].append(act)
        scores.append(act.reshape(act.shape[0], -1))
    s = np.concatenate(scores) if scores else np.zeros((0, model.num_classes), np.int32)
    layers = [np.concatenate(parts) for parts in layers] if trace else []
    return EmulatorResult(s, argmax_s32(s), layers)
