/*
 * uint8 x binary weights (first layers). With w = +1 for bit 0 and -1 for bit 1:
 *   acc = sum (x - zp) - 2 * sum over bit-1 taps of (x - zp)
 *       = sum - 2 * (m - zp * n1),  m = sum of x over bit-1 taps, n1 = number of bit-1 taps
 * so `sum` is computed once per position and each channel needs only a masked sum of raw
 * bytes and a bit count. All arithmetic is modulo 2^32 (the exact result fits int32).
 */
#ifndef BNN_U8_DOT_H
#define BNN_U8_DOT_H

#include <string.h>

#include "bnn_popcount.h"

#if BNN_PATH_DSP
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the DSP uint8 path expects little-endian byte order"
#endif
/* 4 weight bits -> byte mask: byte t is 0xFF when bit t is 1 (byte t is x[t] once loaded). */
static const uint32_t bnn_nibble_bytes[16] = {
    0x00000000u, 0x000000FFu, 0x0000FF00u, 0x0000FFFFu,
    0x00FF0000u, 0x00FF00FFu, 0x00FFFF00u, 0x00FFFFFFu,
    0xFF000000u, 0xFF0000FFu, 0xFF00FF00u, 0xFF00FFFFu,
    0xFFFF0000u, 0xFFFF00FFu, 0xFFFFFF00u, 0xFFFFFFFFu,
};

/* Inputs have no alignment guarantee. */
BNN_INLINE uint32_t bnn_load_u8x4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
#endif

/* The n (1..32) bits of w from bit `bit` on, as bits 0..n-1 (the rest 0). Reads only the
 * words that hold them: a row may end at the end of the weight array. */
BNN_INLINE uint32_t bnn_bits_at(const uint32_t *w, uint32_t bit, uint32_t n)
{
    uint32_t k = bit >> 5, s = bit & 31u;
    uint32_t v = w[k] >> s;
    if (s != 0u && s + n > 32u) v |= w[k + 1u] << (32u - s);
    return n < 32u ? v & ((1u << n) - 1u) : v;
}

/* Sum of x[0..n). */
BNN_INLINE uint32_t bnn_u8_sum(const uint8_t *x, uint32_t n)
{
    uint32_t s = 0u, i = 0u;
#if BNN_PATH_DSP
    for (; i + 4u <= n; i += 4u) s = bnn_usada8(bnn_load_u8x4(x + i), 0u, s);
#endif
    for (; i < n; ++i) s += x[i];
    return s;
}

/* For the nb <= BNN_BLOCK weight rows j (row j at w + j*stride), over the n taps whose bits
 * start at bit0: m[j] += sum of x[i] where the bit is 1, n1[j] += number of 1 bits.
 * Each input byte (group) is loaded once for all rows. */
BNN_INLINE void bnn_u8_masked_rows(const uint8_t *x, uint32_t n, const uint32_t *w,
                                   size_t stride, uint32_t bit0, uint32_t nb, uint32_t *m,
                                   uint32_t *n1)
{
    uint32_t i, j, k;
    for (i = 0; i < n; i += 32u) {
        uint32_t len = bnn_min_u32(32u, n - i), bits[BNN_BLOCK];
        for (j = 0; j < nb; ++j) {
            bits[j] = bnn_bits_at(w + j * stride, bit0 + i, len);
            n1[j] += bnn_popcount32(bits[j]);
        }
        k = 0u;
#if BNN_PATH_DSP
        for (; k + 4u <= len; k += 4u) {
            uint32_t xv = bnn_load_u8x4(x + i + k);
            for (j = 0; j < nb; ++j) {
                m[j] = bnn_usada8(xv & bnn_nibble_bytes[bits[j] & 15u], 0u, m[j]);
                bits[j] >>= 4;
            }
        }
#endif
        for (; k < len; ++k) {
            uint32_t xv = x[i + k];
            for (j = 0; j < nb; ++j) {
                m[j] += xv & (0u - (bits[j] & 1u));
                bits[j] >>= 1;
            }
        }
    }
}

/* bnn_u8_masked_rows with a compile-time row count for full blocks. */
BNN_INLINE void bnn_u8_masked_block(const uint8_t *x, uint32_t n, const uint32_t *w,
                                    size_t stride, uint32_t bit0, uint32_t nb, uint32_t *m,
                                    uint32_t *n1)
{
    if (nb == BNN_BLOCK) {
        bnn_u8_masked_rows(x, n, w, stride, bit0, BNN_BLOCK, m, n1);
    } else {
        bnn_u8_masked_rows(x, n, w, stride, bit0, nb, m, n1);
    }
}

/* acc = sum - 2 * (m - zp * n1) for the nb channels of a block, in place in m. */
BNN_INLINE void bnn_u8_acc(uint32_t sum, uint32_t zp, uint32_t nb, uint32_t *m,
                           const uint32_t *n1)
{
    uint32_t j;
    for (j = 0; j < nb; ++j) m[j] = sum - 2u * (m[j] - zp * n1[j]);
}

#endif /* BNN_U8_DOT_H */
