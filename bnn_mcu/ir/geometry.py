"""Convolution geometry shared by the converter, the emulator and code generation."""

from __future__ import annotations

import numpy as np


def conv_out(size: int, k: int, s: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - k) // s + 1


def pool_out_hw(in_hw, kernel, stride, padding) -> tuple[int, int]:
    """Output (H, W) of a pool with padding (top, left, bottom, right) over an in_hw image."""
    pt, pl, pb, pr = padding
    return (conv_out(in_hw[0], kernel[0], stride[0], pt, pb),
            conv_out(in_hw[1], kernel[1], stride[1], pl, pr))


def pool_padding(size: int, k: int, s: int, p: int, ceil_mode: bool) -> tuple[int, int]:
    """(before, after) padding of one axis of a max-pool with PyTorch's `padding` p: p on both
    sides; with ceil_mode, the output is rounded up instead of down, expressed as extra padding
    after, except that a last window starting in that padding (not in the input or the padding
    before it) is dropped, as PyTorch drops it. conv_out of the result is the pool's size."""
    after = p
    if ceil_mode:
        out = -(-(size + 2 * p - k) // s) + 1  # rounded up
        if (out - 1) * s >= size + p:  # the last window would start in the padding after
            out -= 1
        after = max(p, (out - 1) * s + k - size - p)
    return p, after


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


def conform_images(x: np.ndarray, hwc: tuple) -> np.ndarray | None:
    """Images [N, ...] as the model's [N, H, W, C], or None when they are other images.

    N x H x W is read as one channel; a model that reads its pixels as one row (H = 1, e.g. an
    MLP exported on flat N x 784 vectors) takes images of the same pixel count and channels,
    whose bytes are the same."""
    h, w, c = hwc
    if x.shape[1:] == (h, w, c):
        return x
    if x.shape[1:] == (h, w) and c == 1:
        return x[..., None]
    per = int(np.prod(x.shape[1:])) if x.ndim > 1 else 0
    channels = x.shape[-1] if x.ndim == 4 else 1
    if h == 1 and per == w * c and channels == c:
        return x.reshape(len(x), 1, w, c)
    return None
