"""Run the source PyTorch model and capture the tensors the integer layers reproduce."""

from __future__ import annotations

import numpy as np
import torch

from ..ir.bits import pack_bits


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


def activation_words(t: torch.Tensor) -> np.ndarray:
    """+-1 activations (N x C x H x W or N x C) -> packed NHWC words, like the device's."""
    a = t.detach()
    if a.dim() == 4:
        a = a.permute(0, 2, 3, 1)
    else:
        a = a.reshape(a.shape[0], 1, 1, -1)
    return pack_bits((a < 0).numpy().astype(np.uint8))


@torch.no_grad()
def run_reference(ep, x: np.ndarray, names, batch: int = 500, f64: bool = False):
    """Scores [N, classes] (float64) and {hidden node name: packed words [N, H, W, words]}."""
    gm = ep.module()
    names = [n for n in names if n]
    scores, captured = [], {n: [] for n in names}
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        xb = torch.from_numpy(xb[..., 0] if xb.shape[-1] == 1 else xb)
        cap = _Capture(gm, names, f64)
        out = cap.run(xb)
        out = out[0] if isinstance(out, (tuple, list)) else out
        scores.append(out.double().numpy())
        for n in names:
            if n in cap.seen:
                captured[n].append(cap.seen[n])
    words = {}
    for n, parts in captured.items():
        if parts:
            words[n] = np.concatenate([activation_words(p) for p in parts])
    return np.concatenate(scores), words
