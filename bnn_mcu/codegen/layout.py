"""The weight words as the C kernels read them: the .bnn file's words (the emulator's) but for
binary dense rows of 8 words or more, whose 8-word blocks are stored in pair form.

Pair form (firmware/src/kernels/bnn_dense_impl.h, bnn_bdense_hs): in each row, words 2i and
2i + 1 of the first 8 * (in_words // 8) become (w[2i], w[2i] ^ w[2i + 1]); the 0..7 words past
those blocks stay as they are. The kernel puts the input in the same form, so a Harley-Seal
carry-save adder gets a ^ b of a pair with one XOR. Every core reads this layout (the generated
C is the same for all of them).
"""

from __future__ import annotations

import numpy as np

from ..ir.ops import BDense

#: Words per Harley-Seal block; rows of fewer words stay plain.
HS_BLOCK_WORDS = 8


def pair_form(rows: np.ndarray) -> np.ndarray:
    """[N, K] words -> the same with the words of each row's 8-word blocks in pairs
    (w0, w0 ^ w1); rows under 8 words unchanged."""
    out = np.array(rows, dtype=np.uint32, copy=True)
    k = out.shape[-1]
    if k < HS_BLOCK_WORDS:
        return out
    end = k - k % HS_BLOCK_WORDS
    out[..., 1:end:2] ^= out[..., 0:end:2]
    return out


def kernel_weights(op) -> np.ndarray:
    """The words of op.weights as its C kernel reads them (uint32, same shape)."""
    if isinstance(op, BDense):
        return pair_form(op.weights)
    return np.asarray(op.weights, dtype=np.uint32)
