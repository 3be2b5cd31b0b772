"""Structural checks on an integer model: run between passes and on every loaded file."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .bits import tail_mask, words_for
from .ops import (BConv2d, BDense, BinarizeU8, Conv2dU8, DenseU8, IntModel, MaxPool2d, Scores,
                  Threshold, u8_tap_bound)

_U8_OPS = (DenseU8, Conv2dU8, BinarizeU8)


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ModelError(f"{where}: {msg}")


def _check_array(a, where: str, dtype, shape: tuple) -> None:
    _check(isinstance(a, np.ndarray) and a.dtype == dtype, where, f"expected {np.dtype(dtype)} array")
    _check(a.shape == shape, where, f"shape {a.shape}, expected {shape}")


def _check_tails(words: np.ndarray, bits: int, where: str) -> None:
    mask = tail_mask(bits)
    _check(not np.any(words & ~mask), where, "unused tail bits must be 0")


def max_abs_acc(op) -> int:
    """Largest |accumulator| the op can produce."""
    if isinstance(op, DenseU8):
        return op.in_features * u8_tap_bound(op.zero_point)
    if isinstance(op, Conv2dU8):
        return op.kernel[0] * op.kernel[1] * op.in_shape[2] * u8_tap_bound(op.zero_point,
                                                                            op.half_zero_point)
    if isinstance(op, BDense):
        return op.in_bits
    if isinstance(op, BConv2d):
        return op.kernel[0] * op.kernel[1] * op.in_shape[2]
    return 0


def _check_stage(op, where: str, last: bool) -> None:
    n = op.out_channels
    if last:
        _check(isinstance(op.out, Scores), where, "the last layer must output scores")
        _check_array(op.out.mult, where + ".mult", np.int32, (n,))
        _check_array(op.out.bias, where + ".bias", np.int32, (n,))
        bound = np.abs(op.out.mult.astype(np.int64)) * max_abs_acc(op) + np.abs(op.out.bias.astype(np.int64))
        _check(bool(np.all(bound < 2**31)), where, "scores can overflow int32")
    else:
        _check(isinstance(op.out, Threshold), where, "hidden layers must output thresholded bits")
        _check_array(op.out.thresholds, where + ".thresholds", np.int32, (n,))


def validate(model: IntModel, name: str = "model") -> None:
    _check(len(model.input_shape) == 3 and all(isinstance(s, int) and s > 0 for s in model.input_shape),
           name, f"bad input shape {model.input_shape}")
    _check(len(model.ops) > 0, name, "no layers")
    shape = tuple(model.input_shape)
    for i, op in enumerate(model.ops):
        where = f"{name}: layer {i} ({op.kind} {op.name!r})"
        last = i == len(model.ops) - 1
        # an op may read its input's pixels as other rows (a 1-D conv reads H x W as 1 x HW):
        # the packed NHWC bytes are the same
        ih, iw, ic = op.in_shape
        _check(ih * iw == shape[0] * shape[1] and ic == shape[2], where,
               f"reads {tuple(op.in_shape)} but receives {shape}")
        shape = tuple(op.in_shape)
        _check((i == 0) == isinstance(op, _U8_OPS), where,
               "uint8 layers must come first, and only first")
        h, w, c = shape
        if isinstance(op, (DenseU8, BDense)):
            kw = words_for(h * w * c) if isinstance(op, DenseU8) else h * w * words_for(c)
            _check(op.weights.ndim == 2 and op.weights.shape[1] == kw, where,
                   f"weights must be [N, {kw}] words, got {op.weights.shape}")
            _check(op.weights.dtype == np.uint32, where, "weights must be uint32")
            if isinstance(op, DenseU8):
                _check_tails(op.weights, h * w * c, where + ".weights")
            else:
                per_pixel = op.weights.reshape(op.weights.shape[0], h * w, words_for(c))
                _check_tails(per_pixel, c, where + ".weights")
        if isinstance(op, (Conv2dU8, BConv2d)):
            kh, kwid = op.kernel
            _check(kh >= 1 and kwid >= 1 and min(op.stride) >= 1, where, "bad kernel or stride")
            _check(all(0 <= p < 256 for p in op.padding), where, "bad padding")
            # out_shape reads the channel count from the weights: a 0-d array has none
            _check(op.weights.ndim >= 1, where, f"weights must be an array of filters, got shape {op.weights.shape}")
            ho, wo, n = op.out_shape
            _check(ho >= 1 and wo >= 1, where, f"output would be {ho}x{wo}")
            if isinstance(op, Conv2dU8):
                _check_array(op.weights, where + ".weights", np.uint32, (n, words_for(kh * kwid * c)))
                _check_tails(op.weights, kh * kwid * c, where + ".weights")
            else:
                _check_array(op.weights, where + ".weights", np.uint32, (n, kh, kwid, words_for(c)))
                _check_tails(op.weights, c, where + ".weights")
                _check(op.pad_value in (1, -1, 0), where, "pad_value must be +1, -1 or 0")
        if isinstance(op, (DenseU8, Conv2dU8)):
            _check(isinstance(op.zero_point, int) and 0 <= op.zero_point <= 255, where,
                   "zero_point must be an integer in 0..255")
        if isinstance(op, Conv2dU8):
            _check(isinstance(op.half_zero_point, bool), where, "half_zero_point must be a bool")
            _check(not op.half_zero_point or op.zero_point <= 254, where,
                   "a half zero point must be in 0.5..254.5 (zero_point 0..254)")
        if isinstance(op, BinarizeU8):
            _check(not last, where, "a model cannot end in a binarization")
            _check(isinstance(op.threshold, int) and 0 <= op.threshold <= 256, where,
                   "threshold must be an integer in 0..256")
        elif isinstance(op, MaxPool2d):
            _check(not last, where, "a model cannot end in a pool")
            _check_array(op.or_mask, where + ".or_mask", np.uint32, (words_for(c),))
            _check_tails(op.or_mask, c, where + ".or_mask")
            _check(min(op.kernel) >= 1 and min(op.stride) >= 1, where, "bad pool geometry")
            pt, pl, pb, pr = op.padding
            # every window then holds a real tap: the max over no value is undefined
            _check(min(op.padding) >= 0 and max(pt, pb) < op.kernel[0] and
                   max(pl, pr) < op.kernel[1], where,
                   f"pool padding {tuple(op.padding)} must be smaller than the kernel "
                   f"{tuple(op.kernel)}")
            ho, wo, _ = op.out_shape
            _check(ho >= 1 and wo >= 1, where, "bad pool geometry")
        else:
            _check(max_abs_acc(op) < 2**31, where, "accumulator can overflow int32")
            _check_stage(op, where, last)
        shape = op.out_shape
    _check(shape == (1, 1, model.num_classes), name,
           f"model outputs {shape} but declares {model.num_classes} classes")
