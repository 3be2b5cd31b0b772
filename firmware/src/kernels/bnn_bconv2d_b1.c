#include "bnn_popcount.h"

/* No im2col: each valid kernel row is one contiguous run of words in the NHWC input and in
 * the weights. Between those runs, the weight words of the padded taps form gaps; they count
 * only at borders: +1 padding reads 0 bits (x ^ w = w), -1 reads the C real bits set
 * (x ^ w = ~w on them), 0 skips the taps. */
void bnn_bconv2d_b1(const bnn_bconv2d_t *p, const uint32_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t cin = g->in_ch, cw = BNN_WORDS(cin), ow = BNN_WORDS((uint32_t)g->out_ch);
    const uint32_t taps = (uint32_t)g->k_h * g->k_w;
    const size_t stride = (size_t)taps * cw; /* words per weight row */
    uint32_t oy, ox, ky, c, j, nb;
    for (oy = 0; oy < g->out_h; ++oy) {
        for (ox = 0; ox < g->out_w; ++ox) {
            const bnn_window_t win = bnn_conv_window(g, oy, ox);
            const uint32_t run = (win.kx1 - win.kx0) * cw;
            const uint32_t valid = (win.ky1 - win.ky0) * (win.kx1 - win.kx0);
            const uint32_t k = (p->pad_value == 0 ? valid : taps) * cin;
            const uint32_t pad_bits = (taps - valid) * cin;
            bnn_sink_t s = bnn_sink(&p->stage, g->out_ch, out + ((size_t)oy * g->out_w + ox) * ow, NULL);
            for (c = 0; c < g->out_ch; c += nb) {
                const uint32_t *w = p->weights + c * stride;
                uint32_t cnt[BNN_BLOCK], gap[BNN_BLOCK], pos = 0u;
                nb = bnn_min_u32(BNN_BLOCK, g->out_ch - c);
                for (j = 0; j < BNN_BLOCK; ++j) cnt[j] = gap[j] = 0u;
                for (ky = win.ky0; run != 0u && ky < win.ky1; ++ky) {
                    const uint32_t start = (ky * g->k_w + win.kx0) * cw;
                    if (p->pad_value != 0 && start > pos)
                        bnn_popcount_rows(w, 1, w + pos, stride, start - pos, nb, gap);
                    bnn_popcount_rows(in + bnn_window_pixel(&win, g, ky) * cw, 0, w + start, stride,
                                      run, nb, cnt);
                    pos = start + run;
                }
                if (p->pad_value != 0 && stride > pos)
                    bnn_popcount_rows(w, 1, w + pos, stride, (uint32_t)stride - pos, nb, gap);
                for (j = 0; j < nb; ++j) {
                    const uint32_t pad = p->pad_value < 0 ? pad_bits - gap[j] : gap[j];
                    cnt[j] = k - 2u * (cnt[j] + pad); /* pad_value 0: no gaps counted */
                }
                bnn_sink_put(&s, c, nb, cnt);
            }
        }
    }
}
