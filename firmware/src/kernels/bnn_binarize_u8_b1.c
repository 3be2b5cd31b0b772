#include "bnn_kernel_util.h"

/* A binarized input image costs one compare per pixel value: it runs once per inference, ahead
 * of binary layers that do far more work, so the portable C is the only path. */
BNN_NONNULL void bnn_binarize_u8_b1(const bnn_binarize_u8_t *p, const uint8_t *in, uint32_t *out)
{
    const uint32_t ch = p->ch, t = p->threshold;
    uint32_t px, base, c;
    for (px = 0; px < p->pixels; ++px, in += ch) {
        for (base = 0; base < ch; base += 32u) {
            const uint32_t n = ch - base < 32u ? ch - base : 32u;
            uint32_t word = 0u; /* tail bits stay 0 */
            for (c = 0; c < n; ++c) {
                word |= (uint32_t)(in[base + c] < t) << c;
            }
            *out++ = word;
        }
    }
}
