/*
 * Binary convolution windows of 9 words (3x3 kernels over up to 32 input channels), and of G
 * groups of 9 words (more channels, at the end of this file): Thumb-2 assembly (USAD8 on DSP
 * cores, byte lanes on v7-M), and its C twin (other cores, host tests, unoptimized builds).
 *
 * count = sum over the window of popcount(x[i] ^ w[i]), i < 9, as a carry-save tree: three
 * triples (a0, a1, a2) give a parity s and a carry c = maj(a0, a1, a2) = a0 ^ ((a0 ^ a1) &
 * (a0 ^ a2)); the parities give S and a fourth carry the same way; the four carries give T and
 * two "fours". Every XOR of two or three a's is an XOR of the same x's with the same w's, so
 * those combinations are made once: per output pixel for x (13 words), per channel for w (a
 * 14-word record, with the channel's count threshold). A triple's carry then costs 5
 * instructions (against 8 from the raw words), the parity and level-2 carry 6.
 *
 * Combination order (x and w alike): a0, a0^a1, a0^a2, a3, a3^a4, a3^a5, a6, a6^a7, a6^a8,
 * s1 = a0^a1^a2, s1^s2, s1^s3, S = s1^s2^s3; the record adds the count threshold C.
 */
#ifndef BNN_CONV9_THUMB2_H
#define BNN_CONV9_THUMB2_H

#include "bnn_hs_thumb2.h"


#define BNN_CONV9_COMBOS 13u
#define BNN_CONV9_RECORD 14u

/* The 13 combinations of the 9 words r0[0..3), r1[0..3), r2[0..3). */
BNN_INLINE void bnn_conv9_combos(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2,
                                 uint32_t *c)
{
    const uint32_t s1 = r0[0] ^ r0[1] ^ r0[2], s2 = r1[0] ^ r1[1] ^ r1[2];
    const uint32_t s3 = r2[0] ^ r2[1] ^ r2[2];
    c[0] = r0[0];
    c[1] = r0[0] ^ r0[1];
    c[2] = r0[0] ^ r0[2];
    c[3] = r1[0];
    c[4] = r1[0] ^ r1[1];
    c[5] = r1[0] ^ r1[2];
    c[6] = r2[0];
    c[7] = r2[0] ^ r2[1];
    c[8] = r2[0] ^ r2[2];
    c[9] = s1;
    c[10] = s1 ^ s2;
    c[11] = s1 ^ s3;
    c[12] = s1 ^ s2 ^ s3;
}

/* The count of one 9-word window: the tree on its 13 combinations and a record's 13. */
BNN_INLINE uint32_t bnn_conv9_count_c(const uint32_t *xc, const uint32_t *r)
{
    const uint32_t c1 = (xc[0] ^ r[0]) ^ ((xc[1] ^ r[1]) & (xc[2] ^ r[2]));
    const uint32_t c2 = (xc[3] ^ r[3]) ^ ((xc[4] ^ r[4]) & (xc[5] ^ r[5]));
    const uint32_t c3 = (xc[6] ^ r[6]) ^ ((xc[7] ^ r[7]) & (xc[8] ^ r[8]));
    const uint32_t c4 = (xc[9] ^ r[9]) ^ ((xc[10] ^ r[10]) & (xc[11] ^ r[11]));
    const uint32_t s = xc[12] ^ r[12], t1 = c1 ^ c2 ^ c3;
    const uint32_t f1 = (c1 & c2) | ((c1 ^ c2) & c3), t = t1 ^ c4, f2 = t1 & c4;
#if BNN_PATH_PORTABLE
    return bnn_popcount32(s) + 2u * bnn_popcount32(t) + 4u * (bnn_popcount32(f1) + bnn_popcount32(f2));
#else
    return bnn_pc_weighted(s, t, f1, f2);
#endif
}

/* The C twin of bnn_conv9_word_asm: the same tree on the same combinations and records. */
BNN_INLINE uint32_t bnn_conv9_word_c(const uint32_t *xc, const uint32_t *r, uint32_t m)
{
    uint32_t word = 0u, j;
    for (j = 0; j < m; ++j, r += BNN_CONV9_RECORD) {
        word = (word << 1) | (uint32_t)(bnn_conv9_count_c(xc, r) >= r[13]);
    }
    return word;
}

/* A row of n pixels: the m bits of bnn_conv9_word_c(xc + 13 i, records, m) go to out[i * ow]
 * from bit `shift` on (batches of fewer than 32 channels OR their bits into a word). */
BNN_INLINE void bnn_conv9_row_c(const uint32_t *xc, uint32_t n, const uint32_t *records,
                                uint32_t m, uint32_t *out, uint32_t ow, uint32_t shift)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        const uint32_t bits = bnn_conv9_word_c(xc + BNN_CONV9_COMBOS * i, records, m) << shift;
        out[i * ow] = shift == 0u ? bits : out[i * ow] | bits;
    }
}

/* Record q (of m, in the order their bits are made) of a 32-channel group into the group's
 * records: 14 words each in order for the C twin; for the assembly, pairs interleaved (see
 * bnn_conv9_row_naked), after a plain first record when m is odd. */
BNN_INLINE void bnn_conv9_place(uint32_t *group, uint32_t q, uint32_t m, const uint32_t *r)
{
    uint32_t i;
#if BNN_HS_ASM
    static const uint8_t pos[2][BNN_CONV9_RECORD] = {
        {0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20, 21, 22},
        {3, 4, 5, 9, 10, 11, 15, 16, 17, 23, 24, 25, 26, 27}};
    const uint32_t odd = m & 1u;
    if (q >= odd) {
        const uint32_t k = q - odd;
        uint32_t *d = group + BNN_CONV9_RECORD * (odd + (k & ~1u));
        for (i = 0; i < BNN_CONV9_RECORD; ++i) d[pos[k & 1u][i]] = r[i];
        return;
    }
#else
    (void)m;
#endif
    for (i = 0; i < BNN_CONV9_RECORD; ++i) group[BNN_CONV9_RECORD * q + i] = r[i];
}

#if BNN_HS_ASM
/* r3 = sum of the nibbles of r3 + 4 * those of r6 (r1: scratch). */
#if BNN_PATH_DSP
#define BNN_CONV9_SUM                                                                         \
    BNN_NIB_SUM("r3", "r3", "r1", BNN_SUM_FIRST)                                              \
    BNN_NIB_SUM("r6", "r6", "r1", BNN_SUM_FIRST)                                              \
    "add r3, r3, r6, lsl #2\n\t"
#else
#define BNN_CONV9_SUM                                                                         \
    BNN_BYTES("r3", "r1")                                                                     \
    BNN_BYTES("r6", "r1")                                                                     \
    "add r3, r3, r6, lsl #2\n\t"                                                            \
    BNN_HSUM("r3", "r1")
#endif

/* The same in assembly: per pixel, the records are walked from the start with the sentinel
 * bit 1 << (32 - m) in the word; ADCS shifts each channel's carry (count >= C) in, and the
 * sentinel leaving the word ends the pixel. r10: combinations, r11: records, r12: word; the
 * row's parameters are reached through the job pointer (r1 on entry), pushed on the stack. */
typedef struct {
    const uint32_t *records;
    uint32_t sentinel, step;
    const uint32_t *xend;
    uint32_t *out;
    uint32_t odd;
} bnn_conv9_job_t;

#define BNN_CONV9_TRIPLE(c)                                                                   \
    "ldm r10!, {r0-r2}\n\t"                                                                \
    "ldm r11!, {r3-r5}\n\t"                                                                \
    "eor r0, r0, r3\n\t"                                                                   \
    "eor r1, r1, r4\n\t"                                                                   \
    "eor r2, r2, r5\n\t"                                                                   \
    "and r1, r1, r2\n\t"                                                                   \
    "eor " c ", r0, r1\n\t"
    /* One channel: the tree, the count, CMP against C and ADCS of the carry into the word. */
#define BNN_CONV9_CHANNEL                                                                     \
        BNN_CONV9_TRIPLE("r6")                                                                \
        BNN_CONV9_TRIPLE("r7")                                                                \
        BNN_CONV9_TRIPLE("r8")                                                                \
        "ldm r10, {r0-r3}\n\t"                                                             \
        "sub r10, r10, #36\n\t"                                                            \
        "ldm r11!, {r4, r5, r9, lr}\n\t"                                                   \
        "eor r0, r0, r4\n\t" /* s1 */                                                      \
        "eor r1, r1, r5\n\t" /* s1 ^ s2 */                                                 \
        "eor r2, r2, r9\n\t" /* s1 ^ s3 */                                                 \
        "eor r3, r3, lr\n\t" /* S */                                                       \
        "and r1, r1, r2\n\t"                                                               \
        "eor r9, r0, r1\n\t" /* c4 */                                                      \
        /* carries c1 c2 c3 -> T1 (r0), f1 (r6); T1 + c4 -> T (r7), f2 (r0) */               \
        "eor r0, r6, r7\n\t"                                                               \
        "and r6, r6, r7\n\t"                                                               \
        "and r7, r0, r8\n\t"                                                               \
        "orr r6, r6, r7\n\t"                                                               \
        "eor r0, r0, r8\n\t"                                                               \
        "eor r7, r0, r9\n\t"                                                               \
        "and r0, r0, r9\n\t"                                                               \
        /* count = pc(S) + 2 pc(T) + 4 (pc(f1) + pc(f2)) */                                  \
        BNN_NIBBLES("r3", "r1")                                                               \
        BNN_NIBBLES("r7", "r1")                                                               \
        "add r3, r3, r7, lsl #1\n\t"                                                       \
        BNN_NIBBLES("r6", "r1")                                                               \
        BNN_NIBBLES("r0", "r1")                                                               \
        "add r6, r6, r0\n\t"                                                               \
        BNN_CONV9_SUM                                                                         \
        "ldr r1, [r11], #4\n\t"                                                            \
        "cmp r3, r1\n\t"                                                                   \
        "adcs r12, r12, r12\n\t"
/* Two channels A, B per loop, each x word loaded once for both: their records interleaved
 * (bnn_conv9_place) as A 0-2, B 0-2, A 3-5, B 3-5, A 6-8, B 6-8, A 9-12, C_A, B 9-12, C_B. The
 * carries are reduced as they come: (t, a) after two triples, (T1, f1) after three. */
#define BNN_CONV9_PAIR_TRIPLE(c)                                                              \
    "ldm r11!, {r3-r5}\n\t"                                                                \
    "eor r3, r3, r0\n\t"                                                                   \
    "eor r4, r4, r1\n\t"                                                                   \
    "eor r5, r5, r2\n\t"                                                                   \
    "and r4, r4, r5\n\t"                                                                   \
    "eor " c ", r3, r4\n\t"
/* The parity carry c4 and S of channel A on x's s1, s1^s2, s1^s3, S (r0, r1, r2, lr), then its
 * count in r5: T1 (r6) becomes T, f1 (r8); r3, r4 scratch, f2 in r4. */
#define BNN_CONV9_PAIR_END_A                                                                  \
    BNN_CONV9_PAIR_TRIPLE("r3")                                                               \
    "and r4, r6, r3\n\t" /* f2 */                                                          \
    "eor r6, r6, r3\n\t" /* T */                                                           \
    "ldr r5, [r11], #4\n\t"                                                                \
    "eor r5, r5, lr\n\t" /* S */                                                           \
    BNN_NIBBLES("r5", "r3")                                                                   \
    BNN_NIBBLES("r6", "r3")                                                                   \
    "add r5, r5, r6, lsl #1\n\t"                                                           \
    BNN_NIBBLES("r8", "r3")                                                                   \
    BNN_NIBBLES("r4", "r3")                                                                   \
    "add r8, r8, r4\n\t"                                                                   \
    BNN_CONV9_PAIR_SUM("r8")
/* A's count threshold loaded with B's s-level words (one LDM), A's bit; then B's c4 (T1 r7,
 * f1 r9), S and count threshold (one LDM), count and bit. */
#define BNN_CONV9_PAIR_END_B                                                                  \
    "ldm r11!, {r3, r4, r6, r8}\n\t"                                                       \
    "cmp r5, r3\n\t"                                                                       \
    "adcs r12, r12, r12\n\t"                                                               \
    "eor r4, r4, r0\n\t"                                                                   \
    "eor r6, r6, r1\n\t"                                                                   \
    "eor r8, r8, r2\n\t"                                                                   \
    "and r6, r6, r8\n\t"                                                                   \
    "eor r3, r4, r6\n\t" /* c4 */                                                          \
    "and r4, r7, r3\n\t" /* f2 */                                                          \
    "eor r7, r7, r3\n\t" /* T */                                                           \
    "ldm r11!, {r5, r6}\n\t" /* S, count threshold */                                      \
    "eor r5, r5, lr\n\t"                                                                   \
    BNN_NIBBLES("r5", "r3")                                                                   \
    BNN_NIBBLES("r7", "r3")                                                                   \
    "add r5, r5, r7, lsl #1\n\t"                                                           \
    BNN_NIBBLES("r9", "r3")                                                                   \
    BNN_NIBBLES("r4", "r3")                                                                   \
    "add r9, r9, r4\n\t"                                                                   \
    BNN_CONV9_PAIR_SUM("r9")                                                                  \
    "cmp r5, r6\n\t"                                                                       \
    "adcs r12, r12, r12\n\t"
#if BNN_PATH_DSP
#define BNN_CONV9_PAIR_SUM(f1)                                                                \
    BNN_NIB_SUM("r5", "r5", "r3", BNN_SUM_FIRST)                                              \
    BNN_NIB_SUM(f1, f1, "r3", BNN_SUM_FIRST)                                                  \
    "add r5, r5, " f1 ", lsl #2\n\t"
#else
#define BNN_CONV9_PAIR_SUM(f1)                                                                \
    BNN_BYTES("r5", "r3")                                                                     \
    BNN_BYTES(f1, "r3")                                                                       \
    "add r5, r5, " f1 ", lsl #2\n\t"                                                       \
    BNN_HSUM("r5", "r3")
#endif
/* The first two triples of both channels: with few words held, A's and B's record words of
 * a triple come by one LDM of six. */
#define BNN_CONV9_PAIR_XOR3(w0, w1, w2, c) /* c = carry of the triple (x in r0-r2) */         \
        "eor " w0 ", " w0 ", r0\n\t"                                                       \
        "eor " w1 ", " w1 ", r1\n\t"                                                       \
        "eor " w2 ", " w2 ", r2\n\t"                                                       \
        "and " w1 ", " w1 ", " w2 "\n\t"                                                   \
        "eor " c ", " w0 ", " w1 "\n\t"
#define BNN_CONV9_PAIR_1                                                                      \
        "ldm r10!, {r0-r2}\n\t"                                                            \
        "ldm r11!, {r3-r8}\n\t"                                                            \
        BNN_CONV9_PAIR_XOR3("r6", "r7", "r8", "r7") /* c1 B */                                \
        BNN_CONV9_PAIR_XOR3("r3", "r4", "r5", "r6") /* c1 A */                                \
        "ldm r10!, {r0-r2}\n\t"                                                            \
        "ldm r11!, {r3-r5, r8, r9, lr}\n\t"                                                \
        BNN_CONV9_PAIR_XOR3("r8", "r9", "lr", "r8") /* c2 B */                                \
        "and r9, r7, r8\n\t" /* a B */                                                     \
        "eor r7, r7, r8\n\t" /* t B */                                                     \
        BNN_CONV9_PAIR_XOR3("r3", "r4", "r5", "r3") /* c2 A */                                \
        "and r8, r6, r3\n\t" /* a A */                                                     \
        "eor r6, r6, r3\n\t" /* t A */
#define BNN_CONV9_PAIR_2                                                                      \
        "ldm r10!, {r0-r2}\n\t"                                                            \
        BNN_CONV9_PAIR_TRIPLE("r3")                                                           \
        "and r4, r6, r3\n\t"                                                               \
        "orr r8, r8, r4\n\t" /* f1 A */                                                    \
        "eor r6, r6, r3\n\t" /* T1 A */                                                    \
        BNN_CONV9_PAIR_TRIPLE("r3")                                                           \
        "and r4, r7, r3\n\t"                                                               \
        "orr r9, r9, r4\n\t" /* f1 B */                                                    \
        "eor r7, r7, r3\n\t" /* T1 B */                                                    \
        "ldm r10, {r0-r2, lr}\n\t"                                                         \
        "sub r10, r10, #36\n\t"
BNN_NAKED static void bnn_conv9_row_naked(const uint32_t *xc BNN_ASM_ARG,
                                          bnn_conv9_job_t *job BNN_ASM_ARG)
{
    /* An odd m starts with one channel (a plain record), then pairs; the sentinel is tested
     * after each pair. */
    BNN_ASM(
        "push {r4-r11, lr}\n\t"
        "mov r10, r0\n\t"
        "mov r11, r1\n\t"
        "push {r11}\n\t"
        "2:\n\t" /* pixel */
        "ldr r0, [sp]\n\t"
        "ldrd r11, r12, [r0]\n\t" /* records, sentinel */
        "ldr r1, [r0, #20]\n\t"   /* m odd */
        "cmp r1, #0\n\t"
        "beq 1f\n\t"
        );
    BNN_ASM(BNN_CONV9_CHANNEL
        "bcs 3f\n\t"
        "1:\n\t");
    BNN_ASM(BNN_CONV9_PAIR_1);
    BNN_ASM(BNN_CONV9_PAIR_2);
    BNN_ASM(BNN_CONV9_PAIR_END_A);
    BNN_ASM(BNN_CONV9_PAIR_END_B
        "bcc 1b\n\t"
        "3:\n\t"
        "ldr r0, [sp]\n\t"
        "ldrd r1, r2, [r0, #8]\n\t" /* step, xend */
        "ldr r3, [r0, #16]\n\t"     /* out */
        "str r12, [r3]\n\t"
        "add r3, r3, r1\n\t"
        "str r3, [r0, #16]\n\t"
        "add r10, r10, #52\n\t"
        "cmp r10, r2\n\t"
        "bne 2b\n\t"
        "add sp, sp, #4\n\t"
        "pop {r4-r11, pc}\n\t");
}
#undef BNN_CONV9_PAIR_2
#undef BNN_CONV9_PAIR_1
#undef BNN_CONV9_PAIR_XOR3
#undef BNN_CONV9_PAIR_SUM
#undef BNN_CONV9_PAIR_END_B
#undef BNN_CONV9_PAIR_END_A
#undef BNN_CONV9_PAIR_TRIPLE
#undef BNN_CONV9_CHANNEL
#undef BNN_CONV9_TRIPLE

BNN_INLINE void bnn_conv9_row_asm(const uint32_t *xc, uint32_t n, const uint32_t *records,
                                  uint32_t m, uint32_t *out, uint32_t ow, uint32_t shift)
{
    bnn_conv9_job_t job;
    job.records = records;
    job.sentinel = 1u << (32u - m);
    job.step = 4u * ow;
    job.xend = xc + BNN_CONV9_COMBOS * n;
    job.out = out;
    job.odd = m & 1u;
    (void)shift; /* batches are whole words here */
    bnn_conv9_row_naked(xc, &job);
}
#define bnn_conv9_row bnn_conv9_row_asm
#else
#define bnn_conv9_row bnn_conv9_row_c
#endif

/*
 * Windows of G >= 2 groups of 9 words (3 x 3 over 33 to 256 channels, or any 3-row kernel
 * whose rows are a multiple of 3 words): group g is words 3g .. 3g+2 of each of the three
 * kernel rows. Combinations: 13 per group (13 G per pixel); records: 13 per group and the
 * count threshold of the whole window (13 G + 1 words). A channel's count is the sum of the
 * groups' trees, compared once.
 */

/* The C twin: bits of m channels of one pixel, as bnn_conv9_word_c. */
BNN_INLINE uint32_t bnn_conv9g_word_c(const uint32_t *xc, const uint32_t *r, uint32_t m,
                                      uint32_t groups)
{
    const uint32_t len = BNN_CONV9_COMBOS * groups;
    uint32_t word = 0u, j, g;
    for (j = 0; j < m; ++j, r += len + 1u) {
        uint32_t count = 0u;
        for (g = 0; g < len; g += BNN_CONV9_COMBOS) count += bnn_conv9_count_c(xc + g, r + g);
        word = (word << 1) | (uint32_t)(count >= r[len]);
    }
    return word;
}

/* A row of n pixels (13 G combinations each), as bnn_conv9_row_c. */
BNN_INLINE void bnn_conv9g_row_c(const uint32_t *xc, uint32_t n, const uint32_t *records,
                                 uint32_t m, uint32_t *out, uint32_t ow, uint32_t shift,
                                 uint32_t groups)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        const uint32_t bits = bnn_conv9g_word_c(xc + BNN_CONV9_COMBOS * groups * i, records, m,
                                                groups) << shift;
        out[i * ow] = shift == 0u ? bits : out[i * ow] | bits;
    }
}

#if BNN_HS_ASM
/* lr += the count of r3 (nibbles) + 4 * that of r6 (r1: scratch). */
#if BNN_PATH_DSP
#define BNN_CONV9G_ADD                                                                        \
    BNN_NIB_SUM("lr", "r3", "r1", BNN_SUM_NEXT)                                               \
    BNN_NIB_SUM("r6", "r6", "r1", BNN_SUM_FIRST)                                              \
    "add lr, lr, r6, lsl #2\n\t"
#else
#define BNN_CONV9G_ADD                                                                        \
    BNN_CONV9_SUM                                                                             \
    "add lr, lr, r3\n\t"
#endif

/* The same in assembly, built like bnn_conv9_row_asm. Per channel, lr holds the count in
 * its low 24 bits and a group counter in its top byte, (256 - G) << 24 at the start: ADDS
 * of 1 << 24 after each group carries out after the last one, leaving the count alone in lr.
 * The frame holds the pixel's combinations (r10 at each channel's start) and that start
 * value, loaded together by one LDRD; r10 ends a pixel at the next one's combinations.
 * Batches of fewer than 32 channels OR their bits into the output word from bit `shift`. */
typedef struct {
    const uint32_t *records;
    uint32_t sentinel, step;
    const uint32_t *xend;
    uint32_t *out;
    uint32_t shift, odd, counter;
} bnn_conv9g_job_t;

#define BNN_CONV9G_TRIPLE(c)                                                                  \
    "ldm r10!, {r0-r2}\n\t"                                                                \
    "ldm r11!, {r3-r5}\n\t"                                                                \
    "eor r0, r0, r3\n\t"                                                                   \
    "eor r1, r1, r4\n\t"                                                                   \
    "eor r2, r2, r5\n\t"                                                                   \
    "and r1, r1, r2\n\t"                                                                   \
    "eor " c ", r0, r1\n\t"
    /* One channel: per group the tree and its count added to lr; then CMP against C and
     * ADCS of the carry into the word. */
#define BNN_CONV9G_CHANNEL                                                                    \
        "ldrd r10, lr, [sp]\n\t"                                                           \
        "4:\n\t"                                                                           \
        BNN_CONV9G_TRIPLE("r6")                                                               \
        BNN_CONV9G_TRIPLE("r7")                                                               \
        BNN_CONV9G_TRIPLE("r8")                                                               \
        "ldm r10!, {r0-r3}\n\t"                                                            \
        "ldm r11!, {r4, r5, r9}\n\t"                                                       \
        "eor r0, r0, r4\n\t" /* s1 */                                                      \
        "eor r1, r1, r5\n\t" /* s1 ^ s2 */                                                 \
        "eor r2, r2, r9\n\t" /* s1 ^ s3 */                                                 \
        "and r1, r1, r2\n\t"                                                               \
        "eor r9, r0, r1\n\t" /* c4 */                                                      \
        "ldr r0, [r11], #4\n\t"                                                            \
        "eor r3, r3, r0\n\t" /* S */                                                       \
        "eor r0, r6, r7\n\t"                                                               \
        "and r6, r6, r7\n\t"                                                               \
        "and r7, r0, r8\n\t"                                                               \
        "orr r6, r6, r7\n\t"                                                               \
        "eor r0, r0, r8\n\t"                                                               \
        "eor r7, r0, r9\n\t"                                                               \
        "and r0, r0, r9\n\t"                                                               \
        BNN_NIBBLES("r3", "r1")                                                               \
        BNN_NIBBLES("r7", "r1")                                                               \
        "add r3, r3, r7, lsl #1\n\t"                                                       \
        BNN_NIBBLES("r6", "r1")                                                               \
        BNN_NIBBLES("r0", "r1")                                                               \
        "add r6, r6, r0\n\t"                                                               \
        BNN_CONV9G_ADD                                                                        \
        "adds lr, lr, #0x01000000\n\t"                                                     \
        "bcc 4b\n\t"                                                                       \
        "ldr r1, [r11], #4\n\t"                                                            \
        "cmp lr, r1\n\t"                                                                   \
        "adcs r12, r12, r12\n\t"
BNN_NAKED static void bnn_conv9g_row_naked(const uint32_t *xc BNN_ASM_ARG,
                                           bnn_conv9g_job_t *job BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r11, lr}\n\t"
        "mov r10, r0\n\t"
        "mov r11, r1\n\t"
        "push {r11}\n\t"
        "ldr r0, [r11, #28]\n\t" /* counter */
        "sub sp, sp, #8\n\t"
        "str r0, [sp, #4]\n\t"
        "2:\n\t" /* pixel */
        "str r10, [sp]\n\t"
        "ldr r0, [sp, #8]\n\t"
        "ldrd r11, r12, [r0]\n\t" /* records, sentinel */
        "ldr r1, [r0, #24]\n\t"   /* m odd */
        "cmp r1, #0\n\t"
        "bne 3f\n\t"
        "1:\n\t"
        );
    BNN_ASM(BNN_CONV9G_CHANNEL "3:\n\t");
    BNN_ASM(BNN_CONV9G_CHANNEL
        "bcc 1b\n\t"
        "ldr r0, [sp, #8]\n\t"
        "ldrd r1, r2, [r0, #8]\n\t" /* step, xend */
        "ldrd r3, r4, [r0, #16]\n\t" /* out, shift */
        "cbz r4, 5f\n\t"
        "ldr r5, [r3]\n\t"
        "lsl r12, r12, r4\n\t"
        "orr r12, r12, r5\n\t"
        "5:\n\t"
        "str r12, [r3]\n\t"
        "add r3, r3, r1\n\t"
        "str r3, [r0, #16]\n\t"
        "cmp r10, r2\n\t"
        "bne 2b\n\t"
        "add sp, sp, #12\n\t"
        "pop {r4-r11, pc}\n\t");
}
#undef BNN_CONV9G_CHANNEL
#undef BNN_CONV9G_TRIPLE

BNN_INLINE void bnn_conv9g_row_asm(const uint32_t *xc, uint32_t n, const uint32_t *records,
                                   uint32_t m, uint32_t *out, uint32_t ow, uint32_t shift,
                                   uint32_t groups)
{
    bnn_conv9g_job_t job;
    job.records = records;
    job.sentinel = 1u << (32u - m);
    job.step = 4u * ow;
    job.xend = xc + BNN_CONV9_COMBOS * groups * n;
    job.out = out;
    job.shift = shift;
    job.odd = m & 1u;
    job.counter = (256u - groups) << 24;
    bnn_conv9g_row_naked(xc, &job);
}
#define bnn_conv9g_row bnn_conv9g_row_asm
#else
#define bnn_conv9g_row bnn_conv9g_row_c
#endif

#endif /* BNN_CONV9_THUMB2_H */
