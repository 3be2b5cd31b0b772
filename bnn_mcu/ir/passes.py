"""Small pure passes from the float IR to the integer IR, with a validator at the end.

    fold_batchnorm       response table -> one int32 threshold per channel (+ weight flip)
    fold_pool            max-pool before/after the threshold -> bitwise AND/OR per channel
    fold_output_affine   last layer's response -> integer per-class affine scores
    pack_weights         +-1 weights -> packed bits (flips applied, per-pixel word padding)
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .bits import pack_bits, words_for
from .float_ir import FloatLayer, FloatModel
from .ops import (INT32_MAX, INT32_MIN, BConv2d, BDense, BinarizeU8, Conv2dU8, DenseU8, IntModel,
                  MaxPool2d, Scores, Threshold)
from .validate import max_abs_acc, validate


def fold_batchnorm(layer: FloatLayer) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds and flips from the response: out_bit = acc' < T, acc' = -acc where flipped.

    A channel whose output bit (1 = -1) falls as acc grows (gamma > 0) is `acc < T` with T the
    first attainable acc giving +1. One whose bit rises (gamma < 0) is `acc >= U`, i.e.
    `-acc < 1 - U` after flipping its weights. Constant channels (gamma = 0) get INT32_MIN/MAX.
    """
    acc, resp = layer.acc_values, layer.response
    n = resp.shape[0]
    bits = resp < 0  # bit 1 = -1
    thresholds = np.empty(n, dtype=np.int64)
    flips = np.zeros(n, dtype=bool)
    for c in range(n):
        b = bits[c]
        if b.all() or not b.any():
            thresholds[c] = INT32_MAX if b[0] else INT32_MIN
            continue
        steps = np.flatnonzero(b[1:] != b[:-1])
        if len(steps) != 1:
            raise ModelError(
                f"layer {layer.name!r}, channel {c}: the output is not a monotone step of the "
                f"accumulator (it switches sign {len(steps)} times), so no single threshold "
                "reproduces it; is the activation a sign of batch norm?")
        first_after = acc[steps[0] + 1]
        if b[0]:  # 1..1 0..0: bit = acc < first acc giving +1
            thresholds[c] = first_after
        else:  # 0..0 1..1: bit = acc >= U  <=>  -acc < 1 - U
            flips[c] = True
            thresholds[c] = 1 - first_after
    return thresholds.astype(np.int32), flips


def fold_pool(layer: FloatLayer, flips: np.ndarray) -> np.ndarray:
    """or_mask bits for the pool: AND where the pooled extreme maps to 'any +1', OR otherwise.

    After the sign, max over +-1 values is +1 if any is +1: AND of bits. Before it, the pool
    picks the max accumulator (or, through a decreasing function, the min): the output is the
    per-position output at that extreme, i.e. AND of bits when the whole activation moves the
    same way as the pre-pool part, OR when they move opposite ways.
    """
    pre = layer.pool.pre_direction
    n = layer.response.shape[0]
    if pre is None:
        return pack_bits(np.zeros(n, dtype=np.uint8))
    # whole activation's direction: +1 non-decreasing (bit falls with acc) unless flipped
    total = np.where(flips, -1, 1)
    use_or = (pre != 0) & (pre != total)
    return pack_bits(use_or.astype(np.uint8))


def fold_output_affine(layer: FloatLayer) -> Scores:
    """Integer scores M*acc + B for a response that is affine in acc (batch norm, bias).

    M and B are the float affine scaled by 2^s and rounded half away from zero, with s the
    largest shift keeping every score inside int32. Class order can differ from the float
    model only at near-ties; verify counts such disagreements.
    """
    acc = layer.acc_values.astype(np.float64)
    resp = np.asarray(layer.response, dtype=np.float64)
    if len(acc) < 2:
        alpha = np.zeros(resp.shape[0])
        beta = resp[:, 0]
    else:
        alpha = (resp[:, -1] - resp[:, 0]) / (acc[-1] - acc[0])
        beta = resp[:, 0] - alpha * acc[0]
        fit = alpha[:, None] * acc[None, :] + beta[:, None]
        scale = np.maximum(np.abs(resp).max(axis=1), 1e-30)
        bad = np.flatnonzero(np.abs(fit - resp).max(axis=1) > 1e-6 * scale)
        if len(bad):
            raise ModelError(f"last layer {layer.name!r}, class {bad[0]}: the scores are not an "
                             "affine function of the accumulator (only batch norm, bias and "
                             "scaling may follow the last binary layer)")
    if not np.all(np.isfinite(alpha)) or not np.all(np.isfinite(beta)):
        raise ModelError(f"last layer {layer.name!r}: scores are not finite")
    kmax = max(1, int(np.abs(layer.acc_values).max()))
    bound = float(np.max(np.abs(alpha) * kmax + np.abs(beta)))
    if bound == 0.0:
        shift = 0
    else:
        shift = int(np.floor(np.log2((2**30) / bound)))
    shift = min(shift, 60)
    for s in range(shift, shift - 64, -1):
        mult = _round_away(alpha * 2.0**s)
        bias = _round_away(beta * 2.0**s)
        if np.all(np.abs(mult) * kmax + np.abs(bias) < 2**31 - 1):
            return Scores(mult.astype(np.int32), bias.astype(np.int32))
    raise ModelError(f"last layer {layer.name!r}: no integer scaling fits int32")


def _round_away(x: np.ndarray) -> np.ndarray:
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def pack_weights(layer: FloatLayer, flips: np.ndarray) -> np.ndarray:
    """+-1 weights -> packed bits (bit 1 = -1) in the layout the kernels read."""
    w = layer.weights.astype(np.int8) * np.where(flips, -1, 1).astype(np.int8).reshape(
        (-1,) + (1,) * (layer.weights.ndim - 1))
    bits = (w < 0).astype(np.uint8)
    n = bits.shape[0]
    if layer.uint8_input:  # one bit vector per output channel, inputs in HWC / tap order
        return pack_bits(bits.reshape(n, -1))
    if layer.kind == "conv":  # [N, kh, kw, words(C)]
        return pack_bits(bits)
    h, w_, c = layer.in_shape  # dense over a packed H x W x words(C) buffer
    return pack_bits(bits.reshape(n, h * w_, c)).reshape(n, h * w_ * words_for(c))


def lower_layer(layer: FloatLayer, last: bool) -> list:
    """One float layer -> one or two integer ops (the op, then its pool)."""
    if last:
        if layer.pool is not None:
            raise ModelError(f"last layer {layer.name!r}: a pool after the last layer is not supported")
        flips = np.zeros(layer.response.shape[0], dtype=bool)
        stage = fold_output_affine(layer)
    else:
        thresholds, flips = fold_batchnorm(layer)
        stage = Threshold(thresholds)
    weights = pack_weights(layer, flips)
    name = layer.name
    if layer.kind == "dense":
        op = (DenseU8(name, layer.in_shape, weights=weights, zero_point=layer.zero_point, out=stage)
              if layer.uint8_input else BDense(name, layer.in_shape, weights=weights, out=stage))
    else:
        geo = dict(kernel=tuple(layer.kernel), stride=tuple(layer.stride), padding=tuple(layer.padding))
        if layer.uint8_input:
            op = Conv2dU8(name, layer.in_shape, **geo, weights=weights, zero_point=layer.zero_point,
                          out=stage, half_zero_point=layer.half_zero_point)
        else:
            op = BConv2d(name, layer.in_shape, **geo, weights=weights, pad_value=layer.pad_value,
                         out=stage)
    if max_abs_acc(op) >= 2**31:
        raise ModelError(f"layer {name!r}: accumulators can overflow int32")
    ops = [op]
    if layer.pool is not None:
        ops.append(MaxPool2d(name + ".pool", op.out_shape, kernel=tuple(layer.pool.kernel),
                             stride=tuple(layer.pool.stride), or_mask=fold_pool(layer, flips),
                             padding=tuple(layer.pool.padding)))
    return ops


def lower(model: FloatModel) -> IntModel:
    """The pass list: every float layer lowered, then the whole model validated."""
    ops, trace = [], []
    if model.binarized_input is not None:
        threshold, node = model.binarized_input
        ops.append(BinarizeU8("input.binarize", tuple(model.input_shape), threshold=threshold))
        trace.append(node)
    for i, layer in enumerate(model.layers):
        ops += lower_layer(layer, last=i == len(model.layers) - 1)
    meta = dict(model.meta)
    meta["exact_float32"] = model.exact_float32
    meta["trace"] = trace + [n for layer in model.layers for n in
                             (layer.trace_nodes[:1] if layer.pool is None else layer.trace_nodes)]
    int_model = IntModel(tuple(model.input_shape), ops, ops[-1].out_channels, meta,
                         trace_layouts=dict(model.trace_layouts), reading=dict(model.reading))
    validate(int_model, meta.get("name", "model"))
    return int_model
