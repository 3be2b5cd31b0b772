"""Run an integer model on a batch of uint8 images, op by op."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bnn_mcu.errors import InputShapeError

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
    h, w, c = model.input_shape
    if x.shape[1:] == (h, w) and c == 1:
        x = x[..., None]
    if x.shape[1:] != (h, w, c):
        raise InputShapeError.for_shapes((h, w, c), x.shape[1:])
    return x


def run(model, x: np.ndarray, trace: bool = False, batch: int = 1000) -> EmulatorResult:
    """Execute `model` on uint8 images x [B, H, W(, C)]; with trace, keep every op's output."""
    x = _as_batch(model, x)
    scores, layers = [], [[] for _ in model.ops] if trace else []
    for i in range(0, len(x), batch):
        act = x[i:i + batch]
        for j, op in enumerate(model.ops):
            act = KERNELS[op.kind](act, op)
            if trace:
                layers[j].append(act)
        scores.append(act.reshape(act.shape[0], -1))
    s = np.concatenate(scores) if scores else np.zeros((0, model.num_classes), np.int32)
    layers = [np.concatenate(parts) for parts in layers] if trace else []
    return EmulatorResult(s, argmax_s32(s), layers)
