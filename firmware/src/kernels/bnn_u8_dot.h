/*
 * uint8 x binary weights (first layers). With w = +1 for bit 0 and -1 for bit 1:
 *   acc = sum (x - zp) - 2 * m,  m = sum over bit-1 taps of (x - zp)
 *                               = (sum of x over bit-1 taps) - zp * (number of bit-1 taps)
 * so `sum` is computed once per position and each channel needs only a masked sum of raw
 * bytes and a bit count. All arithmetic is modulo 2^32 (the exact result fits int32).
 * Bytes go 4 at a time: 4 weight bits pick a byte mask from a table, and the masked word is
 * summed by USADA8 (DSP) or into two 16-bit lanes (other paths).
 */
#ifndef BNN_U8_DOT_H
#define BNN_U8_DOT_H

#include <string.h>

#include "bnn_popcount.h"

/* 4 weight bits -> byte mask: byte t is 0xFF when bit t is 1 (byte t holds x[t] once loaded). */
static const uint32_t bnn_nibble_bytes[16] = {
    0x00000000u, 0x000000FFu, 0x0000FF00u, 0x0000FFFFu,
    0x00FF0000u, 0x00FF00FFu, 0x00FFFF00u, 0x00FFFFFFu,
    0xFF000000u, 0xFF0000FFu, 0xFF00FF00u, 0xFF00FFFFu,
    0xFFFF0000u, 0xFFFF00FFu, 0xFFFFFF00u, 0xFFFFFFFFu,
};

/* x[0..3] as a word, x[t] in byte t. Inputs have no alignment guarantee: v6-M has no
 * unaligned loads (and big-endian cores order bytes the other way), so they assemble it. */
BNN_INLINE uint32_t bnn_load_u8x4(const uint8_t *x)
{
#if BNN_PATH_V6M || (defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
#else
    uint32_t v;
    memcpy(&v, x, sizeof v);
    return v;
#endif
}

/* A byte-sum accumulator. DSP: a plain sum (USADA8 adds the 4 bytes). Otherwise two 16-bit
 * lanes: 8 adds of up to 2 * 255 per lane, then bnn_u8_total (callers add at most 32 bytes). */
BNN_INLINE uint32_t bnn_u8_add(uint32_t acc, uint32_t bytes)
{
#if BNN_PATH_DSP
    return bnn_usada8(bytes, 0u, acc);
#else
    return acc + (bytes & 0x00FF00FFu) + ((bytes >> 8) & 0x00FF00FFu);
#endif
}

BNN_INLINE uint32_t bnn_u8_total(uint32_t acc)
{
#if BNN_PATH_DSP
    return acc;
#else
    return (acc & 0xFFFFu) + (acc >> 16);
#endif
}

/* Sum of x[0..n). */
BNN_INLINE uint32_t bnn_u8_sum(const uint8_t *x, uint32_t n)
{
    uint32_t s = 0u, i, k;
    for (i = 0; i < n; i += 32u) {
        uint32_t len = bnn_min_u32(32u, n - i), acc = 0u;
        for (k = 0; k + 4u <= len; k += 4u) acc = bnn_u8_add(acc, bnn_load_u8x4(x + i + k));
        for (; k < len; ++k) acc = bnn_u8_add(acc, x[i + k]);
        s += bnn_u8_total(acc);
    }
    return s;
}

/* For the BNN_BLOCK weight rows r[j] of a block (see bnn_block_rows), over the n taps
 * x[0..n) whose bits start at bit 0 of the rows: m[j] = sum of (x[i] - zp) where the bit is
 * 1 (the sum of those x[i] minus zp times their number). Bits of a row past n must be 0
 * (they are its tail). Each input word is loaded once for all rows (GCC spills part of the
 * state on Thumb-2 but that still beats one row at a time or passes of two). */
BNN_INLINE void bnn_u8_masked_rows(const uint8_t *x, uint32_t n, const uint32_t *const *r,
                                   uint32_t zp, uint32_t *m)
{
    uint32_t i, j, k;
    BNN_UNROLL_BLOCK
    for (j = 0; j < BNN_BLOCK; ++j) m[j] = 0u;
    for (i = 0; i < n; i += 32u) {
        uint32_t len = bnn_min_u32(32u, n - i), bits[BNN_BLOCK], acc[BNN_BLOCK];
        BNN_UNROLL_BLOCK
        for (j = 0; j < BNN_BLOCK; ++j) {
            bits[j] = r[j][i >> 5];
            m[j] -= zp * bnn_popcount32(bits[j]);
            acc[j] = 0u;
        }
        for (k = 0; k + 4u <= len; k += 4u) {
            uint32_t xv = bnn_load_u8x4(x + i + k);
            BNN_UNROLL_BLOCK
            for (j = 0; j < BNN_BLOCK; ++j) {
                acc[j] = bnn_u8_add(acc[j], xv & bnn_nibble_bytes[bits[j] & 15u]);
                bits[j] >>= 4;
            }
        }
        for (; k < len; ++k) {
            uint32_t xv = x[i + k];
            BNN_UNROLL_BLOCK
            for (j = 0; j < BNN_BLOCK; ++j) {
                acc[j] = bnn_u8_add(acc[j], xv & (0u - (bits[j] & 1u)));
                bits[j] >>= 1;
            }
        }
        BNN_UNROLL_BLOCK
        for (j = 0; j < BNN_BLOCK; ++j) m[j] += bnn_u8_total(acc[j]);
    }
}

/* acc = sum - 2 * m for the channels of a block, in place in m. */
BNN_INLINE void bnn_u8_acc(uint32_t sum, uint32_t *m)
{
    uint32_t j;
    BNN_UNROLL_BLOCK
    for (j = 0; j < BNN_BLOCK; ++j) m[j] = sum - 2u * m[j];
}

#endif /* BNN_U8_DOT_H */
