"""Run the source PyTorch model and capture the tensors the integer layers reproduce."""

from __future__ import annotations

import numpy as np
import torch

from ..ir.bits import pack_bits
from .program_input import program_input, run_batches


class _Capture(torch.fx.Interpreter):
    """Interpreter that keeps named nodes' outputs, optionally computing in float64."""

    def __init__(self, gm, names, f64: bool):
        super().__init__(gm)
        self.names = set(names)
        self.f64 = f64
        self.seen = {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self.names:
            self.seen[n.name] = out
        return out

    def _widen(self, v):
        if isinstance(v, torch.Tensor) and v.dtype == torch.float32:
            return v.double()
        if v is torch.float32:
            return torch.float64
        if isinstance(v, (list, tuple)):
            return type(v)(self._widen(x) for x in v)
        return v

    def call_function(self, target, args, kwargs):
        if self.f64:
            args, kwargs = self._widen(args), {k: self._widen(v) for k, v in kwargs.items()}
        return super().call_function(target, args, kwargs)

    def get_attr(self, target, args, kwargs):
        v = super().get_attr(target, args, kwargs)
        return self._widen(v) if self.f64 else v


def activation_words(t: torch.Tensor, layout=None) -> np.ndarray:
    """+-1 activations -> packed NHWC words, like the device's. `layout` (ids in HWC order,
    (H, W, C)) says where each element of t sits when the model reshaped or permuted it;
    without it, t is N x C x H x W, N x C x L or N x C."""
    a = t.detach()
    n = a.shape[0]
    if layout is not None:
        ids, (h, w, c) = layout
        hwc = torch.empty(n, h * w * c, dtype=a.dtype)
        hwc[:, torch.from_numpy(ids)] = a.reshape(n, -1)
        a = hwc.reshape(n, h, w, c)
    elif a.dim() == 4:
        a = a.permute(0, 2, 3, 1)
    elif a.dim() == 3:
        a = a.permute(0, 2, 1).unsqueeze(1)
    else:
        a = a.reshape(n, 1, 1, -1)
    return pack_bits((a < 0).numpy().astype(np.uint8))


@torch.no_grad()
def run_reference(ep, x: np.ndarray, names, batch: int = 500, f64: bool = False,
                  layouts: dict | None = None):
    """Scores [N, classes] (float64) and {hidden node name: packed words [N, H, W, words]}."""
    gm = ep.module()
    spec = program_input(ep)
    names = [n for n in names if n]
    layouts = layouts or {}
    scores, captured = [], {n: [] for n in names}

    def run(xb):
        cap = _Capture(gm, names, f64)
        out = cap.run(xb)
        return (out[0] if isinstance(out, (tuple, list)) else out), cap.seen

    for n_valid, (out, seen) in run_batches(spec, run, x, batch):
        scores.append(out[:n_valid].double().numpy())
        for n in names:
            if n in seen:
                captured[n].append(activation_words(seen[n][:n_valid], layouts.get(n)))
    words = {n: np.concatenate(parts) for n, parts in captured.items() if parts}
    return np.concatenate(scores), words


@torch.no_grad()
def predict(ep, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The exported program's predicted classes on uint8 [N, H, W, C] images."""
    gm = ep.module()
    spec = program_input(ep)
    preds = []
    for n_valid, out in run_batches(spec, gm, x, batch):
        out = out[0] if isinstance(out, (tuple, list)) else out
        preds.append(out[:n_valid].argmax(1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
