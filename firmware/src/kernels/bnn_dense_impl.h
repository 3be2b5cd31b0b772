/*
 * Dense layers, accumulate then stage: shared by the _b1 (threshold) and _s32 (scores)
 * kernels, which differ only in the sink they pass.
 */
#ifndef BNN_DENSE_IMPL_H
#define BNN_DENSE_IMPL_H

#include "bnn_hs_thumb2.h"
#include "bnn_u8_table.h"

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
