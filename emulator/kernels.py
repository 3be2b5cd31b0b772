"""One numpy kernel per integer-IR op: the bit-exact specification of the C runtime.

Each function is named like its C twin (`bdense_b1` <-> `bnn_bdense_b1`) and works on the same
packed uint32 words, batched over the leading axis. Accumulators are exact integers (int64
here, int32 on the device: the converter keeps every value in int32 range).
"""

from __future__ import annotations

import numpy as np

from bnn_mcu.ir.bits import pack_bits, popcount, unpack_bits
from bnn_mcu.ir.geometry import valid_taps

_CHUNK_ELEMS = 1 << 24  # bound temporary arrays to ~100 MB


# -- output stages --------------------------------------------------------------------------

def threshold_b1(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """acc [..., N] -> packed bits [..., words(N)], bit = acc < T (bit 1 = -1)."""
    return pack_bits(acc < thresholds.astype(np.int64))


def scores_s32(acc: np.ndarray, mult: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """acc [..., N] -> int32 scores M*acc + B. Out of int32 range is a converter bug."""
    s = acc * mult.astype(np.int64) + bias.astype(np.int64)
    if s.size and (s.min() < -(2**31) or s.max() > 2**31 - 1):
        raise OverflowError("score outside int32: the converter's scaling is wrong")
    return s.astype(np.int32)


def argmax_s32(scores: np.ndarray) -> np.ndarray:
    """First index of the maximum, like torch.argmax."""
    return np.argmax(scores, axis=-1).astype(np.int64)


# -- accumulators ---------------------------------------------------------------------------

def _pm1_matrix(weights: np.ndarray, k: int) -> np.ndarray:
    """Packed weight rows [N, words] -> float64 {+1,-1} [k, N] (exact in BLAS)."""
    return (1.0 - 2.0 * unpack_bits(weights, k).astype(np.float64)).T


def bdense_acc(x: np.ndarray, weights: np.ndarray, k_bits: int) -> np.ndarray:
    """x [B, words], weights [N, words] -> acc [B, N] = K - 2*popcount(x ^ w)."""
    b, n = x.shape[0], weights.shape[0]
    acc = np.empty((b, n), dtype=np.int64)
    step = max(1, _CHUNK_ELEMS // max(1, n * weights.shape[1]))
    for i in range(0, b, step):
        xor = x[i:i + step, None, :] ^ weights[None, :, :]
        acc[i:i + step] = k_bits - 2 * popcount(xor).sum(axis=-1, dtype=np.int64)
    return acc


def dense_u8_acc(x: np.ndarray, weights: np.ndarray, zero_point: int) -> np.ndarray:
    """x [B, K] uint8, weights [N, words(K)] -> acc [B, N] = sum w * (x - zp)."""
    k = x.shape[1]
    v = x.astype(np.float64) - float(zero_point)
    return np.rint(v @ _pm1_matrix(weights, k)).astype(np.int64)  # exact: |acc| < 2^53


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


def conv2d_u8_acc(x: np.ndarray, weights: np.ndarray, kernel, stride, padding,
                  zero_point: int) -> np.ndarray:
    """x [B, H, W, C] uint8 -> acc [B, Ho, Wo, N]; padded taps contribute 0."""
    c = x.shape[3]
    k = kernel[0] * kernel[1] * c
    w = _pm1_matrix(weights, k)  # [k, N]
    # padded taps hold zero_point, so (x - zp) = 0 there: exactly "skip the tap"
    cols = _patches(x, kernel, stride, padding, zero_point)
    b, ho, wo = cols.shape[:3]
    cols = cols.reshape(b * ho * wo, k).astype(np.float64) - float(zero_point)
    acc = np.rint(cols @ w).astype(np.int64)
    return acc.reshape(b, ho, wo, -1)


def bconv2d_acc(x: np.ndarray, weights: np.ndarray, in_ch: int, kernel, stride, padding,
                pad_value: int) -> np.ndarray:
    """x [B, H, W, words(C)] packed, weights [N, kh, kw, words(C)] -> acc [B, Ho, Wo, N]."""
    b, h, w_, cw = x.shape
    n = weights.shape[0]
    kh, kw = kernel
    k_full = kh * kw * in_ch
    # Pad with +1 (bit 0) and correct: a padded tap contributed sum_c w[n, tap, c] (x = +1);
    # pad_value 0 removes it, pad_value -1 turns it into -sum_c w.
    cols = _patches(x, kernel, stride, padding, 0)  # [B, Ho, Wo, kh, kw, cw]
    ho, wo = cols.shape[1:3]
    cols = cols.reshape(b, ho * wo, kh * kw * cw)
    wflat = weights.reshape(n, kh * kw * cw)
    acc = np.empty((b, ho * wo, n), dtype=np.int64)
    per_img = ho * wo * n * kh * kw * cw
    step = max(1, _CHUNK_ELEMS // max(1, per_img))
    for i in range(0, b, step):
        xor = cols[i:i + step, :, None, :] ^ wflat[None, None, :, :]
        acc[i:i + step] = k_full - 2 * popcount(xor).sum(axis=-1, dtype=np.int64)
    acc = acc.reshape(b, ho, wo, n)
    if pad_value != 1 and any(padding):
        valid = valid_taps((h, w_), kernel, stride, padding)  # [Ho, Wo, kh, kw]
        # [N, kh, kw]: sum over channels of the +-1 weights of each tap
        w_sum = in_ch - 2 * popcount(weights).sum(axis=-1, dtype=np.int64)
        pad_contrib = np.einsum("hwyx,nyx->hwn", (~valid).astype(np.int64), w_sum)
        acc = acc - (1 - pad_value) * pad_contrib[None]
    return acc


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
    acc = conv2d_u8_acc(x, op.weights, op.kernel, op.stride, op.padding, op.zero_point)
    return _stage(acc, op.out)


def bdense(x: np.ndarray, op) -> np.ndarray:
    """bnn_bdense_b1 / bnn_bdense_s32: x [B, ...] packed words, flattened."""
    flat = x.reshape(x.shape[0], -1)
    out = _stage(bdense_acc(flat, op.weights, op.in_bits), op.out)
    return out.reshape(x.shape[0], 1, 1, -1)


def bconv2d(x: np.ndarray, op) -> np.ndarray:
    """bnn_bconv2d_b1: x [B, H, W, words(C)] -> [B, Ho, Wo, words(N)]."""
    acc = bconv2d_acc(x, op.weights, op.in_shape[2], op.kernel, op.stride, op.padding,
                      op.pad_value)
    return _stage(acc, op.out)


def maxpool2d_b1(x: np.ndarray, op) -> np.ndarray:
    """bnn_maxpool2d_b1: AND of the window's words, OR on the channels in or_mask."""
    win = _patches(x, op.kernel, op.stride, (0, 0, 0, 0), 0)  # [B, Ho, Wo, kh, kw, cw]
    all_and = np.bitwise_and.reduce(win.reshape(win.shape[:3] + (-1, win.shape[-1])), axis=3)
    any_or = np.bitwise_or.reduce(win.reshape(win.shape[:3] + (-1, win.shape[-1])), axis=3)
    m = op.or_mask.astype(np.uint32)
    return ((all_and & ~m) | (any_or & m)).astype(np.uint32)


KERNELS = {
    "dense_u8": dense_u8,
    "conv2d_u8": conv2d_u8,
    "bdense": bdense,
    "bconv2d": bconv2d,
    "maxpool2d": maxpool2d_b1,
}
