/*
 * uint8 x binary dense layers by subset-sum tables (the fast paths of bnn_dense_u8_*).
 *
 * A weight byte covers 8 taps. For a group of 8 input bytes x[0..8) the table
 *     T[b] = sum over t < 8 of (bit t of b ? -(x[t] - zp) : +(x[t] - zp))      (b = 0..255)
 * holds that group's exact contribution for every possible weight byte b, so each channel pays
 * one table load per 8 taps: acc[c] = sum over groups g of T_g[byte g of row c]. The tables
 * depend on the input only: built once per inference and shared by every channel.
 *
 * Layout: the input is walked in passes of BNN_U8_TABLES groups (their tables, 512 B each,
 * live on the stack); channels go in batches of BNN_U8_BATCH whose int32 sums live on the
 * stack between passes. Entries are biased by BNN_U8_BIAS to fit uint16 (|T| <= 8 * 255);
 * the bias is taken out once per channel. Both sizes are per core class (stack budgets).
 */
#ifndef BNN_U8_TABLE_H
#define BNN_U8_TABLE_H

#include "bnn_popcount.h"

#define BNN_U8_BIAS 2048u

#if BNN_PATH_V6M
/* v6-M parts (the micro:bit: 2 KB of stack): one 512 B table, 128 sums (512 B). */
#define BNN_U8_TABLES 1u
#define BNN_U8_BATCH 128u
#else
/* A whole weight word per pass: 4 tables (2 KB), 256 sums (1 KB). */
#define BNN_U8_TABLES 4u
#define BNN_U8_BATCH 256u
#endif

/* Table entries are written as uint32 pairs and read as uint16: the reads go through a type
 * that may alias (GCC, clang), or through bytes elsewhere. */
#if defined(__GNUC__)
typedef uint16_t __attribute__((may_alias)) bnn_u16_alias_t;
#define BNN_TABLE_ENTRY(t, i) ((uint32_t)((const bnn_u16_alias_t *)(const void *)(t))[i])
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BNN_TABLE_ENTRY(t, i) \
    ((uint32_t)((const uint8_t *)(t))[2u * (i)] << 8 | ((const uint8_t *)(t))[2u * (i) + 1u])
#else
#define BNN_TABLE_ENTRY(t, i) \
    ((uint32_t)((const uint8_t *)(t))[2u * (i)] | (uint32_t)((const uint8_t *)(t))[2u * (i) + 1u] << 8)
#endif

/* The table of the taps x[0..n) (n <= 8; taps past n count as x = zp, i.e. 0) into tab[128]
 * (256 entries, entry b in the uint16 at index b). Written as 128 pairs (entries 2j, 2j+1):
 * flipping the sign of tap t adds -2(x[t] - zp) to an entry, so with d[t] that amount in both
 * halves, pair j + 2^k = pair j + d[k+1] (exact: every half stays in [8, 4088], so no carry
 * crosses halves). Pairs 0..7 are made in registers, then moved in place along a Gray code
 * of taps 4..7: each of the 16 blocks of eight pairs costs one add per pair. */
#define BNN_U8_BLOCK(pos, delta)                                                         \
    do {                                                                                 \
        uint32_t *b_ = tab + 8u * (pos);                                                 \
        p0 += (delta); p1 += (delta); p2 += (delta); p3 += (delta);                      \
        p4 += (delta); p5 += (delta); p6 += (delta); p7 += (delta);                      \
        b_[0] = p0; b_[1] = p1; b_[2] = p2; b_[3] = p3;                                  \
        b_[4] = p4; b_[5] = p5; b_[6] = p6; b_[7] = p7;                                  \
    } while (0)

#if BNN_PATH_MVE
#include <arm_mve.h>
/* Helium: pairs 0..7 in two vectors; a block is two vector adds of the scalar step and two
 * stores (GCC's own vectorization of the scalar code goes through the stack). */
#undef BNN_U8_BLOCK
#define BNN_U8_BLOCK(pos, delta)                                                         \
    do {                                                                                 \
        lo = vaddq_n_u32(lo, (delta));                                                   \
        hi = vaddq_n_u32(hi, (delta));                                                   \
        vst1q_u32(tab + 8u * (pos), lo);                                                 \
        vst1q_u32(tab + 8u * (pos) + 4u, hi);                                            \
    } while (0)
#endif

BNN_INLINE void bnn_u8_table(const uint8_t *x, uint32_t n, uint32_t zp, uint32_t *tab)
{
    uint32_t v[8], d[8], s = BNN_U8_BIAS, t, p0, p1, p2, p3, p4, p5, p6, p7;
    for (t = 0; t < 8u; ++t) {
        v[t] = t < n ? (uint32_t)x[t] - zp : 0u; /* x - zp, modulo 2^32 */
        s += v[t];
        d[t] = (0u - 2u * v[t]) * 0x00010001u;
    }
    p0 = s | ((s - 2u * v[0]) << 16); /* entries 0 and 1 */
    p1 = p0 + d[1];
    p2 = p0 + d[2];
    p3 = p1 + d[2];
    p4 = p0 + d[3];
    p5 = p1 + d[3];
    p6 = p2 + d[3];
    p7 = p3 + d[3];
#if BNN_PATH_MVE
    {
        const uint32_t first[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
        uint32x4_t lo = vld1q_u32(first), hi = vld1q_u32(first + 4);
#endif
    /* block index = bits of taps 4..7 set; Gray order: one tap flips per step */
    BNN_U8_BLOCK(0, 0u);
    BNN_U8_BLOCK(1, d[4]);
    BNN_U8_BLOCK(3, d[5]);
    BNN_U8_BLOCK(2, 0u - d[4]);
    BNN_U8_BLOCK(6, d[6]);
    BNN_U8_BLOCK(7, d[4]);
    BNN_U8_BLOCK(5, 0u - d[5]);
    BNN_U8_BLOCK(4, 0u - d[4]);
    BNN_U8_BLOCK(12, d[7]);
    BNN_U8_BLOCK(13, d[4]);
    BNN_U8_BLOCK(15, d[5]);
    BNN_U8_BLOCK(14, 0u - d[4]);
    BNN_U8_BLOCK(10, 0u - d[6]);
    BNN_U8_BLOCK(11, d[4]);
    BNN_U8_BLOCK(9, 0u - d[5]);
    BNN_U8_BLOCK(8, 0u - d[4]);
#if BNN_PATH_MVE
    }
#endif
}

/* Byte g of a weight row (taps 8g .. 8g+7, LSB first). */
BNN_INLINE uint32_t bnn_weight_byte(const uint32_t *row, uint32_t g)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (row[g >> 2] >> (8u * (g & 3u))) & 0xFFu;
#else
    return ((const uint8_t *)row)[g];
#endif
}

/* acc[c] += the table entries picked by weight bytes g0 .. g0+BNN_U8_TABLES-1 of row c, for
 * the nb rows from w on (t: the tables, 256 entries each). The inner loop of the layer: per channel and 8 * BNN_U8_TABLES taps,
 * a byte load, a table load and an add per table, and the sum's load and store. */
BNN_INLINE void bnn_u8_lookups(const uint32_t *t, const uint32_t *w, uint32_t g0,
                               size_t stride, uint32_t nb, uint32_t *acc)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint32_t c, j;
    for (c = 0; c < nb; ++c, w += stride) {
        for (j = 0; j < BNN_U8_TABLES; ++j) acc[c] += BNN_TABLE_ENTRY(t + 128u * j, bnn_weight_byte(w, g0 + j));
    }
#else
    /* bytes of the rows, walked by one pointer */
    const uint8_t *b = (const uint8_t *)w + g0, *end = b + (size_t)nb * stride * 4u;
    const size_t step = stride * 4u;
#if BNN_U8_TABLES == 4
    const uint32_t *t0 = t, *t1 = t + 128, *t2 = t + 256, *t3 = t + 384;
    /* four base registers: else GCC rebuilds them from the stack pointer at every load */
    BNN_OPAQUE(t0);
    BNN_OPAQUE(t1);
    BNN_OPAQUE(t2);
    BNN_OPAQUE(t3);
    for (; b != end; b += step, ++acc) {
        *acc += BNN_TABLE_ENTRY(t0, b[0]) + BNN_TABLE_ENTRY(t1, b[1]) + BNN_TABLE_ENTRY(t2, b[2]) +
                BNN_TABLE_ENTRY(t3, b[3]);
    }
#else
    const uint32_t *t0 = t;
    BNN_OPAQUE(t0);
    for (; b != end; b += step, ++acc) *acc += BNN_TABLE_ENTRY(t0, b[0]);
#endif
#endif
}

/* acc[c] for the channels of one output stage: sum over valid taps of w * (x - zp). */
BNN_INLINE void bnn_dense_u8_tables(const bnn_dense_u8_t *p, const uint8_t *in, bnn_sink_t *s)
{
    uint32_t tab[BNN_U8_TABLES][128];
    uint32_t acc[BNN_U8_BATCH];
    const uint32_t k = p->in_features, zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS(k);
    const uint32_t groups = (k + 7u) / 8u;
    const uint32_t passes = (groups + BNN_U8_TABLES - 1u) / BNN_U8_TABLES;
    const uint32_t bias = passes * BNN_U8_TABLES * BNN_U8_BIAS;
    uint32_t c0, nb, pass, c, g, j;
    for (c0 = 0; c0 < p->out_ch; c0 += nb) {
        nb = bnn_min_u32(BNN_U8_BATCH, p->out_ch - c0);
        for (c = 0; c < nb; ++c) acc[c] = 0u - bias;
        for (pass = 0; pass < passes; ++pass) {
            const uint32_t g0 = pass * BNN_U8_TABLES;
            const uint32_t *w = p->weights + (size_t)c0 * stride;
            for (j = 0; j < BNN_U8_TABLES; ++j) {
                g = g0 + j;
                if (g < groups) {
                    bnn_u8_table(in + 8u * g, bnn_min_u32(8u, k - 8u * g), zp, tab[j]);
                } else {
                    tab[j][0] = BNN_U8_BIAS * 0x00010001u; /* past the row: only weight byte 0 occurs */
                }
            }
            bnn_u8_lookups(tab[0], w, g0, stride, nb, acc);
        }
        for (c = 0; c < nb; c += BNN_BLOCK) {
            bnn_sink_put(s, c0 + c, bnn_min_u32(BNN_BLOCK, nb - c), acc + c);
        }
    }
}

#endif /* BNN_U8_TABLE_H */
