"""One numpy kernel per integer-IR op: the bit-exact specification of the C runtime.

Each function is named like its C twin (`bdense_b1` <-> `bnn_bdense_b1`) and works on the same
packed uint32 words, batched over the leading axis. Accumulators are exact integers (int64
here, int32 on the device: the converter keeps every value in int32 range).
"""

from __future__ import annotations

import numpy as np

from bnn_mcu.ir.bits import pack_bits, unpack_bits

_CHUNK_ELEMS = 1 << 24  # bound temporary arrays to ~100 MB


# -- output stages --------------------------------------------------------------------------

def threshold_b1(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """acc [..., N] -> packed bits [..., words(N)], bit = acc < T (bit 1 = -1)."""
    return pack_bits(acc < thresholds.astype(acc.dtype))


def scores_s32(acc: np.ndarray, mult: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """acc [..., N] -> int32 scores M*acc + B. Out of int32 range is a converter bug."""
    s = acc.astype(np.int64) * mult.astype(np.int64) + bias.astype(np.int64)
    if s.size and (s.min() < -(2**31) or s.max() > 2**31 - 1):
        raise OverflowError("score outside int32: the converter's scaling is wrong")
    return s.astype(np.int32)


def argmax_s32(scores: np.ndarray) -> np.ndarray:
    """First index of the maximum, like torch.argmax."""
    return np.argmax(scores, axis=-1).astype(np.int64)


# -- accumulators ---------------------------------------------------------------------------
# The accumulators are computed as +-1 matrix products in BLAS: every operand is a small
# integer, and every sum stays below 2^24 (float32) or 2^53 (float64), so they are exact.
# Inputs and outputs stay in the packed words the C uses.

def _exact_dtype(bound: int):
    return np.float32 if bound < 2**24 else np.float64


def _pm1(bits: np.ndarray, dtype) -> np.ndarray:
    """{0,1} bits -> {+1,-1} (bit 1 = -1)."""
    return (1 - 2 * bits.astype(np.int8)).astype(dtype)


def _unpack_pixels(words: np.ndarray, channels: int) -> np.ndarray:
    """[..., words(C)] packed pixels -> [..., C] bits (per-pixel tail bits dropped)."""
    return unpack_bits(words, channels)


def _matmul_chunked(a: np.ndarray, w: np.ndarray, rows_per_chunk: int) -> np.ndarray:
    """Exact integer products (float sums of small integers are exact: the cast truncates
    nothing); int64 so scores can be checked for int32 overflow."""
    out = np.empty((a.shape[0], w.shape[1]), dtype=np.int64)
    for i in range(0, a.shape[0], rows_per_chunk):
        out[i:i + rows_per_chunk] = a[i:i + rows_per_chunk] @ w
    return out


def bdense_acc(x: np.ndarray, weights: np.ndarray, k_bits: int, in_ch: int | None = None
               ) -> np.ndarray:
    """x [B, words], weights [N, words] -> acc [B, N] = sum of x*w over the K real bits.

    in_ch: channels per pixel when x is a flattened H x W x words(C) buffer (None: one pixel)."""
    b, n = x.shape[0], weights.shape[0]
    dt = _exact_dtype(k_bits)
    c = in_ch if in_ch is not None else k_bits
    cw = (c + 31) // 32
    xb = _pm1(_unpack_pixels(x.reshape(b, -1, cw), c).reshape(b, -1), dt)
    wb = _pm1(_unpack_pixels(weights.reshape(n, -1, cw), c).reshape(n, -1), dt)
    return _matmul_chunked(xb, wb.T, max(1, _CHUNK_ELEMS // max(1, xb.shape[1])))


def dense_u8_acc(x: np.ndarray, weights: np.ndarray, zero_point: int) -> np.ndarray:
    """x [B, K] uint8, weights [N, words(K)] -> acc [B, N] = sum w * (x - zp)."""
    k = x.shape[1]
    dt = _exact_dtype(k * 256)
    v = x.astype(dt) - dt(zero_point)
    return _matmul_chunked(v, _pm1(unpack_bits(weights, k), dt).T, 1 << 14)


def _patches(x: np.ndarray, kernel, stride, padding, fill) -> np.ndarray:
    """x [B, H, W, C] -> [B, Ho, Wo, kh, kw, C] windows of the padded input."""
    kh, kw = kernel
    sh, sw = stride
    pt, pl, pb, pr = padding
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    ho = (xp.shape[1] - kh) // sh + 1
    wo = (xp.shape[2] - kw) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    # win: [B, H', W', C, kh, kw] -> strided -> [B, Ho, Wo, kh, kw, C]
    win = win[:, : (ho - 1) * sh + 1: sh, : (wo - 1) * sw + 1: sw]
    return np.moveaxis(win, 3, -1)


def _conv_acc(xv: np.ndarray, w: np.ndarray, kernel, stride, padding, fill) -> np.ndarray:
    """Real-valued NHWC input [B, H, W, C] (small integers), w [kh*kw*C, N] -> acc [B, Ho, Wo, N],
    padded taps reading `fill`; batched so the im2col buffer stays bounded."""
    b = xv.shape[0]
    first = _patches(xv[:1], kernel, stride, padding, fill)
    _, ho, wo = first.shape[:3]
    per_img = ho * wo * max(int(np.prod(first.shape[3:])), w.shape[1])
    step = max(1, _CHUNK_ELEMS // max(1, per_img))
    out = np.empty((b, ho, wo, w.shape[1]), dtype=np.int32)  # |acc| < 2^31 (validated)
    for i in range(0, b, step):
        cols = _patches(xv[i:i + step], kernel, stride, padding, fill)
        nb = cols.shape[0]
        out[i:i + nb] = (cols.reshape(nb * ho * wo, -1) @ w).reshape(nb, ho, wo, -1)
    return out


def conv2d_u8_acc(x: np.ndarray, weights: np.ndarray, kernel, stride, padding,
                  zero_point: int, half_zero_point: bool = False) -> np.ndarray:
    """x [B, H, W, C] uint8 -> acc [B, Ho, Wo, N]; padded taps contribute 0. A half zero point
    (zero_point + 0.5) doubles the taps: w * (2x - (2 zero_point + 1))."""
    k = kernel[0] * kernel[1] * x.shape[3]
    dt = _exact_dtype(k * (512 if half_zero_point else 256))
    w = _pm1(unpack_bits(weights, k), dt).T  # [k, N], taps in (ky, kx, c) order
    if half_zero_point:
        xv = 2 * x.astype(dt) - dt(2 * zero_point + 1)
    else:
        xv = x.astype(dt) - dt(zero_point)
    return _conv_acc(xv, w, kernel, stride, padding, 0)


def bconv2d_acc(x: np.ndarray, weights: np.ndarray, in_ch: int, kernel, stride, padding,
                pad_value: int) -> np.ndarray:
    """x [B, H, W, words(C)] packed, weights [N, kh, kw, words(C)] -> acc [B, Ho, Wo, N].

    Padded taps read pad_value: +1, -1, or 0 (which skips them)."""
    n = weights.shape[0]
    kh, kw = kernel
    dt = _exact_dtype(kh * kw * in_ch)
    xv = _pm1(_unpack_pixels(x, in_ch), dt)
    w = _pm1(_unpack_pixels(weights, in_ch), dt).reshape(n, -1).T
    return _conv_acc(xv, w, kernel, stride, padding, pad_value)


# -- ops ------------------------------------------------------------------------------------

def _stage(acc: np.ndarray, out) -> np.ndarray:
    if hasattr(out, "thresholds"):
        return threshold_b1(acc, out.thresholds)
    return scores_s32(acc, out.mult, out.bias)


def dense_u8(x: np.ndarray, op) -> np.ndarray:
    """bnn_dense_u8_b1 / bnn_dense_u8_s32: x [B, H, W, C] uint8."""
    flat = x.reshape(x.shape[0], -1)
    out = _stage(dense_u8_acc(flat, op.weights, op.zero_point), op.out)
    return out.reshape(x.shape[0], 1, 1, -1)


def conv2d_u8(x: np.ndarray, op) -> np.ndarray:
    """bnn_conv2d_u8_b1: x [B, H, W, C] uint8 -> [B, Ho, Wo, words(N)]."""
    acc = conv2d_u8_acc(x, op.weights, op.kernel, op.stride, op.padding, op.zero_point,
                        op.half_zero_point)
    return _stage(acc, op.out)


def bdense(x: np.ndarray, op) -> np.ndarray:
    """bnn_bdense_b1 / bnn_bdense_s32: x [B, ...] packed words, flattened."""
    flat = x.reshape(x.shape[0], -1)
    out = _stage(bdense_acc(flat, op.weights, op.in_bits, op.in_shape[2]), op.out)
    return out.reshape(x.shape[0], 1, 1, -1)


def bconv2d(x: np.ndarray, op) -> np.ndarray:
    """bnn_bconv2d_b1: x [B, H, W, words(C)] -> [B, Ho, Wo, words(N)]."""
    acc = bconv2d_acc(x, op.weights, op.in_shape[2], op.kernel, op.stride, op.padding,
                      op.pad_value)
    return _stage(acc, op.out)


def maxpool2d_b1(x: np.ndarray, op) -> np.ndarray:
    """bnn_maxpool2d_b1: AND of the window's words, OR on the channels in or_mask; padded taps
    are skipped (all ones in the AND, zeros in the OR; every window has a real tap)."""
    def reduce(fn, fill):
        win = _patches(x, op.kernel, op.stride, op.padding, fill)  # [B, Ho, Wo, kh, kw, cw]
        return fn.reduce(win.reshape(win.shape[:3] + (-1, win.shape[-1])), axis=3)
    all_and = reduce(np.bitwise_and, np.uint32(0xFFFFFFFF))
    any_or = reduce(np.bitwise_or, np.uint32(0))
    m = op.or_mask.astype(np.uint32)
    return ((all_and & ~m) | (any_or & m)).astype(np.uint32)


def binarize_u8_b1(x: np.ndarray, op) -> np.ndarray:
    """bnn_binarize_u8_b1: bit 1 (= -1) where the pixel is below the threshold."""
    return pack_bits((x < op.threshold).astype(np.uint8))


KERNELS = {
    "dense_u8": dense_u8,
    "conv2d_u8": conv2d_u8,
    "bdense": bdense,
    "bconv2d": bconv2d,
    "maxpool2d": maxpool2d_b1,
    "binarize_u8": binarize_u8_b1,
}
