#include "bnn_conv_u8_small.h"

/* A zero point zero_point + 0.5 (bnn_kernels.h): the integral accumulator acc (padded taps read
 * zero_point) and S, the sum of the valid taps' weights, give acc_h = 2 acc - S (see
 * bnn_half_acc in bnn_conv_u8_small.h). */

static void bnn_conv2d_u8_masked_half(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    bnn_conv2d_u8_masked_impl(p, in, out, 1);
}

#if !BNN_PATH_PORTABLE
#if BNN_PATH_DSP
/* Output words of the windows xa <= x < xb of a row of windows `step` bytes apart in `rows`
 * (k_h runs of k_w * C bytes, wp apart), out o[x * ow], channels of the records rec (m of
 * them): the windows are made at once, then matched against the records two at a time. */
BNN_INLINE void bnn_conv_u8_span(const bnn_conv_geom_t *g, const uint8_t *rows, uint32_t wp,
                                 uint32_t step, const uint32_t *rec, uint32_t m, uint32_t *o,
                                 uint32_t ow, uint32_t zp, uint32_t xa, uint32_t xb)
{
    const uint32_t run = (uint32_t)g->k_w * g->in_ch;
    uint32_t win[3u * BNN_CONV_U8_PIXELS], x0, n, i;
    (void)zp; /* in the records */
    for (x0 = xa; x0 < xb; x0 += n) {
        n = bnn_min_u32(BNN_CONV_U8_PIXELS, xb - x0);
        for (i = 0; i < n; ++i) bnn_conv_u8_window(rows + (x0 + i) * step, g->k_h, run, wp, win + 3u * i);
        bnn_conv_u8_pixels(win, n, rec, m, o + x0 * ow, ow);
    }
}
#else
BNN_INLINE void bnn_conv_u8_span(const bnn_conv_geom_t *g, const uint8_t *rows, uint32_t wp,
                                 uint32_t step, const uint32_t *rec, uint32_t m, uint32_t *o,
                                 uint32_t ow, uint32_t zp, uint32_t xa, uint32_t xb)
{
    const uint32_t run = (uint32_t)g->k_w * g->in_ch;
    const uint32_t k = (uint32_t)g->k_h * run, k1 = k / 2u;
    const uint32_t mask = m == 32u ? 0xFFFFFFFFu : (1u << m) - 1u;
    uint32_t t1[64], t2[64], v[BNN_CONV_U8_MAX_TAPS], ox, ky, j, i;
    for (ox = xa, o += xa * ow; ox < xb; ++ox, o += ow) {
        const uint8_t *base = rows + ox * step;
        for (ky = 0, i = 0; ky < g->k_h; ++ky) {
            for (j = 0; j < run; ++j) v[i++] = (uint32_t)base[ky * wp + j] - zp;
        }
        bnn_subset_sums(v, k1, 0x80000000u, t1);
        bnn_subset_sums(v + k1, k - k1, 0u, t2);
        *o = bnn_conv_u8_word(t1, t2, rec, m) & mask;
    }
}
#endif

/* The k_h input rows output row oy reads, with their zero-point padding, into `rows` (rows of
 * wp bytes), as bnn_conv2d_u8_small copies them. */
BNN_INLINE void bnn_conv_u8_fill_rows(const bnn_conv_geom_t *g, const uint8_t *in, uint32_t oy,
                                      uint32_t zp, uint32_t wp, uint8_t *rows)
{
    const uint32_t lead = (uint32_t)g->pad_left * g->in_ch, body = (uint32_t)g->in_w * g->in_ch;
    const int32_t top = (int32_t)(oy * g->stride_h) - (int32_t)g->pad_top;
    uint32_t ky;
    for (ky = 0; ky < g->k_h; ++ky) {
        const int32_t iy = top + (int32_t)ky;
        uint8_t *d = rows + ky * wp;
        memset(d, (int)zp, wp);
        if (iy >= 0 && iy < (int32_t)g->in_h) memcpy(d + lead, in + (size_t)(uint32_t)iy * body, body);
    }
}

/* A half zero point on small windows: the output positions split, along each axis, into runs
 * whose windows have the same valid taps. The records are made once per 32 channels; per pair
 * of runs only their threshold words change, to that pattern's threshold on the integral
 * accumulator (see bnn_half_acc), so a pixel costs what it costs on the integral path. Runs of
 * whole columns go through `rows`, row by row; a border column through a strip of its own
 * k_w input columns, down the column (its windows two at a time, as along a row). */

/* A run [o0, o1) of output positions along one axis from o, whose taps [k0, k1) are valid. */
typedef struct {
    uint32_t o0, o1, k0, k1;
} bnn_conv_run_t;

BNN_INLINE bnn_conv_run_t bnn_conv_run(uint32_t o, uint32_t out, uint32_t k, uint32_t stride,
                                       uint32_t pad, uint32_t size)
{
    bnn_conv_run_t r;
    uint32_t k0, k1;
    bnn_tap_range((int32_t)(o * stride) - (int32_t)pad, k, size, &r.k0, &r.k1);
    for (r.o0 = o, r.o1 = o + 1u; r.o1 < out; ++r.o1) {
        bnn_tap_range((int32_t)(r.o1 * stride) - (int32_t)pad, k, size, &k0, &k1);
        if (k0 != r.k0 || k1 != r.k1) break;
    }
    return r;
}

/* A channel of a block (in record order): its threshold clamped to acc_h's range, its record's
 * base and its weight bits (16 bits each: |t| <= 12 * 511 + 1, |base| <= 12 * 255, 12 bits). */
typedef struct {
    int16_t t, base;
    uint16_t bits;
} bnn_half_channel_t;

/* The threshold words of the records for windows whose valid taps are the bits of `valid`. */
BNN_INLINE void bnn_conv_u8_half_pattern(const bnn_half_channel_t *hc, uint32_t m, uint32_t k,
                                         uint32_t zp, uint32_t valid, uint32_t *rec)
{
    const int32_t n_valid = (int32_t)bnn_popcount32(valid);
    uint32_t c;
    for (c = 0; c < m; ++c) {
        const int32_t v = hc[c].t + n_valid - 2 * (int32_t)bnn_popcount32(hc[c].bits & valid) + 1;
        /* acc_h < t  <=>  acc < floor((t + S + 1) / 2), S = n_valid - 2 (valid taps of bit 1) */
        rec[c * BNN_CONV_U8_RECORD + BNN_CONV_U8_RECORD_T] =
            bnn_conv_u8_record_t(v >= 0 ? v / 2 : -((1 - v) / 2), hc[c].base, k, zp); /* floor */
    }
}

/* The strip of output column x for output rows y .. y+n-1: its (n - 1) stride_h + k_h input
 * rows, each the k_w * C bytes under the column's window (zp outside the image), `run` apart. */
BNN_INLINE void bnn_conv_u8_fill_strip(const bnn_conv_geom_t *g, const uint8_t *in, uint32_t y,
                                       uint32_t n, uint32_t x, uint32_t zp, uint8_t *strip)
{
    const uint32_t cin = g->in_ch, run = (uint32_t)g->k_w * cin;
    const uint32_t count = (n - 1u) * g->stride_h + g->k_h;
    const int32_t top = (int32_t)(y * g->stride_h) - (int32_t)g->pad_top;
    const int32_t left = (int32_t)(x * g->stride_w) - (int32_t)g->pad_left;
    uint32_t kx0, kx1, r, t;
    bnn_tap_range(left, g->k_w, g->in_w, &kx0, &kx1);
    memset(strip, (int)zp, count * run);
    for (r = 0; r < count; ++r) {
        const int32_t iy = top + (int32_t)r;
        if (iy >= 0 && iy < (int32_t)g->in_h && kx0 < kx1) {
            const uint8_t *src = in + ((size_t)(uint32_t)iy * g->in_w + (uint32_t)(left + (int32_t)kx0)) * cin;
            uint8_t *d = strip + r * run + kx0 * cin;
            for (t = 0; t < (kx1 - kx0) * cin; ++t) d[t] = src[t];
        }
    }
}

static void bnn_conv2d_u8_small_half(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t cin = g->in_ch, run = (uint32_t)g->k_w * cin, k = (uint32_t)g->k_h * run;
    const uint32_t ow = BNN_WORDS((uint32_t)g->out_ch), zp = (uint32_t)p->zero_point;
    const uint32_t wp = ((uint32_t)g->pad_left + g->in_w + g->pad_right) * cin;
    const int32_t a = (int32_t)(k * (zp > 127u ? 2u * zp + 1u : 509u - 2u * zp)); /* max |acc_h| */
    uint32_t rec[32u * BNN_CONV_U8_RECORD];
    bnn_half_channel_t hc[32];
    uint8_t rows[BNN_CONV_U8_ROWS + 4u];
    bnn_conv_run_t ry, rx;
    uint32_t c0, m, c, oy, ox, y, x, n, ky, valid, strip_rows = BNN_CONV_U8_PIXELS;
    /* output rows of a strip: ((n - 1) stride_h + k_h) run <= BNN_CONV_U8_ROWS (n >= 1: the
     * caller checked k_h * wp, and run <= wp); no division (v6-M has none) */
    while (strip_rows > 1u && ((strip_rows - 1u) * g->stride_h + g->k_h) * run > BNN_CONV_U8_ROWS) {
        --strip_rows;
    }
    for (c0 = 0; c0 < g->out_ch; c0 += 32u) {
        m = bnn_min_u32(32u, g->out_ch - c0);
        for (c = 0; c < m; ++c) { /* last channel first: it ends at bit 0 */
            const uint32_t ch = c0 + m - 1u - c;
            int32_t t = p->stage.thresholds[ch];
            if (t > a + 1) t = a + 1; /* acc_h is in [-a, a]: clamping keeps (acc_h < t) */
            if (t < -a - 1) t = -a - 1;
            hc[c].t = (int16_t)t;
            hc[c].bits = (uint16_t)(p->weights[ch] & ((1u << k) - 1u));
            hc[c].base = (int16_t)bnn_conv_u8_record_base(hc[c].bits, k, zp);
#if BNN_PATH_DSP
            bnn_conv_u8_record(p->weights + ch, k, zp, 0, rec + c * BNN_CONV_U8_RECORD);
#else
            bnn_conv_u8_record(p->weights + ch, k, 0, rec + c * BNN_CONV_U8_RECORD);
#endif
        }
        for (oy = 0; oy < g->out_h; oy = ry.o1) {
            ry = bnn_conv_run(oy, g->out_h, g->k_h, g->stride_h, g->pad_top, g->in_h);
            for (ox = 0; ox < g->out_w; ox = rx.o1) {
                rx = bnn_conv_run(ox, g->out_w, g->k_w, g->stride_w, g->pad_left, g->in_w);
                for (ky = ry.k0, valid = 0u; ky < ry.k1; ++ky) {
                    valid |= ((1u << ((rx.k1 - rx.k0) * cin)) - 1u) << ((ky * g->k_w + rx.k0) * cin);
                }
                bnn_conv_u8_half_pattern(hc, m, k, zp, valid, rec);
                if (rx.k0 == 0u && rx.k1 == g->k_w) {
                    for (y = ry.o0; y < ry.o1; ++y) {
                        bnn_conv_u8_fill_rows(g, in, y, zp, wp, rows);
                        bnn_conv_u8_span(g, rows, wp, (uint32_t)g->stride_w * cin, rec, m,
                                        out + (size_t)y * g->out_w * ow + c0 / 32u, ow, zp,
                                        rx.o0, rx.o1);
                    }
                    continue;
                }
                for (x = rx.o0; x < rx.o1; ++x) {
                    for (y = ry.o0; y < ry.o1; y += n) {
                        n = bnn_min_u32(strip_rows, ry.o1 - y);
                        bnn_conv_u8_fill_strip(g, in, y, n, x, zp, rows);
                        bnn_conv_u8_span(g, rows, run, (uint32_t)g->stride_h * run, rec, m,
                                        out + ((size_t)y * g->out_w + x) * ow + c0 / 32u,
                                        g->out_w * ow, zp, 0u, n);
                    }
                }
            }
        }
    }
}
#endif

BNN_NONNULL void bnn_conv2d_u8_half_b1(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
#if !BNN_PATH_PORTABLE
    const bnn_conv_geom_t *g = &p->g;
    if ((uint32_t)g->k_h * g->k_w * g->in_ch <= BNN_CONV_U8_MAX_TAPS &&
        (uint32_t)p->zero_point <= 255u &&
        (uint32_t)g->k_h * ((uint32_t)g->pad_left + g->in_w + g->pad_right) * g->in_ch <= BNN_CONV_U8_ROWS) {
        bnn_conv2d_u8_small_half(p, in, out);
        return;
    }
#endif
    bnn_conv2d_u8_masked_half(p, in, out);
}
