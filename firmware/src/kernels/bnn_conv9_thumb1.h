/*
 * Binary convolution windows of 9 words (3x3 kernels over up to 32 input channels) in Thumb-1
 * assembly for v6-M (M0, M0+; and v8-M baseline): the tree of bnn_conv9_thumb2.h on the same
 * combinations and records, with the C twin bnn_conv9_row_c (other cores, host tests,
 * BNN_NO_ASM) giving the same bits.
 *
 * Why assembly: GCC spills the tree's state and the masks on v6-M's eight low registers
 * (measured, 14x14x32 -> 64 on M0: 2.30 M instructions with the C twin, 1.44 M with this, 103
 * a channel and pixel, and the combinations of windows in the image by LDM / STM). Per channel: the 13
 * combinations of the pixel (x) and of the record (w) by LDM, XORed, three triple carries and
 * the parity carry, reduced as they come so that at most four words are held, then
 * pc(S) + 2 pc(T) + 4 (pc(f1) + pc(f2)) by bit slicing (masks in high registers), CMP against
 * the record's count threshold and ADCS of the carry into the word.
 *
 * Registers: r6 combinations (reset per channel from r8), r7 records, r8 the pixel's
 * combinations, r9-r11 the masks 0x55555555, 0x33333333, 0x0F0F0F0F, r12 the word; the job
 * pointer on the stack. r7 is saved and restored like the others (a naked function: no frame
 * pointer of the compiler's inside).
 */
#ifndef BNN_CONV9_THUMB1_H
#define BNN_CONV9_THUMB1_H

#include "bnn_conv9_thumb2.h"

#if BNN_NAKED_ASM && BNN_PATH_V6M && !defined(__thumb2__)
#define BNN_CONV9_T1_ASM 1
#else
#define BNN_CONV9_T1_ASM 0
#endif

#if BNN_CONV9_T1_ASM
/* A row of pixels, as bnn_conv9_row_c: per pixel, the word starts at the sentinel bit
 * 1 << (32 - m), which leaves it at the m-th ADCS and ends the pixel. */
typedef struct {
    const uint32_t *records;
    uint32_t sentinel, step;
    const uint32_t *xend;
    uint32_t *out;
    uint32_t shift;
} bnn_conv9_t1_job_t;

/* v -> 8 nibble counts (r4 = m1, r5 = m2; r6: scratch). */
#define BNN_T1_NIBBLES(v)                                                                     \
    "lsrs r6, " v ", #1\n\t" "ands r6, r4\n\t" "subs " v ", " v ", r6\n\t"                   \
    "lsrs r6, " v ", #2\n\t" "ands " v ", r5\n\t" "ands r6, r5\n\t" "adds " v ", " v ", r6\n\t"
/* v (nibbles <= 15 per byte pair) -> 4 byte lanes (r4 = m4; r6: scratch). */
#define BNN_T1_BYTES(v)                                                                       \
    "lsrs r6, " v ", #4\n\t" "ands " v ", r4\n\t" "ands r6, r4\n\t" "adds " v ", " v ", r6\n\t"

/* One 9-word group of a channel: its count in r3 (x S loaded by xs_load, m1 and m4 into r4
 * by m1_load and m4_load; r6 walks the combinations, then is scratch; r7 walks the record). */
#define BNN_T1_GROUP(xs_load, m1_load, m4_load)                                                \
        "ldm r6!, {r0, r1, r2}\n\t"                                                            \
        "ldm r7!, {r3, r4, r5}\n\t"                                                            \
        "eors r0, r3\n\t"                                                                      \
        "eors r1, r4\n\t"                                                                      \
        "eors r2, r5\n\t"                                                                      \
        "ands r1, r2\n\t"                                                                      \
        "eors r0, r1\n\t" /* c1 */                                                             \
        "ldm r6!, {r1, r2, r3}\n\t"                                                            \
        "ldm r7!, {r4, r5}\n\t"                                                                \
        "eors r1, r4\n\t"                                                                      \
        "eors r2, r5\n\t"                                                                      \
        "ldm r7!, {r4}\n\t"                                                                    \
        "eors r3, r4\n\t"                                                                      \
        "ands r2, r3\n\t"                                                                      \
        "eors r1, r2\n\t" /* c2 */                                                             \
        "movs r2, r0\n\t"                                                                      \
        "eors r0, r1\n\t" /* t = c1 ^ c2 */                                                    \
        "ands r1, r2\n\t" /* a = c1 & c2 */                                                    \
        "ldm r6!, {r2, r3, r4}\n\t"                                                            \
        "ldm r7!, {r5}\n\t"                                                                    \
        "eors r2, r5\n\t"                                                                      \
        "ldm r7!, {r5}\n\t"                                                                    \
        "eors r3, r5\n\t"                                                                      \
        "ldm r7!, {r5}\n\t"                                                                    \
        "eors r4, r5\n\t"                                                                      \
        "ands r3, r4\n\t"                                                                      \
        "eors r2, r3\n\t" /* c3 */                                                             \
        "movs r3, r0\n\t"                                                                      \
        "ands r3, r2\n\t"                                                                      \
        "orrs r1, r3\n\t" /* f1 = a | (t & c3) */                                              \
        "eors r0, r2\n\t" /* t ^= c3 */                                                        \
        "ldm r6!, {r2, r3, r4}\n\t" /* s1, s1 ^ s2, s1 ^ s3 */                                 \
        "ldm r7!, {r5}\n\t"                                                                    \
        "eors r2, r5\n\t"                                                                      \
        "ldm r7!, {r5}\n\t"                                                                    \
        "eors r3, r5\n\t"                                                                      \
        "ldm r7!, {r5}\n\t"                                                                    \
        "eors r4, r5\n\t"                                                                      \
        "ands r3, r4\n\t"                                                                      \
        "eors r2, r3\n\t" /* c4 */                                                             \
        xs_load                                                                                \
        "ldm r7!, {r4}\n\t"                                                                    \
        "eors r3, r4\n\t" /* S */                                                              \
        "movs r4, r0\n\t"                                                                      \
        "eors r0, r2\n\t" /* T = t ^ c4 */                                                     \
        "ands r2, r4\n\t" /* f2 = t & c4 */                                                    \
        m1_load                                                                                \
        "mov r5, r10\n\t"                                                                      \
        BNN_T1_NIBBLES("r3")                                                                   \
        BNN_T1_NIBBLES("r0")                                                                   \
        BNN_T1_NIBBLES("r1")                                                                   \
        BNN_T1_NIBBLES("r2")                                                                   \
        "lsls r0, r0, #1\n\t"                                                                  \
        "adds r3, r3, r0\n\t" /* S + 2 T: nibbles <= 12 */                                     \
        "adds r1, r1, r2\n\t" /* f1 + f2: nibbles <= 8 */                                      \
        m4_load                                                                                \
        BNN_T1_BYTES("r3")                                                                     \
        BNN_T1_BYTES("r1")                                                                     \
        "lsls r1, r1, #2\n\t"                                                                  \
        "adds r3, r3, r1\n\t" /* bytes <= 88 */                                                \
        "lsrs r6, r3, #16\n\t"                                                                 \
        "adds r3, r3, r6\n\t" /* low bytes: b0 + b2, b1 + b3 (<= 176 each) */                  \
        "uxth r3, r3\n\t"                                                                      \
        "lsrs r6, r3, #8\n\t"                                                                  \
        "uxtb r3, r3\n\t"                                                                      \
        "adds r3, r3, r6\n\t" /* count */

BNN_NAKED static void bnn_conv9_row_t1_naked(const uint32_t *xc BNN_ASM_ARG,
                                             bnn_conv9_t1_job_t *job BNN_ASM_ARG)
{
    BNN_ASM(
        BNN_T1_SAVE /* r4-r11, lr */
        "push {r1}\n\t"    /* [sp] job */
        "mov r8, r0\n\t"
        "ldr r4, =0x55555555\n\t"
        "mov r9, r4\n\t"
        "ldr r4, =0x33333333\n\t"
        "mov r10, r4\n\t"
        "ldr r4, =0x0F0F0F0F\n\t"
        "mov r11, r4\n\t"
        "2:\n\t" /* pixel */
        "ldr r0, [sp]\n\t"
        "ldm r0!, {r1, r7}\n\t" /* records, sentinel */
        "mov r12, r7\n\t"
        "mov r7, r1\n\t"
        "1:\n\t" /* channel */
        "mov r6, r8\n\t"
        BNN_T1_GROUP("ldr r3, [r6]\n\t", "mov r4, r9\n\t", "mov r4, r11\n\t")
        "ldm r7!, {r4}\n\t"   /* count threshold */
        "cmp r3, r4\n\t"
        "mov r5, r12\n\t"
        "adcs r5, r5\n\t"
        "mov r12, r5\n\t"
        "bcc 1b\n\t"
        /* the pixel's word: shifted and ORed into the output word when shift != 0 */
        "ldr r0, [sp]\n\t"
        "ldr r3, [r0, #16]\n\t" /* out */
        "ldr r4, [r0, #20]\n\t" /* shift */
        "cmp r4, #0\n\t"
        "beq 5f\n\t"
        "ldr r6, [r3]\n\t"
        "lsls r5, r4\n\t"
        "orrs r5, r6\n\t"
        "5:\n\t"
        "str r5, [r3]\n\t"
        "ldr r1, [r0, #8]\n\t" /* step */
        "adds r3, r3, r1\n\t"
        "str r3, [r0, #16]\n\t"
        "mov r6, r8\n\t"
        "adds r6, #52\n\t"
        "mov r8, r6\n\t"
        "ldr r2, [r0, #12]\n\t" /* xend */
        "cmp r6, r2\n\t"
        "beq 6f\n\t"
        "b 2b\n\t"
        "6:\n\t"
        "add sp, #4\n\t"
        BNN_T1_RETURN
        ".ltorg\n\t");
}
/* Windows of G >= 2 groups (bnn_conv9g_row_c): per channel the groups' counts summed in lr,
 * r11 the end of the pixel's combinations, r9 the next group's (m1 and m4 by LDR from the
 * literal pool instead). */
typedef struct {
    const uint32_t *records;
    uint32_t sentinel, step;
    const uint32_t *xend;
    uint32_t *out;
    uint32_t shift, xbytes;
} bnn_conv9g_t1_job_t;

BNN_NAKED static void bnn_conv9g_row_t1_naked(const uint32_t *xc BNN_ASM_ARG,
                                              bnn_conv9g_t1_job_t *job BNN_ASM_ARG)
{
    BNN_ASM(
        BNN_T1_SAVE /* r4-r11, lr */
        "push {r1}\n\t"    /* [sp] job */
        "mov r8, r0\n\t"
        "ldr r4, =0x33333333\n\t"
        "mov r10, r4\n\t"
        "2:\n\t" /* pixel */
        "ldr r0, [sp]\n\t"
        "ldr r1, [r0, #24]\n\t" /* bytes of a pixel's combinations */
        "add r1, r8\n\t"
        "mov r11, r1\n\t"
        "ldm r0!, {r1, r7}\n\t" /* records, sentinel */
        "mov r12, r7\n\t"
        "mov r7, r1\n\t"
        "1:\n\t" /* channel */
        "mov r6, r8\n\t"
        "movs r0, #0\n\t"
        "mov lr, r0\n\t"
        "4:\n\t" /* group */
        BNN_T1_GROUP("ldm r6!, {r3}\n\t" "mov r9, r6\n\t", "ldr r4, =0x55555555\n\t",
                     "ldr r4, =0x0F0F0F0F\n\t")
        "add lr, r3\n\t"
        "mov r6, r9\n\t"
        "mov r4, r11\n\t"
        "cmp r6, r4\n\t"
        "bne 4b\n\t"
        "mov r3, lr\n\t"
        "ldm r7!, {r4}\n\t" /* count threshold */
        "cmp r3, r4\n\t"
        "mov r5, r12\n\t"
        "adcs r5, r5\n\t"
        "mov r12, r5\n\t"
        "bcc 1b\n\t");
    BNN_ASM(
        "ldr r0, [sp]\n\t"
        "ldr r3, [r0, #16]\n\t" /* out */
        "ldr r4, [r0, #20]\n\t" /* shift */
        "cmp r4, #0\n\t"
        "beq 5f\n\t"
        "ldr r6, [r3]\n\t"
        "lsls r5, r4\n\t"
        "orrs r5, r6\n\t"
        "5:\n\t"
        "str r5, [r3]\n\t"
        "ldr r1, [r0, #8]\n\t" /* step */
        "adds r3, r3, r1\n\t"
        "str r3, [r0, #16]\n\t"
        "mov r6, r11\n\t"
        "mov r8, r6\n\t"
        "ldr r2, [r0, #12]\n\t" /* xend */
        "cmp r6, r2\n\t"
        "beq 6f\n\t"
        "b 2b\n\t"
        "6:\n\t"
        "add sp, #4\n\t"
        BNN_T1_RETURN
        ".ltorg\n\t");
}

BNN_INLINE void bnn_conv9g_row_t1(const uint32_t *xc, uint32_t n, const uint32_t *records,
                                  uint32_t m, uint32_t *out, uint32_t ow, uint32_t shift,
                                  uint32_t groups)
{
    bnn_conv9g_t1_job_t job;
    job.records = records;
    job.sentinel = 1u << (32u - m);
    job.step = 4u * ow;
    job.xend = xc + BNN_CONV9_COMBOS * groups * n;
    job.out = out;
    job.shift = shift;
    job.xbytes = 4u * BNN_CONV9_COMBOS * groups;
    bnn_conv9g_row_t1_naked(xc, &job);
}
#undef bnn_conv9g_row
#define bnn_conv9g_row bnn_conv9g_row_t1
#undef BNN_T1_GROUP
#undef BNN_T1_BYTES
#undef BNN_T1_NIBBLES

BNN_INLINE void bnn_conv9_row_t1(const uint32_t *xc, uint32_t n, const uint32_t *records,
                                 uint32_t m, uint32_t *out, uint32_t ow, uint32_t shift)
{
    bnn_conv9_t1_job_t job;
    job.records = records;
    job.sentinel = 1u << (32u - m);
    job.step = 4u * ow;
    job.xend = xc + BNN_CONV9_COMBOS * n;
    job.out = out;
    job.shift = shift;
    bnn_conv9_row_t1_naked(xc, &job);
}
#undef bnn_conv9_row
#define bnn_conv9_row bnn_conv9_row_t1

/* The 13 combinations of a window lying in the image (bnn_conv9_combos of b, b + row,
 * b + 2 row): three LDM of a kernel row, the XORs, four STM. skip: bytes from the end of a
 * kernel row to the start of the next (4 row - 12). */
BNN_NAKED static void bnn_conv9_combos_t1(const uint32_t *b BNN_ASM_ARG, uint32_t skip BNN_ASM_ARG,
                                          uint32_t *c BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r7, lr}\n\t"
        "ldm r0!, {r3, r4, r5}\n\t"
        "eors r4, r3\n\t"
        "eors r5, r3\n\t"
        "stm r2!, {r3, r4, r5}\n\t"
        "movs r6, r4\n\t"
        "eors r6, r5\n\t"
        "eors r6, r3\n\t" /* s1 */
        "adds r0, r0, r1\n\t"
        "ldm r0!, {r3, r4, r5}\n\t"
        "eors r4, r3\n\t"
        "eors r5, r3\n\t"
        "stm r2!, {r3, r4, r5}\n\t"
        "movs r7, r4\n\t"
        "eors r7, r5\n\t"
        "eors r7, r3\n\t" /* s2 */
        "adds r0, r0, r1\n\t"
        "ldm r0!, {r3, r4, r5}\n\t"
        "eors r4, r3\n\t"
        "eors r5, r3\n\t"
        "stm r2!, {r3, r4, r5}\n\t"
        "eors r4, r5\n\t"
        "eors r3, r4\n\t" /* s3 */
        "eors r7, r6\n\t" /* s1 ^ s2 */
        "eors r3, r6\n\t" /* s1 ^ s3 */
        "movs r4, r7\n\t"
        "eors r4, r3\n\t"
        "eors r4, r6\n\t" /* s1 ^ s2 ^ s3 */
        "stm r2!, {r6, r7}\n\t"
        "stm r2!, {r3, r4}\n\t"
        "pop {r4-r7, pc}\n\t");
}
#define bnn_conv9_combos_in(b, row, c) bnn_conv9_combos_t1(b, 4u * (uint32_t)(row) - 12u, c)
#endif /* BNN_CONV9_T1_ASM */

/* The combinations of a window in the image whose kernel rows are `row` words apart. */
#ifndef bnn_conv9_combos_in
#define bnn_conv9_combos_in(b, row, c) bnn_conv9_combos(b, (b) + (row), (b) + 2u * (row), c)
#endif

#endif /* BNN_CONV9_THUMB1_H */
