#include "bnn_kernel_util.h"

/* out = all & ~mask | any & mask, written as all ^ ((all ^ any) & mask). */
BNN_INLINE uint32_t bnn_pool_word(uint32_t all, uint32_t any, uint32_t mask)
{
    return all ^ ((all ^ any) & mask);
}

BNN_NONNULL void bnn_maxpool2d_b1(const bnn_maxpool2d_t *p, const uint32_t *in, uint32_t *out)
{
    const uint32_t cw = BNN_WORDS((uint32_t)p->ch);
    const size_t row = (size_t)p->in_w * cw; /* words per input row */
    uint32_t oy, ox, ky, kx, k;
    if (p->k_h == 2u && p->k_w == 2u) {
        /* 2x2 windows (the usual pool): two rows, two pixels, every word once */
        const size_t step = (size_t)p->stride_w * cw;
        for (oy = 0; oy < p->out_h; ++oy) {
            const uint32_t *r0 = in + (size_t)oy * p->stride_h * row, *r1 = r0 + row;
            if (cw == 1u) { /* up to 32 channels: one word per pixel, the mask in a register */
                const uint32_t mask = p->or_mask[0];
                for (ox = 0; ox < p->out_w; ++ox, r0 += step, r1 += step) {
                    const uint32_t a = r0[0], b = r0[1], c = r1[0], d = r1[1];
                    *out++ = bnn_pool_word(a & b & c & d, a | b | c | d, mask);
                }
                continue;
            }
            for (ox = 0; ox < p->out_w; ++ox, r0 += step, r1 += step) {
                for (k = 0; k < cw; ++k) {
                    const uint32_t a = r0[k], b = r0[cw + k], c = r1[k], d = r1[cw + k];
                    *out++ = bnn_pool_word(a & b & c & d, a | b | c | d, p->or_mask[k]);
                }
            }
        }
        return;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            const uint32_t *win = in + (size_t)oy * p->stride_h * row + (size_t)ox * p->stride_w * cw;
            for (k = 0; k < cw; ++k) {
                uint32_t all = 0xFFFFFFFFu, any = 0u;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const uint32_t *r = win + ky * row + k;
                    for (kx = 0; kx < p->k_w; ++kx) {
                        all &= r[(size_t)kx * cw];
                        any |= r[(size_t)kx * cw];
                    }
                }
                /* tails: input and mask tails are 0, so both terms keep them 0 */
                *out++ = bnn_pool_word(all, any, p->or_mask[k]);
            }
        }
    }
}
