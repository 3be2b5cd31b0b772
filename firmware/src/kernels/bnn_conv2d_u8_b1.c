#include "bnn_conv_u8_dsp.h"

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

/* Half zero point (p->half_zero_point): acc_h = sum over valid taps of w (2x - (2 zp + 1))
 * = 2 acc - S, with acc = sum over valid taps of w (x - zp) (what the integral paths compute:
 * padded taps read zp) and S = sum over valid taps of w = (valid taps) - 2 (valid taps whose
 * bit is 1). So acc_h < T  <=>  2 acc < T + S  <=>  acc < floor((T + S + 1) / 2): a threshold
 * on the integral accumulator, the same for every window with the same valid taps. */

/* vm[0 .. BNN_WORDS(len)) = the window's valid taps among t0 .. t0+len-1, one bit each. */
static void bnn_valid_bits(const bnn_conv_geom_t *g, const bnn_window_t *win, uint32_t t0,
                           uint32_t len, uint32_t *vm)
{
    const uint32_t row = (uint32_t)g->k_w * g->in_ch;
    const uint32_t a = win->kx0 * g->in_ch, b = win->kx1 * g->in_ch;
    uint32_t ky, t, n, lo, hi;
    for (t = 0; t < BNN_WORDS(len); ++t) vm[t] = 0u;
    for (ky = win->ky0; ky < win->ky1 && a < b; ++ky) {
        lo = ky * row + a > t0 ? ky * row + a - t0 : 0u;
        hi = ky * row + b > t0 ? bnn_min_u32(ky * row + b - t0, len) : 0u;
        for (t = lo; t < hi; t += n) {
            n = bnn_min_u32(32u - (t & 31u), hi - t);
            vm[t >> 5] |= (n == 32u ? 0xFFFFFFFFu : (1u << n) - 1u) << (t & 31u);
        }
    }
}

/* m[j] = acc_h from acc = m[j] for the channels of a block (see above), S from the valid taps'
 * bits: vm, the window's (k <= BNN_PATCH), or NULL to make them chunk by chunk. Out of line:
 * the integral loop keeps its registers. */
#if defined(__GNUC__)
#define BNN_OUT_OF_LINE __attribute__((noinline))
#else
#define BNN_OUT_OF_LINE
#endif

static BNN_OUT_OF_LINE void bnn_half_acc(const bnn_conv_geom_t *g, const bnn_window_t *win, const uint32_t *w,
                         size_t stride, uint32_t nb, uint32_t k, const uint32_t *vm, uint32_t *m)
{
    const uint32_t *r[BNN_BLOCK];
    const uint32_t valid = (win->ky1 - win->ky0) * (win->kx1 - win->kx0) * g->in_ch;
    uint32_t chunk[BNN_PATCH / 32u], ones[BNN_BLOCK], t0, i, j;
    bnn_block_rows(w, stride, nb, r);
    for (j = 0; j < BNN_BLOCK; ++j) ones[j] = 0u;
    for (t0 = 0; t0 < k; t0 += BNN_PATCH) {
        const uint32_t len = bnn_min_u32(BNN_PATCH, k - t0);
        if (vm == NULL) bnn_valid_bits(g, win, t0, len, chunk);
        for (i = 0; i < BNN_WORDS(len); ++i) {
            const uint32_t v = vm != NULL ? vm[i] : chunk[i];
            for (j = 0; j < BNN_BLOCK; ++j) ones[j] += bnn_popcount32(r[j][t0 / 32u + i] & v);
        }
    }
    for (j = 0; j < BNN_BLOCK; ++j) m[j] = 2u * m[j] - (valid - 2u * ones[j]);
}

/* The general path; `half` (a constant at both call sites) adds the half zero point's S. */
BNN_INLINE void bnn_conv2d_u8_masked_impl(const bnn_conv2d_u8_t *p, const uint8_t *in,
                                          uint32_t *out, int half)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t k = (uint32_t)g->k_h * g->k_w * g->in_ch, ow = BNN_WORDS((uint32_t)g->out_ch);
    const uint32_t zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS(k);
    uint32_t patch_words[BNN_PATCH / 4u], vm[BNN_PATCH / 32u];
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
            if (half && k <= BNN_PATCH) bnn_valid_bits(g, &win, 0u, k, vm);
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
                if (half) {
                    bnn_half_acc(g, &win, p->weights + c * stride, stride, nb, k,
                                 k <= BNN_PATCH ? vm : NULL, m);
                }
                bnn_sink_put(&s, c, nb, m);
            }
        }
    }
}

static void bnn_conv2d_u8_masked(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    bnn_conv2d_u8_masked_impl(p, in, out, 0);
}

static void bnn_conv2d_u8_masked_half(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    bnn_conv2d_u8_masked_impl(p, in, out, 1);
}

#if !BNN_PATH_PORTABLE
/* Stack use: bytes of the k_h padded input rows an output row reads; output pixels whose
 * windows are made at once (3 words each). */
#if BNN_PATH_V6M
#define BNN_CONV_U8_ROWS 256u
#define BNN_CONV_U8_PIXELS 8u
#else
#define BNN_CONV_U8_ROWS 1024u
#define BNN_CONV_U8_PIXELS 32u
#endif
#define BNN_CONV_U8_MAX_TAPS 12u

#if BNN_PATH_DSP
/* The window of K <= 12 taps at `base` (k_h runs of `run` bytes, `wp` apart) as 3 words,
 * taps in (ky, kx, c) order, zeros past K. */
BNN_INLINE void bnn_conv_u8_window(const uint8_t *base, uint32_t k_h, uint32_t run, uint32_t wp,
                                   uint32_t *win)
{
    if (k_h == 3u && run == 3u) { /* 3x3x1: three word loads (the rows have slack bytes) */
        const uint32_t r0 = bnn_load_u8x4(base), r1 = bnn_load_u8x4(base + wp);
        const uint32_t r2 = bnn_load_u8x4(base + 2u * wp);
        win[0] = (r0 & 0x00FFFFFFu) | (r1 << 24);
        win[1] = ((r1 >> 8) & 0xFFFFu) | (r2 << 16);
        win[2] = (r2 >> 16) & 0xFFu;
    } else {
        uint8_t bytes[12] = {0u};
        uint32_t ky, j, t = 0u;
        for (ky = 0; ky < k_h; ++ky, base += wp) {
            for (j = 0; j < run; ++j) bytes[t++] = base[j];
        }
        for (j = 0; j < 3u; ++j) win[j] = bnn_load_u8x4(bytes + 4u * j);
    }
}

/* Output words of one output row (channels of the records rec, m of them): the windows of
 * the row's pixels are made at once, then matched against the records two pixels at a time. */
BNN_INLINE void bnn_conv_u8_row(const bnn_conv_geom_t *g, const uint8_t *rows, uint32_t wp,
                                const uint32_t *rec, uint32_t m, uint32_t *o, uint32_t ow)
{
    const uint32_t run = (uint32_t)g->k_w * g->in_ch, step = (uint32_t)g->stride_w * g->in_ch;
    uint32_t win[3u * BNN_CONV_U8_PIXELS], x0, n, i;
    for (x0 = 0; x0 < g->out_w; x0 += n) {
        n = bnn_min_u32(BNN_CONV_U8_PIXELS, g->out_w - x0);
        for (i = 0; i < n; ++i) bnn_conv_u8_window(rows + (x0 + i) * step, g->k_h, run, wp, win + 3u * i);
        bnn_conv_u8_pixels(win, n, rec, m, o + x0 * ow, ow);
    }
}

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
/* Without USAD8 (v7-M, v6-M): per window, two subset-sum tables over its taps, split in
 * groups of k1 and k - k1 (<= 6 each): T_g[b] = sum over the group's taps of +-(x - zp), the
 * sign from bit b. A channel's accumulator is T_1[its low k1 weight bits] + T_2[the rest];
 * its record holds both byte offsets and T ^ 2^31 (the entries carry +2^31 in T_1, so the
 * signed comparison acc < T is an unsigned one). */
#define BNN_CONV_U8_RECORD 2u

#define BNN_CONV_U8_RECORD_T 1u

/* (The tables hold acc itself: nothing to add.) */
BNN_INLINE int32_t bnn_conv_u8_record_base(uint32_t bits, uint32_t k, uint32_t zp)
{
    (void)bits;
    (void)k;
    (void)zp;
    return 0;
}

BNN_INLINE uint32_t bnn_conv_u8_record_t(int32_t t, int32_t base, uint32_t k, uint32_t zp)
{
    (void)base;
    (void)k;
    (void)zp;
    return (uint32_t)t ^ 0x80000000u;
}

BNN_INLINE void bnn_conv_u8_record(const uint32_t *w, uint32_t k, int32_t t, uint32_t *rec)
{
    const uint32_t k1 = k / 2u, bits = w[0] & ((1u << k) - 1u);
    rec[0] = ((bits & ((1u << k1) - 1u)) << 2) | ((bits >> k1) << 10); /* byte offsets 4 b */
    rec[1] = bnn_conv_u8_record_t(t, 0, k, 0u);
}

#if BNN_NAKED_ASM && (BNN_PATH_V7M || BNN_PATH_V6M) && \
    !defined(BNN_TEST_EMULATE_V7M) && !defined(BNN_TEST_EMULATE_V6M)
#define BNN_CONV_U8_THUMB 1
#else
#define BNN_CONV_U8_THUMB 0
#endif

/* dst[i] = src[i] - d for i < n (n a multiple of 4, >= 4): four words per LDM/STM in Thumb-1
 * assembly (2 instructions a word; GCC's loop takes 4 or 5). */
#if BNN_CONV_U8_THUMB
BNN_NAKED static void bnn_sub_copy_naked(uint32_t *dst BNN_ASM_ARG, const uint32_t *src BNN_ASM_ARG,
                                         uint32_t n BNN_ASM_ARG, uint32_t d BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r7, lr}\n\t"
        "movs r4, r0\n\t"
        "movs r5, r1\n\t"
        "lsls r2, r2, #2\n\t"
        "adds r6, r1, r2\n\t"
        "movs r7, r3\n\t"
        "1:\n\t"
        "ldm r5!, {r0-r3}\n\t"
        "subs r0, r0, r7\n\t"
        "subs r1, r1, r7\n\t"
        "subs r2, r2, r7\n\t"
        "subs r3, r3, r7\n\t"
        "stm r4!, {r0-r3}\n\t"
        "cmp r5, r6\n\t"
        "bne 1b\n\t"
        "pop {r4-r7, pc}\n\t");
}
#endif

BNN_INLINE void bnn_sub_copy(uint32_t *dst, const uint32_t *src, uint32_t n, uint32_t d)
{
#if BNN_CONV_U8_THUMB
    bnn_sub_copy_naked(dst, src, n, d);
#else
    uint32_t i;
    for (i = 0; i < n; ++i) dst[i] = src[i] - d;
#endif
}

/* T[b] for the n taps v[0..n) (x - zp), b < 2^n: T[0] = base + sum v, flips subtract 2v. */
BNN_INLINE void bnn_subset_sums(const uint32_t *v, uint32_t n, uint32_t base, uint32_t *t)
{
    uint32_t i, s = base;
    for (i = 0; i < n; ++i) s += v[i];
    t[0] = s;
    for (i = 0; i < n; ++i) {
        const uint32_t d = 2u * v[i], half = 1u << i;
        if (half >= 4u) {
            bnn_sub_copy(t + half, t, half, d);
        } else {
            uint32_t b;
            for (b = 0; b < half; ++b) t[half + b] = t[b] - d;
        }
    }
}

#if BNN_CONV_U8_THUMB
/* The channel loop in Thumb-1 (also Thumb-2) assembly: per channel, LDM of the record, two
 * table loads, the sum, CMP and ADCS of the carry (acc >= T = NOT bit) into the word, whose
 * sentinel bit 1 << (32 - m) ends the loop (9 instructions; GCC's C takes 14). */
BNN_NAKED static uint32_t bnn_conv_u8_word_naked(const uint32_t *t1 BNN_ASM_ARG,
                                                 const uint32_t *t2 BNN_ASM_ARG,
                                                 const uint32_t *rec BNN_ASM_ARG,
                                                 uint32_t m BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r6, lr}\n\t"
        "movs r5, r0\n\t"
        "movs r6, r1\n\t"
        "movs r4, r2\n\t"
        "movs r2, #32\n\t"
        "subs r2, r2, r3\n\t"
        "movs r3, #1\n\t"
        "lsls r3, r2\n\t" /* the sentinel 1 << (32 - m) */
        "1:\n\t"
        "ldm r4!, {r0, r1}\n\t"
        "uxtb r2, r0\n\t"
        "lsrs r0, r0, #8\n\t"
        "ldr r2, [r5, r2]\n\t"
        "ldr r0, [r6, r0]\n\t"
        "adds r2, r2, r0\n\t"
        "cmp r2, r1\n\t"
        "adcs r3, r3\n\t"
        "bcc 1b\n\t"
        "mvns r0, r3\n\t"
        "pop {r4-r6, pc}\n\t");
}
#define bnn_conv_u8_word bnn_conv_u8_word_naked
#else
BNN_INLINE uint32_t bnn_conv_u8_word(const uint32_t *t1, const uint32_t *t2, const uint32_t *rec,
                                     uint32_t m)
{
    uint32_t word = 0u, j;
    for (j = 0; j < m; ++j, rec += BNN_CONV_U8_RECORD) {
        const uint32_t acc = *(const uint32_t *)((const uint8_t *)t1 + (rec[0] & 0xFFu)) +
                             *(const uint32_t *)((const uint8_t *)t2 + (rec[0] >> 8));
        word = (word << 1) | (uint32_t)(acc < rec[1]);
    }
    return word;
}
#endif

BNN_INLINE void bnn_conv_u8_row(const bnn_conv_geom_t *g, const uint8_t *rows, uint32_t wp,
                                const uint32_t *rec, uint32_t m, uint32_t *o, uint32_t ow,
                                uint32_t zp)
{
    const uint32_t run = (uint32_t)g->k_w * g->in_ch, step = (uint32_t)g->stride_w * g->in_ch;
    const uint32_t k = (uint32_t)g->k_h * run, k1 = k / 2u;
    const uint32_t mask = m == 32u ? 0xFFFFFFFFu : (1u << m) - 1u;
    uint32_t t1[64], t2[64], v[BNN_CONV_U8_MAX_TAPS], ox, ky, j, i;
    for (ox = 0; ox < g->out_w; ++ox, o += ow) {
        const uint8_t *base = rows + ox * step;
        for (ky = 0, i = 0; ky < g->k_h; ++ky) {
            for (j = 0; j < run; ++j) v[i++] = (uint32_t)base[ky * wp + j] - zp;
        }
        bnn_subset_sums(v, k1, 0x80000000u, t1);
        bnn_subset_sums(v + k1, k - k1, 0u, t2);
        *o = bnn_conv_u8_word(t1, t2, rec, m) & mask;
    }
}

/* The same for the windows xa <= x < xb of a row of windows `step` bytes apart, out o[x * ow]
 * (the half zero point's runs and strips). */
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

/* The k_h input rows output row oy reads, with their zero-point padding, into `rows` (rows of
 * wp bytes), as bnn_conv2d_u8_small copies them (written out there: this function there moves
 * v6-M's count by +0.4 %, GCC's register allocation). */
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

BNN_NONNULL void bnn_conv2d_u8_b1(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
#if !BNN_PATH_PORTABLE
    const bnn_conv_geom_t *g = &p->g;
    if ((uint32_t)g->k_h * g->k_w * g->in_ch <= BNN_CONV_U8_MAX_TAPS &&
        (uint32_t)p->zero_point <= 255u &&
        (uint32_t)g->k_h * ((uint32_t)g->pad_left + g->in_w + g->pad_right) * g->in_ch <= BNN_CONV_U8_ROWS) {
        if (p->half_zero_point) {
            bnn_conv2d_u8_small_half(p, in, out);
        } else {
            bnn_conv2d_u8_small(p, in, out);
        }
        return;
    }
#endif
    if (p->half_zero_point) {
        bnn_conv2d_u8_masked_half(p, in, out);
    } else {
        bnn_conv2d_u8_masked(p, in, out);
    }
}
