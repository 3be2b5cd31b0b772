#include "bnn_kernel_util.h"

/* out = all & ~mask | any & mask, written as all ^ ((all ^ any) & mask). */
BNN_INLINE uint32_t bnn_pool_word(uint32_t all, uint32_t any, uint32_t mask)
{
    return all ^ ((all ^ any) & mask);
}

/* Whether some window reaches outside the input: padding before, or windows past the last
 * row or column (padding after, ceil_mode). */
BNN_INLINE int bnn_pool_clips(const bnn_maxpool2d_t *p)
{
    return (p->pad_top | p->pad_left) != 0 ||
           (uint32_t)(p->out_h - 1u) * p->stride_h + p->k_h > p->in_h ||
           (uint32_t)(p->out_w - 1u) * p->stride_w + p->k_w > p->in_w;
}

/* Every window clipped to the input (bnn_tap_range): the taps outside are skipped, so the
 * AND and the OR run over the real taps only (there is at least one). Off the hot path: only
 * pools with padding or ceil_mode come here. */
#if defined(__GNUC__)
__attribute__((noinline)) /* the unpadded path keeps its registers and code */
#endif
static void bnn_maxpool2d_clipped(const bnn_maxpool2d_t *p, const uint32_t *in, uint32_t *out)
{
    const uint32_t cw = BNN_WORDS((uint32_t)p->ch);
    const size_t row = (size_t)p->in_w * cw; /* words per input row */
    uint32_t oy, ox, ky, kx, ky0, ky1, kx0, kx1, k;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy = (int32_t)(oy * p->stride_h) - (int32_t)p->pad_top;
        bnn_tap_range(iy, p->k_h, p->in_h, &ky0, &ky1);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix = (int32_t)(ox * p->stride_w) - (int32_t)p->pad_left;
            /* the first real tap: row iy + ky0, column ix + kx0 (both >= 0) */
            const uint32_t *win;
            bnn_tap_range(ix, p->k_w, p->in_w, &kx0, &kx1);
            win = in + (size_t)(uint32_t)(iy + (int32_t)ky0) * row +
                  (size_t)(uint32_t)(ix + (int32_t)kx0) * cw;
            for (k = 0; k < cw; ++k) {
                uint32_t all = 0xFFFFFFFFu, any = 0u;
                for (ky = 0; ky < ky1 - ky0; ++ky) {
                    const uint32_t *r = win + (size_t)ky * row + k;
                    for (kx = 0; kx < kx1 - kx0; ++kx) {
                        all &= r[(size_t)kx * cw];
                        any |= r[(size_t)kx * cw];
                    }
                }
                *out++ = bnn_pool_word(all, any, p->or_mask[k]);
            }
        }
    }
}

BNN_NONNULL void bnn_maxpool2d_b1(const bnn_maxpool2d_t *p, const uint32_t *in, uint32_t *out)
{
    const uint32_t cw = BNN_WORDS((uint32_t)p->ch);
    const size_t row = (size_t)p->in_w * cw; /* words per input row */
    uint32_t oy, ox, ky, kx, k;
    if (bnn_pool_clips(p)) {
        bnn_maxpool2d_clipped(p, in, out);
        return;
    }
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
