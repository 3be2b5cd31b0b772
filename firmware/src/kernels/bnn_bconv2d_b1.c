#include "bnn_conv9_thumb1.h"

/* No im2col: each valid kernel row is one contiguous run of words in the NHWC input and in
 * the weights. Between those runs, the weight words of the padded taps form gaps; they count
 * only at borders: +1 padding reads 0 bits (x ^ w = w), -1 reads the C real bits set
 * (x ^ w = ~w on them), 0 skips the taps. */
#if defined(__GNUC__)
__attribute__((noinline)) /* its code the same whichever fast paths its caller has */
#endif
static void bnn_bconv2d_runs(const bnn_bconv2d_t *p, const uint32_t *in, uint32_t *out)
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

#if !BNN_PATH_PORTABLE
/* Stack use: channels per batch of records (14 words each), output pixels whose window
 * combinations are made at once (13 words each). About 4.4 KB on v7-M / v7E-M, 1 KB on
 * v6-M parts (the micro:bit's stack is 2 KB). On v6-M each batch makes every pixel's
 * combinations again (measured, 14x14x32 -> 64 on M0: batches of 4 channels 1.97 M
 * instructions, 8: 1.63 M, 16: 1.44 M; 4 pixels instead of 2: 1 % fewer for 104 B more). */
#if BNN_PATH_V6M
#define BNN_CONV9_BATCH 16u
#define BNN_CONV9_PIXELS 2u
#else
#define BNN_CONV9_BATCH 64u
#define BNN_CONV9_PIXELS 16u
#endif

/* The smallest count c with (k - 2c < t), clamped to [0, k + 1]: output bit = (count >= it). */
static uint32_t bnn_count_threshold(uint32_t k, int32_t t)
{
    const int32_t kk = (int32_t)k;
    int32_t d;
    if (t > kk + 2) t = kk + 2; /* every accumulator is in [-k, k]: clamping keeps (acc < t) */
    if (t < -kk - 2) t = -kk - 2;
    d = kk - t + 2; /* in [0, 2k + 4]: (d / 2) = floor((k - t) / 2) + 1 */
    return bnn_min_u32((uint32_t)d / 2u, k + 1u);
}

/* 3-row kernels whose windows are 9 words (3 x 3 x up to 32 channels, 3 x 1 x up to 96), with
 * +-1 padding: pad words read 0 bits or the real channel bits set, so every window counts all
 * k taps and a channel's output bit is (count >= its count threshold). A window is three runs
 * of 3 words: read in place where they lie in the image, else assembled with pad words. */
static void bnn_bconv2d_9(const bnn_bconv2d_t *p, const uint32_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t cin = g->in_ch, cw = BNN_WORDS(cin), ow = BNN_WORDS((uint32_t)g->out_ch);
    const uint32_t k = 3u * g->k_w * cin; /* real bits of a window */
    const size_t row = (size_t)g->in_w * cw; /* words per input row */
    uint32_t rec[BNN_CONV9_BATCH * BNN_CONV9_RECORD], xc[BNN_CONV9_PIXELS * BNN_CONV9_COMBOS];
    uint32_t padw[3], edge[3][3], c0, nb, c, j, oy, ox, ky, t, x0, n;
    for (j = 0; j < 3u; ++j) { /* a kernel row of pad words: k_w taps of cw words */
        const uint32_t bits = bnn_min_u32(32u, cin - 32u * (cw == 1u ? 0u : j)); /* cw is 1 or 3 */
        padw[j] = p->pad_value > 0 ? 0u : (bits == 32u ? 0xFFFFFFFFu : (1u << bits) - 1u);
    }
    for (c0 = 0; c0 < g->out_ch; c0 += nb) {
        nb = bnn_min_u32(BNN_CONV9_BATCH, g->out_ch - c0);
        /* records, last channel of each 32-channel word first */
        for (c = 0; c < nb; ++c) {
            const uint32_t group = c & ~31u, m = bnn_min_u32(32u, nb - group);
            const uint32_t ch = c0 + group + (m - 1u - (c - group));
            const uint32_t *w = p->weights + (size_t)ch * 9u;
            uint32_t r[BNN_CONV9_RECORD];
            bnn_conv9_combos(w, w + 3, w + 6, r);
            r[13] = bnn_count_threshold(k, p->stage.thresholds[ch]);
            bnn_conv9_place(rec + group * BNN_CONV9_RECORD, c - group, m, r);
        }
        for (oy = 0; oy < g->out_h; ++oy) {
            const int32_t iy0 = (int32_t)(oy * g->stride_h) - (int32_t)g->pad_top;
            const uint32_t *base[3]; /* input row of each kernel row, or NULL in the padding */
            int rows_in = 1;
            for (ky = 0; ky < 3u; ++ky) {
                const int32_t iy = iy0 + (int32_t)ky;
                base[ky] = iy >= 0 && iy < (int32_t)g->in_h ? in + (size_t)(uint32_t)iy * row : NULL;
                rows_in = rows_in && base[ky] != NULL;
            }
            for (x0 = 0; x0 < g->out_w; x0 += n) { /* window combinations of a run of pixels */
                n = bnn_min_u32(BNN_CONV9_PIXELS, g->out_w - x0);
                for (ox = x0; ox < x0 + n; ++ox) {
                    const int32_t ix = (int32_t)(ox * g->stride_w) - (int32_t)g->pad_left;
                    const int inside = ix >= 0 && ix + (int32_t)g->k_w <= (int32_t)g->in_w;
                    const uint32_t *r[3];
                    if (inside && rows_in) { /* the common case: three runs in the image */
                        const uint32_t *b = base[0] + (uint32_t)ix * cw;
                        bnn_conv9_combos_in(b, row, xc + (ox - x0) * BNN_CONV9_COMBOS);
                        continue;
                    }
                    for (ky = 0; ky < 3u; ++ky) {
                        if (base[ky] == NULL) {
                            r[ky] = padw;
                        } else if (inside) {
                            r[ky] = base[ky] + (uint32_t)ix * cw;
                        } else { /* a kernel row across the left or right edge: its 3 words */
                            for (t = 0; t < 3u; ++t) { /* word t: tap kx, channel word t - kx */
                                const uint32_t kx = cw == 1u ? t : 0u;
                                const int32_t x = ix + (int32_t)kx;
                                edge[ky][t] = x >= 0 && x < (int32_t)g->in_w ? base[ky][(uint32_t)x * cw + t - kx]
                                                                             : padw[t - kx];
                            }
                            r[ky] = edge[ky];
                        }
                    }
                    bnn_conv9_combos(r[0], r[1], r[2], xc + (ox - x0) * BNN_CONV9_COMBOS);
                }
                for (c = 0; c < nb; c += 32u) {
                    bnn_conv9_row(xc, n, rec + c * BNN_CONV9_RECORD, bnn_min_u32(32u, nb - c),
                                  out + ((size_t)oy * g->out_w + x0) * ow + (c0 + c) / 32u, ow,
                                  (c0 + c) % 32u);
                }
            }
        }
    }
}

/* Windows of G >= 2 groups of 9 words (bnn_conv9_thumb2.h): 3-row kernels whose rows are
 * 3 G words, with +-1 padding, e.g. 3 x 3 over 33 and more channels. The same scheme as
 * bnn_bconv2d_9 with G groups per window and the count threshold after the last group.
 * Batches hold as many records as fit, whole 32-channel words or a power of two dividing 32:
 * on v6-M the batch is what pays for each pixel's combinations and calls (measured: 8
 * channels of 2 groups take 12 % fewer instructions than 4), so the records take 0.85 KB.
 * Stack: about 5 KB on v7-M / v7E-M (up to 8 groups, 3 x 3 x 256), 1.5 KB on v6-M (up to 4
 * groups, 3 x 3 x 128; the micro:bit has 2 KB). */
#if BNN_PATH_V6M
#define BNN_CONV9G_RECORD_WORDS 216u /* 8 channels of 2 groups, 4 of 3 or 4 */
#define BNN_CONV9G_COMBO_WORDS 52u   /* 2 pixels of 2 groups, 1 of 3 or 4 */
#define BNN_CONV9G_MAX_GROUPS 4u
#else
#define BNN_CONV9G_RECORD_WORDS (BNN_CONV9_BATCH * BNN_CONV9_RECORD) /* 32 channels of 2 */
#define BNN_CONV9G_COMBO_WORDS (BNN_CONV9_PIXELS * BNN_CONV9_COMBOS) /* 8 pixels of 2 */
#define BNN_CONV9G_MAX_GROUPS 8u
#endif
/* Fewer output pixels do not pay for the records (measured: 1x1 and 2x2 images). */
#define BNN_CONV9G_MIN_PIXELS 9u

/* a / b for the small quotients here (no division instruction on v6-M, no libgcc call). */
static uint32_t bnn_quotient(uint32_t a, uint32_t b)
{
    uint32_t q = 0u;
    for (; a >= b; a -= b) ++q;
    return q;
}

/* The groups of a layer for bnn_bconv2d_9g, or 0 where it is not for it. */
static uint32_t bnn_conv9g_groups(const bnn_bconv2d_t *p)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t len = g->k_w * BNN_WORDS(g->in_ch); /* words per kernel row: 3 per group */
    uint32_t groups;
    if (g->k_h != 3u || p->pad_value == 0 || len > 3u * BNN_CONV9G_MAX_GROUPS ||
        (uint32_t)g->out_h * g->out_w < BNN_CONV9G_MIN_PIXELS) {
        return 0u;
    }
    groups = bnn_quotient(len, 3u);
    return groups >= 2u && len == 3u * groups ? groups : 0u;
}

#if defined(__GNUC__)
__attribute__((noinline)) /* its frame only when it runs */
#endif
static void bnn_bconv2d_9g(const bnn_bconv2d_t *p, const uint32_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t groups = bnn_conv9g_groups(p); /* >= 2: the caller checked */
    const uint32_t cin = g->in_ch, cw = BNN_WORDS(cin), ow = BNN_WORDS((uint32_t)g->out_ch);
    const uint32_t len = 3u * groups; /* words per kernel row */
    const uint32_t xlen = BNN_CONV9_COMBOS * groups, rlen = xlen + 1u;
    const uint32_t k = 3u * g->k_w * cin; /* real bits of a window */
    const size_t row = (size_t)g->in_w * cw; /* words per input row */
    const uint32_t bits = cin - 32u * (cw - 1u); /* real bits of the last channel word */
    /* pad words: of a full channel word, of the last one */
    const uint32_t pad_full = p->pad_value > 0 ? 0u : 0xFFFFFFFFu;
    const uint32_t pad_last = p->pad_value > 0 ? 0u : (bits == 32u ? 0xFFFFFFFFu : (1u << bits) - 1u);
    uint32_t rec[BNN_CONV9G_RECORD_WORDS], xc[BNN_CONV9G_COMBO_WORDS];
    /* an edge window: 3 rows of 3 G words (zeroed once: clang-analyzer does not follow the
     * loops that fill it whole) */
    uint32_t edge[3u * 3u * BNN_CONV9G_MAX_GROUPS] = {0u};
    uint32_t batch, pixels, c0, nb, c, oy, ox, ky, kx, t, j, x0, n;
    pixels = bnn_quotient(BNN_CONV9G_COMBO_WORDS, xlen);
    batch = bnn_quotient(BNN_CONV9G_RECORD_WORDS, rlen);
    if (batch >= 32u) {
        batch &= ~31u;
    } else {
        while ((batch & (batch - 1u)) != 0u) batch &= batch - 1u; /* its highest bit */
    }
    for (c0 = 0; c0 < g->out_ch; c0 += nb) {
        nb = bnn_min_u32(batch, g->out_ch - c0);
        /* records, last channel of each 32-channel word first (see bnn_bconv2d_9) */
        for (c = 0; c < nb; ++c) {
            const uint32_t group = c & ~31u, m = bnn_min_u32(32u, nb - group);
            const uint32_t ch = c0 + group + (m - 1u - (c - group));
            const uint32_t *w = p->weights + (size_t)ch * 3u * len;
            uint32_t *r = rec + c * rlen;
            for (t = 0; t < len; t += 3u, r += BNN_CONV9_COMBOS) {
                bnn_conv9_combos(w + t, w + len + t, w + 2u * len + t, r);
            }
            *r = bnn_count_threshold(k, p->stage.thresholds[ch]);
        }
        for (oy = 0; oy < g->out_h; ++oy) {
            const int32_t iy0 = (int32_t)(oy * g->stride_h) - (int32_t)g->pad_top;
            const uint32_t *base[3]; /* input row of each kernel row, or NULL in the padding */
            int rows_in = 1;
            for (ky = 0; ky < 3u; ++ky) {
                const int32_t iy = iy0 + (int32_t)ky;
                base[ky] = iy >= 0 && iy < (int32_t)g->in_h ? in + (size_t)(uint32_t)iy * row : NULL;
                rows_in = rows_in && base[ky] != NULL;
            }
            for (x0 = 0; x0 < g->out_w; x0 += n) { /* window combinations of a run of pixels */
                n = bnn_min_u32(pixels, g->out_w - x0);
                for (ox = x0; ox < x0 + n; ++ox) {
                    const int32_t ix = (int32_t)(ox * g->stride_w) - (int32_t)g->pad_left;
                    uint32_t *d = xc + (ox - x0) * xlen;
                    if (rows_in && ix >= 0 && ix + (int32_t)g->k_w <= (int32_t)g->in_w) {
                        const uint32_t *b = base[0] + (uint32_t)ix * cw; /* three runs in the image */
                        for (t = 0; t < len; t += 3u, d += BNN_CONV9_COMBOS) {
                            bnn_conv9_combos_in(b + t, row, d);
                        }
                        continue;
                    }
                    /* an edge window: its three kernel rows from the image or pad words */
                    for (ky = 0; ky < 3u; ++ky) {
                        uint32_t *e = edge + ky * len;
                        for (kx = 0; kx < g->k_w; ++kx) {
                            const int32_t x = ix + (int32_t)kx;
                            if (base[ky] != NULL && x >= 0 && x < (int32_t)g->in_w) {
                                const uint32_t *b = base[ky] + (uint32_t)x * cw;
                                for (j = 0; j < cw; ++j) *e++ = b[j];
                            } else {
                                for (j = 1; j < cw; ++j) *e++ = pad_full;
                                *e++ = pad_last;
                            }
                        }
                    }
                    for (t = 0; t < len; t += 3u, d += BNN_CONV9_COMBOS) {
                        bnn_conv9_combos(edge + t, edge + len + t, edge + 2u * len + t, d);
                    }
                }
                for (c = 0; c < nb; c += 32u) {
                    uint32_t *o = out + ((size_t)oy * g->out_w + x0) * ow + (c0 + c) / 32u;
                    const uint32_t m = bnn_min_u32(32u, nb - c);
#if BNN_PATH_V6M
                    if (groups == 2u) { /* unrolled: 5 % fewer instructions (measured) */
                        bnn_conv9g_row(xc, n, rec + c * rlen, m, o, ow, (c0 + c) % 32u, 2u);
                        continue;
                    }
#endif
                    bnn_conv9g_row(xc, n, rec + c * rlen, m, o, ow, (c0 + c) % 32u, groups);
                }
            }
        }
    }
}
#endif

BNN_NONNULL void bnn_bconv2d_b1(const bnn_bconv2d_t *p, const uint32_t *in, uint32_t *out)
{
#if !BNN_PATH_PORTABLE
    if (p->g.k_h == 3u && p->g.k_w * BNN_WORDS(p->g.in_ch) == 3u && p->pad_value != 0) {
        bnn_bconv2d_9(p, in, out);
        return;
    }
    if (bnn_conv9g_groups(p) != 0u) {
        bnn_bconv2d_9g(p, in, out);
        return;
    }
#endif
    bnn_bconv2d_runs(p, in, out);
}
