/*
 * Dense layers, accumulate then stage: shared by the _b1 (threshold) and _s32 (scores)
 * kernels, which differ only in the sink they pass.
 */
#ifndef BNN_DENSE_IMPL_H
#define BNN_DENSE_IMPL_H

#include "bnn_hs_thumb2.h"
#include "bnn_u8_table.h"

#if BNN_PATH_V6M
/* Byte lanes of popcount(x[i] ^ w[i]) summed over i < n (1 <= n <= 31: a lane gets <= 8 per
 * word). On v6-M in Thumb-1 assembly: 16 instructions a word, the three masks and the end
 * pointer in registers (GCC's loop takes 20: it keeps two masks in high registers). */
#if BNN_NAKED_ASM
BNN_NAKED static uint32_t bnn_xor_lanes_naked(const uint32_t *x BNN_ASM_ARG,
                                              const uint32_t *w BNN_ASM_ARG, uint32_t n BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r7, lr}\n\t"
        "lsls r2, r2, #2\n\t"
        "adds r2, r0, r2\n\t"
        "mov r12, r2\n\t" /* end of x */
        "movs r4, #0\n\t"
        "ldr r5, =0x55555555\n\t"
        "ldr r6, =0x33333333\n\t"
        "ldr r7, =0x0F0F0F0F\n\t"
        "1:\n\t"
        "ldm r0!, {r2}\n\t"
        "ldm r1!, {r3}\n\t"
        "eors r2, r3\n\t"
        "lsrs r3, r2, #1\n\t"
        "ands r3, r5\n\t"
        "subs r2, r2, r3\n\t"
        "lsrs r3, r2, #2\n\t"
        "ands r2, r6\n\t"
        "ands r3, r6\n\t"
        "adds r2, r2, r3\n\t"
        "lsrs r3, r2, #4\n\t"
        "adds r2, r2, r3\n\t"
        "ands r2, r7\n\t"
        "adds r4, r4, r2\n\t"
        "cmp r0, r12\n\t"
        "bne 1b\n\t"
        "movs r0, r4\n\t"
        "pop {r4-r7, pc}\n\t"
        ".ltorg\n\t");
}
#endif

BNN_INLINE uint32_t bnn_xor_lanes(const uint32_t *x, const uint32_t *w, uint32_t n)
{
#if BNN_NAKED_ASM
    return bnn_xor_lanes_naked(x, w, n);
#else
    const bnn_masks_t k = bnn_masks();
    uint32_t lanes = 0u, i;
    for (i = 0; i < n; ++i) lanes += bnn_pc_lanes1(x[i] ^ w[i], k);
    return lanes;
#endif
}

/* Rows of 16 words or more, one at a time, 31 words per lane sum (shorter rows gain more
 * from the 4-row passes of bnn_popcount_rows, which share each input word). Kept out of line:
 * inlined, it costs the short-row code registers. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void bnn_bdense_long_rows(const bnn_bdense_t *p, const uint32_t *in, bnn_sink_t *s)
{
    const size_t stride = p->in_words;
    uint32_t c, j, nb, acc[BNN_BLOCK];
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        for (j = 0; j < nb; ++j) {
            const uint32_t *w = p->weights + (c + j) * stride;
            uint32_t i, n, count = 0u;
            for (i = 0; i < stride; i += n) {
                n = bnn_min_u32(31u, (uint32_t)stride - i);
                count += bnn_lanes_sum(bnn_xor_lanes(in + i, w + i, n));
            }
            acc[j] = p->in_bits - 2u * count;
        }
        bnn_sink_put(s, c, nb, acc);
    }
}
#endif

BNN_INLINE void bnn_bdense_run(const bnn_bdense_t *p, const uint32_t *in, bnn_sink_t *s)
{
    const size_t stride = p->in_words;
    uint32_t c, j, nb, acc[BNN_BLOCK];
#if BNN_PATH_DSP || BNN_PATH_V7M
    /* rows of >= 8 words: Harley-Seal in 32-row chunks, then one output word (or 32 scores)
     * per chunk; v7-M's byte lanes take up to 31 blocks of 8 words */
    if (stride >= 8u && (BNN_PATH_DSP || stride < 8u * 32u)) {
        uint32_t counts[32];
        for (c = 0; c < p->out_ch; c += nb) {
            nb = bnn_min_u32(32u, p->out_ch - c);
            bnn_hs_rows(in, p->weights + c * stride, (uint32_t)stride / 8u, (uint32_t)stride % 8u, nb, counts);
            if (s->bits != NULL) {
                s->bits[c >> 5] = bnn_threshold_word(counts, s->stage->thresholds + c, p->in_bits, nb);
            } else {
                for (j = 0; j < nb; ++j) counts[j] = p->in_bits - 2u * counts[j];
                for (j = 0; j < nb; j += BNN_BLOCK) bnn_sink_put(s, c + j, bnn_min_u32(BNN_BLOCK, nb - j), counts + j);
            }
        }
        return;
    }
#endif
#if BNN_PATH_V6M
    if (stride >= 16u) {
        bnn_bdense_long_rows(p, in, s);
        return;
    }
#endif
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        for (j = 0; j < BNN_BLOCK; ++j) acc[j] = 0u;
        bnn_popcount_rows(in, 0, p->weights + c * stride, stride, p->in_words, nb, acc);
        for (j = 0; j < nb; ++j) acc[j] = p->in_bits - 2u * acc[j];
        bnn_sink_put(s, c, nb, acc);
    }
}

/* The portable path: one tap at a time, w = +1 (bit 0) or -1 (bit 1). */
BNN_INLINE void bnn_dense_u8_simple(const bnn_dense_u8_t *p, const uint8_t *in, bnn_sink_t *s)
{
    const uint32_t k = p->in_features, zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS(k);
    uint32_t c, j, t, nb, acc[BNN_BLOCK];
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        for (j = 0; j < nb; ++j) {
            const uint32_t *w = p->weights + (c + j) * stride;
            uint32_t a = 0u;
            for (t = 0; t < k; ++t) {
                const uint32_t v = (uint32_t)in[t] - zp; /* modulo 2^32 */
                a += ((w[t >> 5] >> (t & 31u)) & 1u) ? 0u - v : v;
            }
            acc[j] = a;
        }
        bnn_sink_put(s, c, nb, acc);
    }
}

BNN_INLINE void bnn_dense_u8_run(const bnn_dense_u8_t *p, const uint8_t *in, bnn_sink_t *s)
{
#if BNN_PATH_PORTABLE
    bnn_dense_u8_simple(p, in, s);
#else
    /* the tables hold 8 * 255 at most: zero points outside the uint8 range take the slow path */
    if ((uint32_t)p->zero_point <= 255u) {
        bnn_dense_u8_tables(p, in, s);
    } else {
        bnn_dense_u8_simple(p, in, s);
    }
#endif
}

#endif /* BNN_DENSE_IMPL_H */
