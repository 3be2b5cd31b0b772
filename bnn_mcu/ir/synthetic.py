"""Random integer models for kernel, codegen and firmware tests (no torch needed).

Weights are random bits; thresholds are drawn around the middle of each layer's accumulator
distribution (so output bits vary) and often land exactly on attainable values (ties).
"""

from __future__ import annotations

import numpy as np

from .bits import pack_bits, words_for
from .ops import BConv2d, BDense, Conv2dU8, DenseU8, IntModel, MaxPool2d, Scores, Threshold
from .validate import max_abs_acc, validate


def _bits(rng, shape) -> np.ndarray:
    return rng.integers(0, 2, size=shape, dtype=np.uint8)


def _threshold(rng, n: int, spread: float, offset: float = 0.0) -> Threshold:
    t = np.rint(rng.normal(offset, spread, size=n)).astype(np.int64)
    # a few constant channels, like gamma = 0 in a real model
    if n >= 8:
        t[rng.integers(0, n)] = -(2**31)
        t[rng.integers(0, n)] = 2**31 - 1
    return Threshold(t.astype(np.int32))


def _scores(rng, n: int, op) -> Scores:
    acc_max = max(1, max_abs_acc(op))
    m_max = max(1, min(1 << 12, (2**30) // acc_max))
    mult = rng.integers(-m_max, m_max + 1, size=n).astype(np.int32)
    mult[mult == 0] = 1
    bias = rng.integers(-(1 << 20), 1 << 20, size=n).astype(np.int32)
    return Scores(mult, bias)


def random_model(seed: int, input_shape=(28, 28, 1), layers=None) -> IntModel:
    """layers: list of (kind, params) with kind in conv/pool/dense; the last dense gives scores.

    conv params: out, k, stride, pad, pad_value (binary convs only), zero_point and
    half_zero_point (first convs only);
    pool params: k, stride, pad (one int for every side, or top, left, bottom, right);
    dense params: out.
    """
    rng = np.random.default_rng(seed)
    if layers is None:
        layers = [("conv", dict(out=8, k=3, pad=1)), ("pool", dict(k=2)),
                  ("conv", dict(out=16, k=3, pad=1, pad_value=0)), ("pool", dict(k=2)),
                  ("dense", dict(out=40)), ("dense", dict(out=10))]
    ops, shape = [], tuple(input_shape)
    for i, (kind, p) in enumerate(layers):
        first, last = i == 0, i == len(layers) - 1
        h, w, c = shape
        name = f"{kind}{i}"
        if kind == "conv":
            k, s, pad = p.get("k", 3), p.get("stride", 1), p.get("pad", 0)
            geo = dict(kernel=(k, k), stride=(s, s), padding=(pad,) * 4)
            n = p["out"]
            if first:
                zp = p.get("zero_point", 128)
                wts = pack_bits(_bits(rng, (n, k * k * c)))
                half = p.get("half_zero_point", False)
                op = Conv2dU8(name, shape, **geo, weights=wts, zero_point=zp, out=None,
                              half_zero_point=half)
                spread = (256 if half else 128) * np.sqrt(k * k * c) / 2
            else:
                wb = _bits(rng, (n, k, k, c))
                op = BConv2d(name, shape, **geo, weights=pack_bits(wb),
                             pad_value=p.get("pad_value", 1), out=None)
                spread = np.sqrt(k * k * c)
            op.out = _threshold(rng, n, spread)
        elif kind == "pool":
            k, s = p.get("k", 2), p.get("stride", p.get("k", 2))
            pad = p.get("pad", 0)
            mask = pack_bits(_bits(rng, (c,)))
            op = MaxPool2d(name, shape, kernel=(k, k), stride=(s, s), or_mask=mask,
                           padding=tuple(pad) if isinstance(pad, (tuple, list)) else (pad,) * 4)
        elif kind == "dense":
            n = p["out"]
            if first:
                k = h * w * c
                op = DenseU8(name, shape, weights=pack_bits(_bits(rng, (n, k))),
                             zero_point=p.get("zero_point", 128), out=None)
                spread = 128 * np.sqrt(k) / 2
            else:
                wb = _bits(rng, (n, h * w, c))
                op = BDense(name, shape, weights=pack_bits(wb).reshape(n, h * w * words_for(c)),
                            out=None)
                spread = np.sqrt(h * w * c)
            op.out = _scores(rng, n, op) if last else _threshold(rng, n, spread)
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        ops.append(op)
        shape = op.out_shape
    model = IntModel(tuple(input_shape), ops, shape[2], {"name": f"synthetic-{seed}"})
    validate(model)
    return model
