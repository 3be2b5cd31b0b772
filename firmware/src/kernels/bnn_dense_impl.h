/*
 * Dense layers, accumulate then stage: shared by the _b1 (threshold) and _s32 (scores)
 * kernels, which differ only in the sink they pass.
 */
#ifndef BNN_DENSE_IMPL_H
#define BNN_DENSE_IMPL_H

#include "bnn_u8_dot.h"

BNN_INLINE void bnn_bdense_run(const bnn_bdense_t *p, const uint32_t *in, bnn_sink_t *s)
{
    const size_t stride = p->in_words;
    uint32_t c, j, nb, acc[BNN_BLOCK];
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        for (j = 0; j < BNN_BLOCK; ++j) acc[j] = 0u;
        bnn_popcount_rows(in, 0, p->weights + c * stride, stride, p->in_words, nb, acc);
        for (j = 0; j < nb; ++j) acc[j] = p->in_bits - 2u * acc[j];
        bnn_sink_put(s, c, nb, acc);
    }
}

BNN_INLINE void bnn_dense_u8_run(const bnn_dense_u8_t *p, const uint8_t *in, bnn_sink_t *s)
{
    const uint32_t k = p->in_features, zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS(k);
    const uint32_t sum = bnn_u8_sum(in, k) - zp * k;
    const uint32_t *r[BNN_BLOCK];
    uint32_t c, nb, m[BNN_BLOCK];
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        bnn_block_rows(p->weights + c * stride, stride, nb, r);
        bnn_u8_masked_rows(in, k, r, zp, m);
        bnn_u8_acc(sum, m);
        bnn_sink_put(s, c, nb, m);
    }
}

#endif /* BNN_DENSE_IMPL_H */
