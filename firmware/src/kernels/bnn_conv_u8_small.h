/*
 * The uint8 first-layer convolution's shared pieces (bnn_conv2d_u8_b1.c, and
 * bnn_conv2d_u8_half_b1.c for a zero point + 0.5): the general path over gathered patches, and
 * on Arm the windows of <= 12 taps (USAD8 records on DSP cores, subset-sum tables on the others).
 */
#ifndef BNN_CONV_U8_SMALL_H
#define BNN_CONV_U8_SMALL_H

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
#define BNN_OUT_OF_LINE __attribute__((noinline, unused))
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

#endif
#endif /* !BNN_PATH_PORTABLE */

#endif /* BNN_CONV_U8_SMALL_H */
