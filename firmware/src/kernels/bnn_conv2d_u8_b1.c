#include "bnn_conv3_u8_dsp.h"
#include "bnn_conv_u8_small.h"

static void bnn_conv2d_u8_masked(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    bnn_conv2d_u8_masked_impl(p, in, out, 0);
}

#if !BNN_PATH_PORTABLE
/* Windows of K <= 12 taps, 32 channels at a time (their records on the stack). Per output row,
 * its k_h input rows with their zero-point padding are copied into `rows`; a window is k_h
 * runs of k_w * C bytes there. */
static void bnn_conv2d_u8_small(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t cin = g->in_ch, k = (uint32_t)g->k_h * g->k_w * cin;
    const uint32_t ow = BNN_WORDS((uint32_t)g->out_ch), zp = (uint32_t)p->zero_point;
    const uint32_t lead = (uint32_t)g->pad_left * cin, body = (uint32_t)g->in_w * cin;
    const uint32_t wp = lead + body + (uint32_t)g->pad_right * cin; /* padded row */
    uint32_t rec[32u * BNN_CONV_U8_RECORD];
    uint8_t rows[BNN_CONV_U8_ROWS + 4u]; /* + slack for the word loads of 3x3x1 windows */
    uint32_t c0, m, c, oy, ky;
    for (c0 = 0; c0 < g->out_ch; c0 += 32u) {
        m = bnn_min_u32(32u, g->out_ch - c0);
        for (c = 0; c < m; ++c) { /* last channel first: it ends at bit 0 */
            const uint32_t ch = c0 + m - 1u - c;
#if BNN_PATH_DSP
            bnn_conv_u8_record(p->weights + ch, k, zp, p->stage.thresholds[ch], rec + c * BNN_CONV_U8_RECORD);
#else
            bnn_conv_u8_record(p->weights + ch, k, p->stage.thresholds[ch], rec + c * BNN_CONV_U8_RECORD);
#endif
        }
        for (oy = 0; oy < g->out_h; ++oy) {
            const int32_t top = (int32_t)(oy * g->stride_h) - (int32_t)g->pad_top;
            for (ky = 0; ky < g->k_h; ++ky) {
                const int32_t iy = top + (int32_t)ky;
                uint8_t *d = rows + ky * wp;
                memset(d, (int)zp, wp);
                if (iy >= 0 && iy < (int32_t)g->in_h) memcpy(d + lead, in + (size_t)(uint32_t)iy * body, body);
            }
#if BNN_PATH_DSP
            bnn_conv_u8_row(g, rows, wp, rec, m, out + (size_t)oy * g->out_w * ow + c0 / 32u, ow);
#else
            bnn_conv_u8_row(g, rows, wp, rec, m, out + (size_t)oy * g->out_w * ow + c0 / 32u, ow, zp);
#endif
        }
    }
}
#endif

BNN_NONNULL void bnn_conv2d_u8_b1(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
#if !BNN_PATH_PORTABLE
    const bnn_conv_geom_t *g = &p->g;
#if BNN_PATH_DSP
    if (g->k_h == 3u && g->k_w == 3u && g->in_ch == 1u && g->stride_h == 1u && g->stride_w == 1u &&
        (uint32_t)p->zero_point <= 255u) {
        bnn_conv3_u8(p, in, out);
        return;
    }
#endif
    if ((uint32_t)g->k_h * g->k_w * g->in_ch <= BNN_CONV_U8_MAX_TAPS &&
        (uint32_t)p->zero_point <= 255u &&
        (uint32_t)g->k_h * ((uint32_t)g->pad_left + g->in_w + g->pad_right) * g->in_ch <= BNN_CONV_U8_ROWS) {
        bnn_conv2d_u8_small(p, in, out);
        return;
    }
#endif
    bnn_conv2d_u8_masked(p, in, out);
}
