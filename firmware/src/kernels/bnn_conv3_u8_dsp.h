/*
 * uint8 first-layer 3x3 convolutions over one input channel, stride 1 (Fashion-MNIST's first
 * layer), on DSP cores: row tables shared by all channels, then per channel two SADD16, one
 * SSUB16 per pair of output columns. Naked Thumb-2 assembly and its C twin.
 *
 * A kernel row is a 3-tap sign pattern p (bit kx = 1: w = -1) and adds, at output column x,
 * S_p(x) = sum over kx of (+-1) x[x + kx] (raw pixels of the padded row; padded taps read zp).
 * Per input row the 8 patterns' S_p are made once for every column (p and 7 - p are negatives
 * of each other: 4 sums, 4 negations), in int16 lanes two columns a word: (x, x + 2) in the
 * "even" word of a group of 4 columns, (x + 1, x + 3) in its "odd" word. Over the three rows
 * of a window, with n1 the channel's -1 weights:
 *     acc = sum w (x - zp) = S_p0 + S_p1 + S_p2 - zp (9 - 2 n1),
 * so the output bit (acc < T) is (S < T'), T' = T + zp (9 - 2 n1): SADD16 twice, SSUB16 of T'
 * in both lanes, and the lanes' sign bits (15, 31) are the bits of two columns (|S| <= 2295,
 * T' clamped to +-2296: no lane overflows). Sign bits gather as acc = bits | (acc >> 1) over
 * 16 channels (lane 0: channels at bits 0..15 of column x, lane 1: of column x + 2), and PKHBT
 * / PKHTB join two such halves into the 32-channel words.
 *
 * Tables: 3 slots (the rows of one output row: input row r is in slot r % 3, made once, used
 * by 3 output rows) x 8 patterns x 2 words per group. A channel's record is the byte offsets
 * of its three rows' tables and T' in both lanes; output row oy takes the records of phase
 * oy % 3 (slot of row ky: (oy + ky) % 3), so no table moves.
 */
#ifndef BNN_CONV3_U8_DSP_H
#define BNN_CONV3_U8_DSP_H

#include "bnn_conv_u8_dsp.h"

#if BNN_PATH_DSP
#define BNN_CONV3_GROUPS 8u                        /* groups of 4 columns a pass (32 columns) */
#define BNN_CONV3_PAT_WORDS (2u * BNN_CONV3_GROUPS) /* words of one pattern of a row */
#define BNN_CONV3_SLOT_WORDS (8u * BNN_CONV3_PAT_WORDS)

#if defined(BNN_EMULATE_INTRINSICS)
BNN_INLINE uint32_t bnn_sadd16(uint32_t a, uint32_t b)
{
    return ((a + b) & 0xFFFFu) | ((((a >> 16) + (b >> 16)) & 0xFFFFu) << 16);
}
BNN_INLINE uint32_t bnn_ssub16(uint32_t a, uint32_t b)
{
    return ((a - b) & 0xFFFFu) | ((((a >> 16) - (b >> 16)) & 0xFFFFu) << 16);
}
#else
BNN_INLINE uint32_t bnn_sadd16(uint32_t a, uint32_t b)
{
    return (uint32_t)__sadd16((int16x2_t)a, (int16x2_t)b);
}
BNN_INLINE uint32_t bnn_ssub16(uint32_t a, uint32_t b)
{
    return (uint32_t)__ssub16((int16x2_t)a, (int16x2_t)b);
}
#endif

/* The 8 patterns' words of taps a, b, c (uint8 in 16-bit lanes) at t[p * BNN_CONV3_PAT_WORDS]. */
BNN_INLINE void bnn_conv3_u8_patterns(uint32_t a, uint32_t b, uint32_t c, uint32_t *t)
{
    const uint32_t u = b + c, v = bnn_ssub16(c, b); /* u: lanes <= 510, no carry */
    const uint32_t s0 = u + a, s1 = bnn_ssub16(u, a), s2 = bnn_sadd16(v, a), s3 = bnn_ssub16(v, a);
    t[0u * BNN_CONV3_PAT_WORDS] = s0;
    t[1u * BNN_CONV3_PAT_WORDS] = s1;
    t[2u * BNN_CONV3_PAT_WORDS] = s2;
    t[3u * BNN_CONV3_PAT_WORDS] = s3;
    t[4u * BNN_CONV3_PAT_WORDS] = bnn_ssub16(0u, s3);
    t[5u * BNN_CONV3_PAT_WORDS] = bnn_ssub16(0u, s2);
    t[6u * BNN_CONV3_PAT_WORDS] = bnn_ssub16(0u, s1);
    t[7u * BNN_CONV3_PAT_WORDS] = bnn_ssub16(0u, s0);
}

/* A row's tables (slot t) for groups g < ng of the padded row x[0 .. 4 ng + 2). */
static void bnn_conv3_u8_table(const uint8_t *x, uint32_t ng, uint32_t *t)
{
    uint32_t g;
    for (g = 0; g < ng; ++g, x += 4, t += 2) {
        const uint32_t w0 = bnn_load_u8x4(x), w2 = bnn_load_u8x4(x + 2);
        const uint32_t e = w0 & 0x00FF00FFu, o = (w0 >> 8) & 0x00FF00FFu;
        const uint32_t e2 = w2 & 0x00FF00FFu;
        bnn_conv3_u8_patterns(e, o, e2, t);                            /* columns x, x + 2 */
        bnn_conv3_u8_patterns(o, e2, (w2 >> 8) & 0x00FF00FFu, t + 1); /* x + 1, x + 3 */
    }
}

/* Sign bits (15, 31) of S - T' for a channel's record r at the word t of a group. */
BNN_INLINE uint32_t bnn_conv3_u8_lanes(const uint32_t *t, const uint32_t *r)
{
    const uint32_t s = bnn_sadd16(bnn_sadd16(t[r[0] / 4u], t[r[1] / 4u]), t[r[2] / 4u]);
    return bnn_ssub16(s, r[3]) & 0x80008000u;
}

/* The C twin: the output words of one group (tables at t) for the columns x < n of it, over
 * 16 records (halves = 1) or 32 (2), out[x * ow]. */
static void bnn_conv3_u8_group_c(const uint32_t *t, const uint32_t *rec, uint32_t halves,
                                 uint32_t mask, uint32_t *out, uint32_t ow, uint32_t n)
{
    uint32_t a[2] = {0u, 0u}, b[2] = {0u, 0u}, w[4], h, j;
    for (h = 0; h < halves; ++h) {
        for (j = 0; j < 16u; ++j, rec += 4) {
            a[h] = bnn_conv3_u8_lanes(t, rec) | (a[h] >> 1);
            b[h] = bnn_conv3_u8_lanes(t + 1, rec) | (b[h] >> 1);
        }
    }
    w[0] = (a[0] & 0xFFFFu) | (a[1] << 16);
    w[1] = (b[0] & 0xFFFFu) | (b[1] << 16);
    w[2] = (a[0] >> 16) | (a[1] & 0xFFFF0000u);
    w[3] = (b[0] >> 16) | (b[1] & 0xFFFF0000u);
    for (j = 0; j < n; ++j) out[j * ow] = w[j] & mask;
}

/* One output row's groups g < ng (4 columns each, full) over one batch of records. */
typedef struct {
    const uint32_t *t, *tend; /* tables (slot 0) at the first group and past the last */
    const uint32_t *rec, *rend; /* records (16 or 32) */
    uint32_t halves;           /* 2: 32 records */
    uint32_t mask;
    uint32_t *out;
    uint32_t step; /* bytes between output pixels */
} bnn_conv3_u8_job_t;

#if BNN_HS_ASM
/* Per channel (17 instructions): the record by one LDM, three table words for each word of the
 * group, SADD16 twice, SSUB16 of T', the sign bits ORed into the half's words; the sentinel
 * bit 15 of the odd word's half (set at its start) falls out as the carry after 16 channels.
 * r0 records, r1 / r2 the group's even / odd words, r3-r6 the record, r7-r9 table words,
 * r10 / r11 the even / odd half, r12 / lr the first half's. */
#define BNN_CONV3_U8_CHANNEL(orr)                                                             \
        "ldm r0!, {r3-r6}\n\t"                                                         \
        "ldr r7, [r1, r3]\n\t"                                                         \
        "ldr r8, [r1, r4]\n\t"                                                         \
        "ldr r9, [r1, r5]\n\t"                                                         \
        "sadd16 r7, r7, r8\n\t"                                                        \
        "sadd16 r7, r7, r9\n\t"                                                        \
        "ssub16 r7, r7, r6\n\t"                                                        \
        "and r7, r7, #0x80008000\n\t"                                                  \
        "orr r10, r7, r10, lsr #1\n\t"                                                 \
        "ldr r7, [r2, r3]\n\t"                                                         \
        "ldr r8, [r2, r4]\n\t"                                                         \
        "ldr r9, [r2, r5]\n\t"                                                         \
        "sadd16 r7, r7, r8\n\t"                                                        \
        "sadd16 r7, r7, r9\n\t"                                                        \
        "ssub16 r7, r7, r6\n\t"                                                        \
        "and r7, r7, #0x80008000\n\t"                                                  \
        orr " r11, r7, r11, lsr #1\n\t"
BNN_NAKED static void bnn_conv3_u8_groups_naked(bnn_conv3_u8_job_t *job BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r11, lr}\n\t"
        "push {r0}\n\t"
        "ldr r1, [r0]\n\t"
        "2:\n\t" /* group */
        "ldr r0, [sp]\n\t"
        "ldr r0, [r0, #8]\n\t" /* records */
        "add r2, r1, #4\n\t"
        "mov r10, #0\n\t"
        "mov r11, #0x8000\n\t"
        "1:\n\t"
        BNN_CONV3_U8_CHANNEL("orr")
        BNN_CONV3_U8_CHANNEL("orrs")
        "bcc 1b\n\t"
        "ldr r3, [sp]\n\t"
        "ldr r4, [r3, #12]\n\t" /* records' end */
        "cmp r0, r4\n\t"
        "beq 3f\n\t"
        "mov r12, r10\n\t" /* the first half; on to the second */
        "mov lr, r11\n\t"
        "mov r10, #0\n\t"
        "mov r11, #0x8000\n\t"
        "b 1b\n\t"
        "3:\n\t"
        "ldrd r4, r5, [r3, #16]\n\t" /* halves, mask */
        "cmp r4, #2\n\t"
        "beq 4f\n\t"
        "mov r12, r10\n\t" /* one half: it is the first, the second is 0 */
        "mov lr, r11\n\t"
        "mov r10, #0\n\t"
        "mov r11, #0\n\t"
        "4:\n\t"
        "ldrd r6, r7, [r3, #24]\n\t" /* out, step */
        "pkhbt r8, r12, r10, lsl #16\n\t"
        "and r8, r8, r5\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "pkhbt r8, lr, r11, lsl #16\n\t"
        "and r8, r8, r5\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "pkhtb r8, r10, r12, asr #16\n\t"
        "and r8, r8, r5\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "pkhtb r8, r11, lr, asr #16\n\t"
        "and r8, r8, r5\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "str r6, [r3, #24]\n\t"
        "ldr r4, [r3, #4]\n\t" /* tables' end */
        "add r1, r1, #8\n\t"
        "cmp r1, r4\n\t"
        "bne 2b\n\t"
        "add sp, sp, #4\n\t"
        "pop {r4-r11, pc}\n\t");
}
#undef BNN_CONV3_U8_CHANNEL
#endif

BNN_INLINE void bnn_conv3_u8_groups(bnn_conv3_u8_job_t *job, uint32_t ow)
{
#if BNN_HS_ASM
    (void)ow;
    bnn_conv3_u8_groups_naked(job);
#else
    const uint32_t *t;
    for (t = job->t; t != job->tend; t += 2, job->out += 4u * ow) {
        bnn_conv3_u8_group_c(t, job->rec, job->halves, job->mask, job->out, ow, 4u);
    }
#endif
}

/* Records of channels c0 .. c0+m-1, padded with dummies to 16 (m <= 16) or 32, for the three
 * phases: rec[(phase * mp + j) * 4 ..]. */
static void bnn_conv3_u8_records(const bnn_conv2d_u8_t *p, uint32_t c0, uint32_t m, uint32_t mp,
                                 uint32_t *rec)
{
    const uint32_t zp = (uint32_t)p->zero_point, a = 9u * (zp > 127u ? zp : 255u - zp);
    uint32_t j, r, ky;
    for (j = 0; j < mp; ++j) {
        uint32_t bits = 0u, tw = 0u;
        if (j < m) {
            int32_t t = p->stage.thresholds[c0 + j];
            bits = p->weights[c0 + j] & 0x1FFu;
            if (t > (int32_t)a + 1) t = (int32_t)a + 1; /* acc in [-a, a]: keeps (acc < t) */
            if (t < -(int32_t)a - 1) t = -(int32_t)a - 1;
            t += (int32_t)zp * (9 - 2 * (int32_t)bnn_popcount32(bits));
            if (t > 2296) t = 2296; /* |S| <= 2295 */
            if (t < -2296) t = -2296;
            tw = ((uint32_t)t & 0xFFFFu) * 0x10001u;
        }
        for (r = 0; r < 3u; ++r) {
            uint32_t *d = rec + (r * mp + j) * 4u;
            for (ky = 0; ky < 3u; ++ky) {
                d[ky] = 4u * (((r + ky) % 3u) * BNN_CONV3_SLOT_WORDS +
                              ((bits >> (3u * ky)) & 7u) * BNN_CONV3_PAT_WORDS);
            }
            d[3] = tw;
        }
    }
}

/* bnn_conv2d_u8_b1 for k 3x3, 1 input channel, stride 1 (zero_point <= 255). */
static void bnn_conv3_u8(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t ow = BNN_WORDS((uint32_t)g->out_ch), zp = (uint32_t)p->zero_point;
    const uint32_t pl = g->pad_left, iw = g->in_w;
    uint32_t rec[3u * 32u * 4u], tab[3u * BNN_CONV3_SLOT_WORDS];
    uint32_t row_words[BNN_CONV3_GROUPS + 1u];
    uint8_t *row = (uint8_t *)row_words;
    uint32_t c0, m, mp, x0, nc, ng, nf, lo, hi, oy, r;
    for (c0 = 0; c0 < g->out_ch; c0 += 32u) {
        m = bnn_min_u32(32u, g->out_ch - c0);
        mp = m > 16u ? 32u : 16u;
        bnn_conv3_u8_records(p, c0, m, mp, rec);
        for (x0 = 0; x0 < g->out_w; x0 += 4u * BNN_CONV3_GROUPS) {
            nc = bnn_min_u32(4u * BNN_CONV3_GROUPS, g->out_w - x0);
            ng = (nc + 3u) / 4u;
            nf = nc / 4u;
            lo = pl > x0 ? pl - x0 : 0u; /* the row's input columns: lo <= j < hi */
            hi = bnn_min_u32(4u * ng + 2u, pl + iw > x0 ? pl + iw - x0 : 0u);
            for (oy = 0; oy < g->out_h; ++oy) {
                bnn_conv3_u8_job_t job;
                for (r = oy == 0u ? oy : oy + 2u; r <= oy + 2u; ++r) { /* padded rows to make */
                    const int32_t iy = (int32_t)r - (int32_t)g->pad_top;
                    memset(row, (int)zp, 4u * ng + 2u); /* padded columns x0 .. */
                    if (iy >= 0 && iy < (int32_t)g->in_h && lo < hi) {
                        memcpy(row + lo, in + (size_t)(uint32_t)iy * iw + x0 + lo - pl, hi - lo);
                    }
                    bnn_conv3_u8_table(row, ng, tab + (r % 3u) * BNN_CONV3_SLOT_WORDS);
                }
                job.t = tab;
                job.tend = tab + 2u * nf;
                job.rec = rec + (oy % 3u) * mp * 4u;
                job.rend = job.rec + mp * 4u;
                job.halves = mp / 16u;
                job.mask = m == 32u ? 0xFFFFFFFFu : (1u << m) - 1u;
                job.out = out + ((size_t)oy * g->out_w + x0) * ow + c0 / 32u;
                job.step = 4u * ow;
                if (nf > 0u) bnn_conv3_u8_groups(&job, ow);
                if (nc > 4u * nf) {
                    bnn_conv3_u8_group_c(job.tend, job.rec, job.halves, job.mask, job.out, ow,
                                         nc - 4u * nf);
                }
            }
        }
    }
}
#endif /* BNN_PATH_DSP */

#endif /* BNN_CONV3_U8_DSP_H */
