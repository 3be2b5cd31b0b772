"""Bit packing, written down once (DESIGN.md §2).

Encoding: bit 1 = -1, bit 0 = +1. Bits are packed along the last axis into uint32 words,
least significant bit first; unused tail bits are 0.
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 32


def words_for(bits: int) -> int:
    return (bits + WORD_BITS - 1) // WORD_BITS


def sign_bits(x: np.ndarray) -> np.ndarray:
    """Bits of sign(x) with sign(0) = sign(-0.0) = +1: bit 1 where x < 0."""
    return (np.asarray(x) < 0).astype(np.uint8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack {0,1} along the last axis into uint32 words, LSB first, tail bits 0."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.shape[-1]
    nw = words_for(n)
    padded = np.zeros(bits.shape[:-1] + (nw * WORD_BITS,), dtype=np.uint8)
    padded[..., :n] = bits
    as_bytes = np.packbits(padded.reshape(bits.shape[:-1] + (nw * 4, 8)), axis=-1,
                           bitorder="little").reshape(bits.shape[:-1] + (nw * 4,))
    return np.ascontiguousarray(as_bytes).view("<u4").astype(np.uint32)


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of pack_bits: uint32 words along the last axis -> n bits (uint8 0/1)."""
    words = np.ascontiguousarray(np.asarray(words, dtype="<u4"))
    as_bytes = words.view(np.uint8).reshape(words.shape[:-1] + (words.shape[-1] * 4,))
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :n]


def bits_to_pm1(bits: np.ndarray) -> np.ndarray:
    """{0,1} bits -> {+1,-1} as int8."""
    return (1 - 2 * np.asarray(bits, dtype=np.int8)).astype(np.int8)


def tail_mask(bits: int) -> np.ndarray:
    """uint32 mask per word with the used bits set (the last word may be partial)."""
    return pack_bits(np.ones(bits, dtype=np.uint8))


def popcount(words: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.asarray(words, dtype=np.uint32)).astype(np.int32)
