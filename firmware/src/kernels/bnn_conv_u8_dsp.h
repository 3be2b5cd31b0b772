/*
 * uint8 first-layer convolutions with small windows (K <= 12 taps: 3x3x1, 2x2x3, ...) on DSP
 * cores: USAD8 against per-channel byte masks, in Thumb-2 assembly, and its C twin.
 *
 * Mask byte t of a channel is 0xFF where weight bit t is 1 (w = -1), else 0. Over the taps,
 * USAD8(x, mask) sums x where w = +1 and 255 - x where w = -1:
 *     R = sum |x - mask| = acc + 255 n1 + zp (K - 2 n1),     acc = sum w (x - zp),
 * n1 = the number of -1 weights. So the output bit (acc < T) is (R < T') with the per-channel
 * T' = T + 255 n1 + zp (K - 2 n1), clamped to [0, 255 K + 1]. Padded taps read zp, which adds
 * exactly the term the correction takes out (their contribution to acc is 0); bytes past the
 * window are 0 with mask 0. A channel's record is its mask words and T'; two output pixels
 * share each record load, and the output words are built by ADCS from (R >= T') = NOT bit.
 */
#ifndef BNN_CONV_U8_DSP_H
#define BNN_CONV_U8_DSP_H

#include "bnn_hs_thumb2.h"
#include "bnn_u8_dot.h"

#if BNN_PATH_DSP
#define BNN_CONV_U8_RECORD 4u   /* 3 mask words and T' */
#define BNN_CONV_U8_RECORD_T 3u /* T' */

/* What R adds to acc for a channel whose weight bits (k <= 12) are `bits`: R = acc + base. */
BNN_INLINE int32_t bnn_conv_u8_record_base(uint32_t bits, uint32_t k, uint32_t zp)
{
    const uint32_t n1 = bnn_popcount32(bits);
    return (int32_t)(255u * n1) + (int32_t)zp * ((int32_t)k - 2 * (int32_t)n1);
}

/* T' of a channel whose output bit is (acc < t), given its base. */
BNN_INLINE uint32_t bnn_conv_u8_record_t(int32_t t, int32_t base, uint32_t k, uint32_t zp)
{
    const int32_t a = (int32_t)(k * (zp > 127u ? zp : 255u - zp)); /* max |acc| */
    int32_t tp;
    if (t > a + 1) t = a + 1; /* acc is in [-a, a]: clamping keeps (acc < t) */
    if (t < -a - 1) t = -a - 1;
    tp = t + base;
    if (tp < 0) tp = 0;
    if (tp > (int32_t)(255u * k + 1u)) tp = (int32_t)(255u * k + 1u);
    return (uint32_t)tp;
}

/* The record of a channel whose weight row has k <= 12 bits. */
BNN_INLINE void bnn_conv_u8_record(const uint32_t *w, uint32_t k, uint32_t zp, int32_t t,
                                   uint32_t *rec)
{
    const uint32_t bits = w[0] & ((1u << k) - 1u);
    rec[0] = bnn_nibble_bytes[bits & 15u];
    rec[1] = bnn_nibble_bytes[(bits >> 4) & 15u];
    rec[2] = bnn_nibble_bytes[(bits >> 8) & 15u];
    rec[3] = bnn_conv_u8_record_t(t, bnn_conv_u8_record_base(bits, k, zp), k, zp);
}

/* The C twin: output words (NOT bits, last record's channel at bit 0) of two windows a[0..3)
 * and b[0..3) over m records. */
BNN_INLINE void bnn_conv_u8_words_c(const uint32_t *a, const uint32_t *b, const uint32_t *rec,
                                    uint32_t m, uint32_t *wa, uint32_t *wb)
{
    uint32_t j, ra, rb, i;
    for (j = 0; j < m; ++j, rec += BNN_CONV_U8_RECORD) {
        for (i = 0, ra = rb = 0u; i < 3u; ++i) {
            ra = bnn_usada8(a[i], rec[i], ra);
            rb = bnn_usada8(b[i], rec[i], rb);
        }
        *wa = (*wa << 1) | (uint32_t)(ra >= rec[3]);
        *wb = (*wb << 1) | (uint32_t)(rb >= rec[3]);
    }
}

/* Output words (bits) of a row of windows: out[i * ow] for pixel i < n, m channels. */
BNN_INLINE void bnn_conv_u8_pixels_c(const uint32_t *win, uint32_t n, const uint32_t *rec,
                                     uint32_t m, uint32_t *out, uint32_t ow)
{
    const uint32_t mask = m == 32u ? 0xFFFFFFFFu : (1u << m) - 1u;
    uint32_t i;
    for (i = 0; i < n; i += 2u, win += 6) {
        uint32_t wa = 0u, wb = 0u;
        bnn_conv_u8_words_c(win, i + 1u < n ? win + 3 : win, rec, m, &wa, &wb);
        out[i * ow] = ~wa & mask;
        if (i + 1u < n) out[(i + 1u) * ow] = ~wb & mask;
    }
}

#if BNN_HS_ASM
/* The same in assembly, two pixels per pass over the records (an odd last pixel by the C
 * twin). Per pair: six window words by one LDM; per channel: the record (3 masks, T') by one
 * LDM, USAD8 + 2 USADA8 per pixel, CMP, ADCS into each word (a sentinel bit 1 << (32 - m)
 * ends the pass). r0-r5 windows, r6-r9 record, r10 records, r11 sum, r12 and lr the words;
 * the row's parameters are reached through a pointer pushed on the stack. */
typedef struct {
    const uint32_t *win, *wend, *rec;
    uint32_t sentinel, mask, step;
    uint32_t *out;
    uint32_t odd;
} bnn_conv_u8_job_t;

#define BNN_CONV_U8_CHANNEL                                                                   \
        "ldm r10!, {r6-r9}\n\t"                                                        \
        "usad8 r11, r0, r6\n\t"                                                        \
        "usada8 r11, r1, r7, r11\n\t"                                                  \
        "usada8 r11, r2, r8, r11\n\t"                                                  \
        "cmp r11, r9\n\t"                                                              \
        "adcs r12, r12, r12\n\t"                                                       \
        "usad8 r11, r3, r6\n\t"                                                        \
        "usada8 r11, r4, r7, r11\n\t"                                                  \
        "usada8 r11, r5, r8, r11\n\t"                                                  \
        "cmp r11, r9\n\t"                                                              \
        "adcs lr, lr, lr\n\t"
BNN_NAKED static void bnn_conv_u8_pixels_naked(bnn_conv_u8_job_t *job BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r11, lr}\n\t"
        "mov r10, r0\n\t"
        "push {r10}\n\t"
        "2:\n\t" /* pixel pair */
        "ldr r11, [sp]\n\t"
        "ldr r12, [r11]\n\t"
        "ldm r12!, {r0-r5}\n\t"
        "str r12, [r11]\n\t"
        "ldr r6, [r11, #28]\n\t"       /* m odd */
        "ldrd r10, r12, [r11, #8]\n\t" /* records, sentinel */
        "mov lr, r12\n\t"
        "cbnz r6, 3f\n\t" /* two channels per loop: an odd m enters at the second */
        "1:\n\t"
        BNN_CONV_U8_CHANNEL
        "3:\n\t"
        BNN_CONV_U8_CHANNEL
        "bcc 1b\n\t"
        "ldr r11, [sp]\n\t"
        "ldrd r0, r1, [r11, #16]\n\t" /* mask, step */
        "ldr r2, [r11, #24]\n\t"      /* out */
        "bic r12, r0, r12\n\t"        /* the words held NOT bits */
        "bic lr, r0, lr\n\t"
        "str r12, [r2]\n\t"
        "str lr, [r2, r1]\n\t"
        "add r2, r2, r1, lsl #1\n\t"
        "str r2, [r11, #24]\n\t"
        "ldrd r0, r1, [r11]\n\t" /* win, wend */
        "cmp r0, r1\n\t"
        "bne 2b\n\t"
        "add sp, sp, #4\n\t"
        "pop {r4-r11, pc}\n\t");
}
#undef BNN_CONV_U8_CHANNEL

BNN_INLINE void bnn_conv_u8_pixels_asm(const uint32_t *win, uint32_t n, const uint32_t *rec,
                                       uint32_t m, uint32_t *out, uint32_t ow)
{
    bnn_conv_u8_job_t job;
    job.win = win;
    job.wend = win + 3u * (n & ~1u);
    job.rec = rec;
    job.sentinel = 1u << (32u - m);
    job.mask = m == 32u ? 0xFFFFFFFFu : (1u << m) - 1u;
    job.step = 4u * ow;
    job.out = out;
    job.odd = m & 1u;
    if (n >= 2u) bnn_conv_u8_pixels_naked(&job);
    if (n & 1u) bnn_conv_u8_pixels_c(job.win, 1u, rec, m, job.out, ow);
}
#define bnn_conv_u8_pixels bnn_conv_u8_pixels_asm
#else
#define bnn_conv_u8_pixels bnn_conv_u8_pixels_c
#endif

#endif /* BNN_PATH_DSP */

#endif /* BNN_CONV_U8_DSP_H */
