#include "bnn_kernel_util.h"

void bnn_maxpool2d_b1(const bnn_maxpool2d_t *p, const uint32_t *in, uint32_t *out)
{
    const uint32_t cw = BNN_WORDS((uint32_t)p->ch);
    const size_t row = (size_t)p->in_w * cw; /* words per input row */
    uint32_t oy, ox, ky, kx, k;
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            const uint32_t *win = in + (size_t)oy * p->stride_h * row + (size_t)ox * p->stride_w * cw;
            for (k = 0; k < cw; ++k) {
                uint32_t all = 0xFFFFFFFFu, any = 0u, mask = p->or_mask[k];
                for (ky = 0; ky < p->k_h; ++ky) {
                    const uint32_t *r = win + ky * row + k;
                    for (kx = 0; kx < p->k_w; ++kx) {
                        all &= r[kx * cw];
                        any |= r[kx * cw];
                    }
                }
                /* tails: input and mask tails are 0, so both terms keep them 0 */
                *out++ = (all & ~mask) | (any & mask);
            }
        }
    }
}
