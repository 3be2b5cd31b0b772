#include "bnn_u8_dot.h"

/* No im2col: each valid kernel row is a contiguous run of bytes in the HWC input and a
 * contiguous bit range of the weight row; padded taps are skipped. */
void bnn_conv2d_u8_b1(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t cin = g->in_ch, ow = BNN_WORDS((uint32_t)g->out_ch);
    const uint32_t zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS((uint32_t)g->k_h * g->k_w * cin);
    uint32_t oy, ox, ky, c, j, nb;
    for (oy = 0; oy < g->out_h; ++oy) {
        for (ox = 0; ox < g->out_w; ++ox) {
            const bnn_window_t win = bnn_conv_window(g, oy, ox);
            const uint32_t run = (win.kx1 - win.kx0) * cin;
            uint32_t sum = 0u;
            bnn_sink_t s = bnn_sink(&p->stage, g->out_ch, out + ((size_t)oy * g->out_w + ox) * ow, NULL);
            for (ky = win.ky0; ky < win.ky1; ++ky) {
                sum += bnn_u8_sum(in + bnn_window_pixel(&win, g, ky) * cin, run) - zp * run;
            }
            for (c = 0; c < g->out_ch; c += nb) {
                uint32_t m[BNN_BLOCK], n1[BNN_BLOCK];
                nb = bnn_min_u32(BNN_BLOCK, g->out_ch - c);
                for (j = 0; j < BNN_BLOCK; ++j) m[j] = n1[j] = 0u;
                for (ky = win.ky0; run != 0u && ky < win.ky1; ++ky) {
                    bnn_u8_masked_block(in + bnn_window_pixel(&win, g, ky) * cin, run,
                                        p->weights + c * stride, stride,
                                        (ky * g->k_w + win.kx0) * cin, nb, m, n1);
                }
                bnn_u8_acc(sum, zp, nb, m, n1);
                bnn_sink_put(&s, c, nb, m);
            }
        }
    }
}
