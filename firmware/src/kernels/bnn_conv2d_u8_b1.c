#include "bnn_u8_dot.h"

/* Bytes of a window gathered at once (a multiple of 32: every chunk starts on a weight word).
 * First layers have small windows (3x3x1 = 9, 5x5x3 = 75): one chunk, gathered once per
 * position and used by every channel. */
#define BNN_PATCH 128u

/* patch[0..len) = the window's taps t0 .. t0+len-1 in (ky, kx, c) order, with zp at padded
 * taps (x - zp = 0 there: exactly "skip the tap"), then zeros up to a multiple of 4; returns
 * that rounded length (the weight bits past the window are 0: they are the rows' tails). */
static uint32_t bnn_gather(const bnn_conv_geom_t *g, const bnn_window_t *win, const uint8_t *in,
                           uint8_t zp, uint32_t t0, uint32_t len, uint8_t *patch)
{
    const uint32_t cin = g->in_ch, row = (uint32_t)g->k_w * cin;
    const uint32_t a = win->kx0 * cin, b = win->kx1 * cin; /* valid bytes of a valid row */
    uint32_t ky, base, t;
    for (ky = 0, base = 0; ky < g->k_h && base < t0 + len; ++ky, base += row) {
        const uint32_t lo = t0 > base ? t0 - base : 0u, hi = bnn_min_u32(row, t0 + len - base);
        const uint8_t *src = NULL;
        if (ky >= win->ky0 && ky < win->ky1 && a < b) src = in + bnn_window_pixel(win, g, ky) * cin;
        for (t = lo; t < hi; ++t) {
            patch[base + t - t0] = (src != NULL && t >= a && t < b) ? src[t - a] : zp;
        }
    }
    for (t = len; (t & 3u) != 0u; ++t) patch[t] = 0u;
    return t;
}

void bnn_conv2d_u8_b1(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t k = (uint32_t)g->k_h * g->k_w * g->in_ch, ow = BNN_WORDS((uint32_t)g->out_ch);
    const uint32_t zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS(k);
    uint32_t patch_words[BNN_PATCH / 4u];
    uint8_t *patch = (uint8_t *)patch_words;
    uint32_t oy, ox, t0, c, j, nb;
    for (oy = 0; oy < g->out_h; ++oy) {
        for (ox = 0; ox < g->out_w; ++ox) {
            const bnn_window_t win = bnn_conv_window(g, oy, ox);
            bnn_sink_t s = bnn_sink(&p->stage, g->out_ch, out + ((size_t)oy * g->out_w + ox) * ow, NULL);
            uint32_t sum = 0u - zp * k, n = 0u;
            for (t0 = 0; t0 < k; t0 += BNN_PATCH) {
                n = bnn_gather(g, &win, in, (uint8_t)zp, t0, bnn_min_u32(BNN_PATCH, k - t0), patch);
                sum += bnn_u8_sum(patch, n);
            }
            for (c = 0; c < g->out_ch; c += nb) {
                const uint32_t *r[BNN_BLOCK];
                uint32_t m[BNN_BLOCK], part[BNN_BLOCK];
                nb = bnn_min_u32(BNN_BLOCK, g->out_ch - c);
                bnn_block_rows(p->weights + c * stride, stride, nb, r);
                if (k <= BNN_PATCH) {
                    bnn_u8_masked_rows(patch, n, r, zp, m); /* the one chunk, gathered above */
                } else {
                    for (j = 0; j < BNN_BLOCK; ++j) m[j] = 0u;
                    for (t0 = 0; t0 < k; t0 += BNN_PATCH) {
                        n = bnn_gather(g, &win, in, (uint8_t)zp, t0, bnn_min_u32(BNN_PATCH, k - t0), patch);
                        bnn_u8_masked_rows(patch, n, r, zp, part);
                        for (j = 0; j < BNN_BLOCK; ++j) {
                            m[j] += part[j];
                            r[j] += BNN_PATCH / 32u; /* the next chunk's weight words */
                        }
                    }
                }
                bnn_u8_acc(sum, m);
                bnn_sink_put(&s, c, nb, m);
            }
        }
    }
}
