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
 * |T'| < 10500: no lane overflows). Sign bits gather as acc = bits | (acc >> 1) over
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

/* The records (once per 32 channels) and the driver (once per output row) are built for size
 * under GCC: the speed is in the tables and the channel loop. */
#if defined(__GNUC__) && !defined(__clang__)
#define BNN_CONV3_COLD __attribute__((optimize("Os")))
#else
#define BNN_CONV3_COLD
#endif

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

/* One output row's groups (4 columns each) over one batch of 32 channels at most: the
 * channels 16.. ("high half", maybe none) then 0..15 ("low half"), each an even number of
 * records (an odd count gets a dummy), n records making n sign bits per lane at 16 - n .. 15:
 * the sentinel 1 << (n - 1) marks the end, a shift by 16 - n brings them to 0 .. n - 1. */
typedef struct {
    const uint32_t *t, *tend;          /* tables (slot 0) at the first group, past the last */
    const uint32_t *rec, *rmid, *rend; /* high half's records, low half's, their end */
    uint32_t hsent, hshift, lsent, lshift;
    uint32_t *out;
    uint32_t step; /* bytes between output pixels */
} bnn_conv3_u8_job_t;

#if BNN_HS_ASM
/* Per channel (17 instructions): the record by one LDM, the three table words of each of the
 * group's two words, SADD16 twice, SSUB16 of T', the sign bits ORed into the half's words;
 * the sentinel in the odd word falls out as the carry of the last channel. r0 records, r1 /
 * r2 the group's even / odd words, r3-r6 the record (then table words with r7-r9), r10 / r11
 * the even / odd half's words, r12 / lr the high half's (0 without one: an LSR by 32). */
#define BNN_CONV3_U8_CHANNEL(orr)                                                             \
        "ldm r0!, {r3-r6}\n\t"                                                         \
        "ldr r7, [r1, r3]\n\t"                                                         \
        "ldr r3, [r2, r3]\n\t"                                                         \
        "ldr r8, [r1, r4]\n\t"                                                         \
        "ldr r4, [r2, r4]\n\t"                                                         \
        "ldr r9, [r1, r5]\n\t"                                                         \
        "ldr r5, [r2, r5]\n\t"                                                         \
        "sadd16 r7, r7, r8\n\t"                                                        \
        "sadd16 r7, r7, r9\n\t"                                                        \
        "ssub16 r7, r7, r6\n\t"                                                        \
        "and r7, r7, #0x80008000\n\t"                                                  \
        "orr r10, r7, r10, lsr #1\n\t"                                                 \
        "sadd16 r3, r3, r4\n\t"                                                        \
        "sadd16 r3, r3, r5\n\t"                                                        \
        "ssub16 r3, r3, r6\n\t"                                                        \
        "and r3, r3, #0x80008000\n\t"                                                  \
        orr " r11, r3, r11, lsr #1\n\t"
BNN_NAKED static void bnn_conv3_u8_groups_naked(bnn_conv3_u8_job_t *job BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r11, lr}\n\t"
        "push {r0}\n\t"
        "ldr r1, [r0]\n\t"
        "2:\n\t" /* group */
        "ldr r3, [sp]\n\t"
        "ldrd r0, r4, [r3, #8]\n\t" /* records, low half's */
        "add r2, r1, #4\n\t"
        "cmp r0, r4\n\t"
        "beq 4f\n\t" /* no high half: its shift, 32, makes it 0 */
        "mov r10, #0\n\t"
        "ldr r11, [r3, #20]\n\t"
        "1:\n\t"
        BNN_CONV3_U8_CHANNEL("orr")
        BNN_CONV3_U8_CHANNEL("orrs")
        "bcc 1b\n\t"
        "ldr r3, [sp]\n\t"
        "ldr r4, [r3, #16]\n\t" /* records' end */
        "cmp r0, r4\n\t"
        "beq 3f\n\t"
        "4:\n\t"
        "ldr r4, [r3, #24]\n\t" /* the high half: on to the low one */
        "lsr r12, r10, r4\n\t"
        "lsr lr, r11, r4\n\t"
        "mov r10, #0\n\t"
        "ldr r11, [r3, #28]\n\t"
        "b 1b\n\t"
        "3:\n\t"
        "ldr r4, [r3, #32]\n\t"
        "lsr r10, r10, r4\n\t"
        "lsr r11, r11, r4\n\t"
        "ldrd r6, r7, [r3, #36]\n\t" /* out, step */
        "pkhbt r8, r10, r12, lsl #16\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "pkhbt r8, r11, lr, lsl #16\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "pkhtb r8, r12, r10, asr #16\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "pkhtb r8, lr, r11, asr #16\n\t"
        "str r8, [r6]\n\t"
        "add r6, r6, r7\n\t"
        "str r6, [r3, #36]\n\t"
        "ldr r4, [r3, #4]\n\t" /* tables' end */
        "add r1, r1, #8\n\t"
        "cmp r1, r4\n\t"
        "bne 2b\n\t"
        "add sp, sp, #4\n\t"
        "pop {r4-r11, pc}\n\t");
}
#undef BNN_CONV3_U8_CHANNEL
#define bnn_conv3_u8_groups bnn_conv3_u8_groups_naked
#else
/* The C twin. */
static void bnn_conv3_u8_groups(bnn_conv3_u8_job_t *job)
{
    const uint32_t *t, *r;
    uint32_t a[2], b[2], h;
    for (t = job->t; t != job->tend; t += 2) {
        a[0] = b[0] = 0u; /* high half */
        for (h = job->rec == job->rmid ? 1u : 0u, r = job->rec; h < 2u; ++h) {
            const uint32_t *end = h == 0u ? job->rmid : job->rend;
            a[h] = b[h] = 0u;
            for (; r != end; r += 4) {
                a[h] = bnn_conv3_u8_lanes(t, r) | (a[h] >> 1);
                b[h] = bnn_conv3_u8_lanes(t + 1, r) | (b[h] >> 1);
            }
            a[h] >>= h == 0u ? job->hshift : job->lshift;
            b[h] >>= h == 0u ? job->hshift : job->lshift;
        }
        job->out[0] = (a[1] & 0xFFFFu) | (a[0] << 16);
        job->out += job->step / 4u;
        job->out[0] = (b[1] & 0xFFFFu) | (b[0] << 16);
        job->out += job->step / 4u;
        job->out[0] = (a[1] >> 16) | (a[0] & 0xFFFF0000u);
        job->out += job->step / 4u;
        job->out[0] = (b[1] >> 16) | (b[0] & 0xFFFF0000u);
        job->out += job->step / 4u;
    }
}
#endif

/* The n records of channels c0 + j, j < m (m <= 32), for the three phases, each phase the
 * high half's (channels 16.., nhe of them: an even count) then the low half's:
 * rec[phase * 128 ..] (dummies where padded). */
BNN_CONV3_COLD static void bnn_conv3_u8_records(const bnn_conv2d_u8_t *p, uint32_t c0,
                                                uint32_t m, uint32_t nhe, uint32_t n, uint32_t *rec)
{
    const uint32_t sw = 4u * BNN_CONV3_SLOT_WORDS, pw = 4u * BNN_CONV3_PAT_WORDS;
    uint32_t i, r, k0, k1, k2;
    for (i = 0; i < n; ++i) {
        const uint32_t j = i < nhe ? 16u + i : i - nhe; /* the channel of record i */
        uint32_t bits = 0u, tw = 0xF708F708u, *d = rec + 4u * i; /* dummy: T' = -2296, bits 0 */
        if (j < m) {
            /* |S| <= 2295 and |S - acc| = zp |9 - 2 n1| <= 2295: T clamped to [-8192, 8191]
             * (an SSAT) keeps every comparison, and |S - T'| < 2^15 */
            int32_t t = p->stage.thresholds[c0 + j];
            bits = p->weights[c0 + j] & 0x1FFu;
            t = t > 8191 ? 8191 : t < -8192 ? -8192 : t;
            t += p->zero_point * (9 - 2 * (int32_t)bnn_popcount32(bits));
            tw = ((uint32_t)t & 0xFFFFu) * 0x10001u;
        }
        k0 = (bits & 7u) * pw;
        k1 = ((bits >> 3) & 7u) * pw;
        k2 = (bits >> 6) * pw;
        for (r = 0; r < 3u; ++r, d += 128) { /* phase r: row ky in slot (r + ky) % 3 */
            d[0] = k0 + r * sw;
            d[1] = k1 + (r < 2u ? r + 1u : 0u) * sw;
            d[2] = k2 + (r == 0u ? 2u : r - 1u) * sw;
            d[3] = tw;
        }
    }
}

/* bnn_conv2d_u8_b1 for k 3x3, 1 input channel, stride 1 (zero_point <= 255). */
BNN_CONV3_COLD static void bnn_conv3_u8(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out)
{
    const bnn_conv_geom_t *g = &p->g;
    const uint32_t ow = BNN_WORDS((uint32_t)g->out_ch), zp = (uint32_t)p->zero_point;
    const uint32_t pl = g->pad_left, iw = g->in_w;
    uint32_t rec[3u * 128u], tab[3u * BNN_CONV3_SLOT_WORDS], tail[4];
    uint32_t row_words[BNN_CONV3_GROUPS + 1u];
    uint8_t *row = (uint8_t *)row_words;
    uint32_t c0, m, nh, nl, x0, nc, ng, lo, hi, oy, r, slot;
    int32_t iy;
    bnn_conv3_u8_job_t job;
    for (c0 = 0; c0 < g->out_ch; c0 += 32u) {
        m = bnn_min_u32(32u, g->out_ch - c0);
        nh = m > 16u ? (m - 15u) & ~1u : 0u; /* records of the halves (even counts) */
        nl = m > 16u ? 16u : (m + 1u) & ~1u;
        bnn_conv3_u8_records(p, c0, m, nh, nh + nl, rec);
        job.hsent = (1u << nh) >> 1; /* n records: sentinel 1 << (n - 1), shift 16 - n */
        job.hshift = nh != 0u ? 16u - nh : 32u; /* no high half: the LSR by 32 gives 0 */
        job.lsent = (1u << nl) >> 1;
        job.lshift = 16u - nl;
        for (x0 = 0; x0 < g->out_w; x0 += 4u * BNN_CONV3_GROUPS) {
            nc = bnn_min_u32(4u * BNN_CONV3_GROUPS, g->out_w - x0);
            ng = (nc + 3u) / 4u;
            lo = pl > x0 ? pl - x0 : 0u; /* the row's input columns: lo <= j < hi */
            hi = bnn_min_u32(4u * ng + 2u, pl + iw > x0 ? pl + iw - x0 : 0u);
            memset(row, (int)zp, 4u * ng + 2u); /* padded columns x0 .. x0 + 4 ng + 1 */
            for (oy = 0, iy = -(int32_t)g->pad_top, slot = 0; oy < g->out_h; ++oy) {
                for (r = oy == 0u ? 0u : 2u; r < 3u; ++r, ++iy) { /* input rows to make */
                    if (lo < hi) { /* their input columns, zp in the padding rows */
                        if (iy >= 0 && iy < (int32_t)g->in_h) {
                            memcpy(row + lo, in + (size_t)(uint32_t)iy * iw + x0 + lo - pl, hi - lo);
                        } else {
                            memset(row + lo, (int)zp, hi - lo);
                        }
                    }
                    bnn_conv3_u8_table(row, ng, tab + slot * BNN_CONV3_SLOT_WORDS);
                    slot = slot == 2u ? 0u : slot + 1u; /* padded row R in slot R % 3 */
                }
                job.rec = rec + slot * 128u; /* phase oy % 3: the next slot to make */
                job.rmid = job.rec + 4u * nh;
                job.rend = job.rmid + 4u * nl;
                job.t = tab;
                job.tend = tab + 2u * (nc / 4u);
                job.out = out + ((size_t)oy * g->out_w + x0) * ow + c0 / 32u;
                job.step = 4u * ow;
                if (nc >= 4u) bnn_conv3_u8_groups(&job);
                if ((nc & 3u) != 0u) { /* the last group's columns into `tail` */
                    uint32_t *o = job.out, j;
                    job.t = job.tend;
                    job.tend += 2;
                    job.out = tail;
                    job.step = 4u;
                    bnn_conv3_u8_groups(&job);
                    for (j = 0; j < (nc & 3u); ++j) o[j * ow] = tail[j];
                }
            }
        }
    }
}
#endif /* BNN_PATH_DSP */

#endif /* BNN_CONV3_U8_DSP_H */
