"""Convolution geometry shared by the converter, the emulator and code generation."""

from __future__ import annotations

import numpy as np


def conv_out(size: int, k: int, s: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - k) // s + 1


def valid_taps(in_hw, kernel, stride, padding) -> np.ndarray:
    """[Ho, Wo, kh, kw] bool: which taps of each output position fall inside the image."""
    (h, w), (kh, kw), (sh, sw) = in_hw, kernel, stride
    pt, pl, pb, pr = padding
    ho, wo = conv_out(h, kh, sh, pt, pb), conv_out(w, kw, sw, pl, pr)
    iy = np.arange(ho)[:, None] * sh - pt + np.arange(kh)[None, :]  # [Ho, kh]
    ix = np.arange(wo)[:, None] * sw - pl + np.arange(kw)[None, :]  # [Wo, kw]
    vy = (iy >= 0) & (iy < h)
    vx = (ix >= 0) & (ix < w)
    return vy[:, None, :, None] & vx[None, :, None, :]
