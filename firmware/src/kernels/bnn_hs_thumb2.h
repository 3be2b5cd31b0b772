/*
 * Harley-Seal popcount rows in Thumb-2 assembly (v7-M and v7E-M: M3, M4, M7, M33, M55).
 *
 * counts[r] = sum over i < n of popcount(x[i] ^ w[r * n + i]) for rows r < rows (contiguous).
 *
 * Why assembly: the carry-save state (ones, twos, fours), the running count and the two
 * pointers stay in 6 registers for the whole row, and the other 8 take each 8-word block with
 * two LDM of four words plus one LDM of three and one LDR. GCC spills part of that state and
 * loads word by word (9.3 instructions per word against 7 here).
 *
 * Per 8-word block: 8 XORs, 7 carry-save adders and a popcount of the "eights" word (bit
 * slicing to nibbles, then USADA8 against 15 times the high nibbles, which sums lo + hi of
 * every byte). The block's words come in pair form (bnn_dense_impl.h): weights stored as
 * (w0, w0 ^ w1), the input made (x0, x0 ^ x1) once per layer, so the XORs give a = x0 ^ w0
 * and t = a ^ (x1 ^ w1) and a first-level adder costs 4 instructions (carry = a ^ ((a ^ L) &
 * t), L ^= t) instead of 5; the three above it take 5. A row's first block starts from a
 * zero state, so its first adder at each level is a half adder. Words past the last full
 * block (plain form) are counted one by one. At the end the three state words are sliced to
 * nibbles, weighted and summed the same way.
 *
 * Registers: r7 x, r8 w, r9 ones, r10 twos, r11 fours, lr count of eights (+ a tail count);
 * r0-r6 and r12 hold the words of a block.
 */
#ifndef BNN_HS_THUMB2_H
#define BNN_HS_THUMB2_H

#include "bnn_popcount.h"

/* The assembly (naked functions: GCC and clang, any -O) needs a Thumb-2 core; elsewhere (host
 * tests, BNN_NO_ASM) the C twins run. */
#if BNN_NAKED_ASM && defined(__thumb2__) && \
    (BNN_PATH_DSP || BNN_PATH_V7M) && !defined(BNN_EMULATE_INTRINSICS) && !defined(BNN_TEST_EMULATE_V7M)
#define BNN_HS_ASM 1
#else
#define BNN_HS_ASM 0
#endif

#if BNN_HS_ASM
/* h = majority(a, b, L) into b, L ^= a ^ b; a and t are clobbered (t: scratch). */
#define BNN_CSA(L, a, b, t)                                                                   \
    "eor " t ", " a ", " b "\n\t"                                                          \
    "and " b ", " a ", " b "\n\t"                                                          \
    "and " a ", " t ", " L "\n\t"                                                          \
    "orr " b ", " b ", " a "\n\t"                                                          \
    "eor " L ", " L ", " t "\n\t"
/* The same on a pair in pair form (a = x0 ^ w0, t = a ^ (x1 ^ w1)): the carry into a, L ^= t
 * (s: scratch). */
#define BNN_PCSA(L, a, t, s)                                                                  \
    "eor " s ", " a ", " L "\n\t"                                                          \
    "and " s ", " s ", " t "\n\t"                                                          \
    "eor " a ", " a ", " s "\n\t"                                                          \
    "eor " L ", " L ", " t "\n\t"
/* The same with the carry written to h (h != a, b, t). */
#define BNN_CSA_TO(h, L, a, b, t)                                                             \
    "eor " t ", " a ", " b "\n\t"                                                          \
    "and " h ", " a ", " b "\n\t"                                                          \
    "and " a ", " t ", " L "\n\t"                                                          \
    "orr " h ", " h ", " a "\n\t"                                                          \
    "eor " L ", " L ", " t "\n\t"
/* Half adder into a zero state: L = a ^ b, h = a & b. */
#define BNN_HA_TO(h, L, a, b)                                                                 \
    "eor " L ", " a ", " b "\n\t"                                                          \
    "and " h ", " a ", " b "\n\t"
/* v -> 8 nibbles, each the popcount of that nibble of v (t: scratch). */
#define BNN_NIBBLES(v, t)                                                                     \
    "and " t ", " v ", #0xAAAAAAAA\n\t"                                                    \
    "sub " v ", " v ", " t ", lsr #1\n\t"                                                  \
    "and " t ", " v ", #0xCCCCCCCC\n\t"                                                    \
    "and " v ", " v ", #0x33333333\n\t"                                                    \
    "add " v ", " v ", " t ", lsr #2\n\t"
#if BNN_PATH_DSP
/* d = (or +=) the sum of the 8 nibbles of v: USAD8 of v against 15 times its high nibbles
 * gives |16 hi + lo - 15 hi| = lo + hi per byte (t: scratch). */
#define BNN_SUM_FIRST(d, v, t) "usad8 " d ", " v ", " t "\n\t"
#define BNN_SUM_NEXT(d, v, t) "usada8 " d ", " v ", " t ", " d "\n\t"
#define BNN_NIB_SUM(d, v, t, op)                                                              \
    "and " t ", " v ", #0xF0F0F0F0\n\t"                                                    \
    "sub " t ", " t ", " t ", lsr #4\n\t"                                                  \
    op(d, v, t)
#define BNN_ACC_FIRST(d, v, t) BNN_NIB_SUM(d, v, t, BNN_SUM_FIRST)
#define BNN_ACC_NEXT(d, v, t) BNN_NIB_SUM(d, v, t, BNN_SUM_NEXT)
#else
/* v7-M (no USAD8): counts stay in 4 byte lanes (each nibble pair summed: <= 8 per word),
 * summed across lanes at the end of a row; t unused. */
#define BNN_ACC_FIRST(d, v, t)                                                                \
    "add " v ", " v ", " v ", lsr #4\n\t"                                                  \
    "and " d ", " v ", #0x0F0F0F0F\n\t"
#define BNN_ACC_NEXT(d, v, t)                                                                 \
    "add " v ", " v ", " v ", lsr #4\n\t"                                                  \
    "and " v ", " v ", #0x0F0F0F0F\n\t"                                                    \
    "add " d ", " d ", " v "\n\t"
#endif
/* v (nibbles, lo + hi <= 255 per byte) -> 4 byte lanes holding lo + hi (t: scratch). */
#define BNN_BYTES(v, t)                                                                       \
    "and " t ", " v ", #0xF0F0F0F0\n\t"                                                    \
    "and " v ", " v ", #0x0F0F0F0F\n\t"                                                    \
    "add " v ", " v ", " t ", lsr #4\n\t"
/* v = the sum of its 4 byte lanes (t: scratch). */
#define BNN_HSUM(v, t)                                                                        \
    "and " t ", " v ", #0xFF00FF00\n\t"                                                    \
    "and " v ", " v ", #0x00FF00FF\n\t"                                                    \
    "add " v ", " v ", " t ", lsr #8\n\t"                                                  \
    "add " v ", " v ", " v ", lsr #16\n\t"                                                 \
    "uxth " v ", " v "\n\t"

/* Block words 0-3 (two pairs): x (LDM) XOR w (LDM) into r0-r3 = a, t, a, t; `t0` receives the
 * first pair's t (r1, or the ones word r9 in a row's first block). */
#define BNN_LOAD4_TO(t0)                                                                      \
    "ldm r7!, {r0-r3}\n\t"                                                                 \
    "ldm r8!, {r4, r5, r6, r12}\n\t"                                                       \
    "eor r0, r0, r4\n\t"                                                                   \
    "eor " t0 ", r1, r5\n\t"                                                               \
    "eor r2, r2, r6\n\t"                                                                   \
    "eor r3, r3, r12\n\t"
/* Block words 4-7 into r0-r3 while r12 holds a carry: w by LDM of three and an LDR. */
#define BNN_LOAD4_HELD                                                                        \
    "ldm r7!, {r0-r3}\n\t"                                                                 \
    "ldm r8!, {r4, r5, r6}\n\t"                                                            \
    "eor r0, r0, r4\n\t"                                                                   \
    "eor r1, r1, r5\n\t"                                                                   \
    "eor r2, r2, r6\n\t"                                                                   \
    "ldr r4, [r8], #4\n\t"                                                                 \
    "eor r3, r3, r4\n\t"

/* An 8-word block: pairs 0, 1 give two carries (r0, r2) into the twos (the first pair's by
 * `ones01` after `load`), combined by `twos` into a fours carry held in r12; pairs 2, 3 give
 * another, combined with it by `fours` into the eights word (r2), whose popcount `acc` adds
 * to lr. */
#define BNN_HS_BLOCK_OF(load, ones01, twos, fours, acc)                                       \
    load                                                                                      \
    ones01                                                                                    \
    BNN_PCSA("r9", "r2", "r3", "r4")                                                          \
    twos                                                                                      \
    BNN_LOAD4_HELD                                                                            \
    BNN_PCSA("r9", "r0", "r1", "r4")                                                          \
    BNN_PCSA("r9", "r2", "r3", "r4")                                                          \
    BNN_CSA("r10", "r0", "r2", "r4")                                                          \
    fours                                                                                     \
    BNN_NIBBLES("r2", "r4")                                                                   \
    acc("lr", "r2", "r4")

/* The first block of a row, from a zero state: the first pair's t is the ones word, its
 * carry a & ~t; then half adders; lr = pc(eights). */
#define BNN_HS_FIRST_OF(acc)                                                                  \
    BNN_HS_BLOCK_OF(BNN_LOAD4_TO("r9"), "bic r0, r0, r9\n\t",                                \
                    BNN_HA_TO("r12", "r10", "r0", "r2"), BNN_HA_TO("r2", "r11", "r12", "r2"), acc)
#define BNN_HS_FIRST_BLOCK BNN_HS_FIRST_OF(BNN_ACC_FIRST)

/* A further block: 7 carry-save adders, lr += pc(eights). */
#define BNN_HS_NEXT_OF(acc)                                                                   \
    BNN_HS_BLOCK_OF(BNN_LOAD4_TO("r1"), BNN_PCSA("r9", "r0", "r1", "r4"),                     \
                    BNN_CSA_TO("r12", "r10", "r0", "r2", "r4"), BNN_CSA("r11", "r12", "r2", "r4"), acc)
#define BNN_HS_BLOCK BNN_HS_NEXT_OF(BNN_ACC_NEXT)

/* One word past the blocks, counted into r6 (weight 1; lanes on v7-M). */
#define BNN_HS_TAIL_WORD                                                                      \
    "ldr r0, [r7], #4\n\t"                                                                 \
    "ldr r1, [r8], #4\n\t"                                                                 \
    "eor r0, r0, r1\n\t"                                                                   \
    BNN_NIBBLES("r0", "r1")                                                                   \
    BNN_ACC_NEXT("r6", "r0", "r1")

/* r9 = pc(ones) + 2 pc(twos) + 4 pc(fours) + 8 lr (+ r6, the words past the blocks). */
#if BNN_PATH_DSP
#define BNN_HS_FINAL(tail)                                                                    \
    BNN_NIBBLES("r9", "r0")                                                                   \
    BNN_NIBBLES("r10", "r0")                                                                  \
    "add r9, r9, r10, lsl #1\n\t"                                                           \
    BNN_NIBBLES("r11", "r0")                                                                  \
    BNN_NIB_SUM("r9", "r9", "r0", BNN_SUM_FIRST)                                              \
    BNN_NIB_SUM("r11", "r11", "r0", BNN_SUM_FIRST)                                            \
    "add r9, r9, r11, lsl #2\n\t"                                                           \
    "add r9, r9, lr, lsl #3\n\t"                                                            \
    tail
#else
#define BNN_HS_FINAL(tail)                                                                    \
    BNN_NIBBLES("r9", "r0")                                                                   \
    BNN_NIBBLES("r10", "r0")                                                                  \
    "add r9, r9, r10, lsl #1\n\t"                                                           \
    BNN_NIBBLES("r11", "r0")                                                                  \
    BNN_BYTES("r9", "r0")                                                                     \
    "add r11, r11, r11, lsr #4\n\t"                                                         \
    "and r11, r11, #0x0F0F0F0F\n\t"                                                         \
    "add r9, r9, r11, lsl #2\n\t" /* lanes <= 56 */                                         \
    tail                            /* + <= 8 per word past the blocks */                     \
    BNN_HSUM("r9", "r0")                                                                      \
    BNN_HSUM("lr", "r0")                                                                      \
    "add r9, r9, lr, lsl #3\n\t"
#endif

/* Rows of 4 blocks on DSP cores: the eights words stay nibble counts, those of blocks 1-3
 * summed in lr (<= 12 a nibble), block 4's (r2) added to twice the fours' (<= 12), and the
 * row's three nibble words summed once each by USAD8 (5 instructions a row fewer). */
#if BNN_PATH_DSP
#define BNN_E_FIRST(d, v, t) "mov " d ", " v "\n\t"
#define BNN_E_NEXT(d, v, t) "add " d ", " d ", " v "\n\t"
#define BNN_E_KEEP(d, v, t)
#define BNN_HS4_FIRST_BLOCK BNN_HS_FIRST_OF(BNN_E_FIRST)
#define BNN_HS4_BLOCK(e) BNN_HS_NEXT_OF(e)
#define BNN_HS4_FINAL                                                                         \
    BNN_NIBBLES("r9", "r0")                                                                   \
    BNN_NIBBLES("r10", "r0")                                                                  \
    "add r9, r9, r10, lsl #1\n\t"                                                           \
    BNN_NIBBLES("r11", "r0")                                                                  \
    "add r11, r11, r2, lsl #1\n\t"                                                          \
    BNN_NIB_SUM("r9", "r9", "r0", BNN_SUM_FIRST)                                              \
    BNN_NIB_SUM("r11", "r11", "r0", BNN_SUM_FIRST)                                            \
    BNN_NIB_SUM("lr", "lr", "r0", BNN_SUM_FIRST)                                              \
    "add r9, r9, r11, lsl #2\n\t"                                                           \
    "add r9, r9, lr, lsl #3\n\t"
#else
#define BNN_HS4_FIRST_BLOCK BNN_HS_FIRST_BLOCK
#define BNN_HS4_BLOCK(e) BNN_HS_BLOCK
#define BNN_HS4_FINAL BNN_HS_FINAL("")
#endif

/* Rows of 4 blocks (1024 bits), two per loop: x, w, w_end, counts (r0-r3) are kept on the
 * stack above a slot for the first row's count. */
BNN_NAKED static void bnn_hs_rows4_naked(const uint32_t *x BNN_ASM_ARG, const uint32_t *w BNN_ASM_ARG,
                                         const uint32_t *w_end BNN_ASM_ARG, uint32_t *counts BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r0-r3}\n\t"
        "push {r4-r11, lr}\n\t"
        "sub sp, sp, #4\n\t" /* [sp] c0; x #40, w #44, w_end #48, counts #52 */
        "ldr r8, [sp, #44]\n\t"
        "1:\n\t"
        "ldr r7, [sp, #40]\n\t"
        );
    BNN_ASM(BNN_HS4_FIRST_BLOCK);
    BNN_ASM(BNN_HS4_BLOCK(BNN_E_NEXT));
    BNN_ASM(BNN_HS4_BLOCK(BNN_E_NEXT));
    BNN_ASM(BNN_HS4_BLOCK(BNN_E_KEEP));
    BNN_ASM(
        BNN_HS4_FINAL
        "str r9, [sp]\n\t"
        "ldr r7, [sp, #40]\n\t"
        );
    BNN_ASM(BNN_HS4_FIRST_BLOCK);
    BNN_ASM(BNN_HS4_BLOCK(BNN_E_NEXT));
    BNN_ASM(BNN_HS4_BLOCK(BNN_E_NEXT));
    BNN_ASM(BNN_HS4_BLOCK(BNN_E_KEEP));
    BNN_ASM(
        BNN_HS4_FINAL
        "ldr r0, [sp, #52]\n\t"
        "ldr r1, [sp]\n\t"
        "strd r1, r9, [r0], #8\n\t"
        "str r0, [sp, #52]\n\t"
        "ldr r0, [sp, #48]\n\t"
        "cmp r8, r0\n\t"
        "bne 1b\n\t"
        "add sp, sp, #4\n\t"
        "pop {r4-r11, lr}\n\t"
        "add sp, sp, #16\n\t"
        "bx lr\n\t");
}

/* Any rows: x, w, x_end, w_end (r0-r3) pushed below the stacked arguments tail and counts. */
BNN_NAKED static void bnn_hs_rows_naked(const uint32_t *x BNN_ASM_ARG, const uint32_t *w BNN_ASM_ARG,
                                        const uint32_t *x_end BNN_ASM_ARG,
                                        const uint32_t *w_end BNN_ASM_ARG, uint32_t tail BNN_ASM_ARG,
                                        uint32_t *counts BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r0-r3}\n\t"
        "push {r4-r11, lr}\n\t" /* x #36, w #40, x_end #44, w_end #48, tail #52, counts #56 */
        "ldr r8, [sp, #40]\n\t"
        "1:\n\t" /* row */
        "ldr r7, [sp, #36]\n\t"
        BNN_HS_FIRST_BLOCK
        "ldr r0, [sp, #44]\n\t"
        "cmp r7, r0\n\t"
        "beq 3f\n\t"
        "2:\n\t" /* further blocks */
        BNN_HS_BLOCK
        "ldr r0, [sp, #44]\n\t"
        "cmp r7, r0\n\t"
        "bne 2b\n\t"
        "3:\n\t" /* words past the blocks */
        "movs r6, #0\n\t"
        "ldr r2, [sp, #52]\n\t"
        "cbz r2, 5f\n\t"
        "4:\n\t"
        BNN_HS_TAIL_WORD
        "subs r2, r2, #1\n\t"
        "bne 4b\n\t"
        "5:\n\t"
        BNN_HS_FINAL("add r9, r9, r6\n\t")
        "ldr r0, [sp, #56]\n\t"
        "str r9, [r0], #4\n\t"
        "str r0, [sp, #56]\n\t"
        "ldr r0, [sp, #48]\n\t"
        "cmp r8, r0\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, lr}\n\t"
        "add sp, sp, #16\n\t"
        "bx lr\n\t");
}

/* counts[r] = popcount of x ^ row r over n = 8 * blocks + tail words, for rows r < rows of
 * w (contiguous), the block words of x and w in pair form. blocks >= 1 (and <= 31 on v7-M,
 * whose byte lanes hold 8 per block). Rows of 4 blocks (1024 bits) run unrolled, two per
 * loop, when `unrolled` (a constant at the call: the scores kernel, whose layers are mostly
 * few rows, goes without those 1.7 KB of code). */
BNN_INLINE void bnn_hs_rows_asm(const uint32_t *x, const uint32_t *w, uint32_t blocks,
                                uint32_t tail, uint32_t rows, uint32_t *counts, int unrolled)
{
    const uint32_t *w_end = w + (size_t)(8u * blocks + tail) * rows;
    if (unrolled && blocks == 4u && tail == 0u && rows % 2u == 0u) {
        bnn_hs_rows4_naked(x, w, w_end, counts);
    } else {
        bnn_hs_rows_naked(x, w, x + 8u * blocks, w_end, tail, counts);
    }
}

/* Output word of n <= 32 channels: bit j = (k - 2 counts[j] < t[j]), as signed int32. The
 * comparison is unsigned after adding 2^31 to both sides; the word is built by ADCS from the
 * carry (= NOT bit), last channel first, and a sentinel bit leaving the word ends the loop.
 * Four channels per loop when n is a multiple of 4 (cp, tp: one past the last channel; kb:
 * k + 2^31; word: the sentinel; returns the word of NOT bits). */
#define BNN_THRESHOLD_ONE(c, tj)                                                              \
        "sub " c ", r8, " c ", lsl #1\n\t"                                                 \
        "eor " tj ", " tj ", #0x80000000\n\t"                                              \
        "cmp " c ", " tj "\n\t"                                                            \
        "adcs r9, r9, r9\n\t"
BNN_NAKED static uint32_t bnn_threshold4_naked(const uint32_t *cp BNN_ASM_ARG, const int32_t *tp BNN_ASM_ARG,
                                               uint32_t kb BNN_ASM_ARG, uint32_t word BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r9, lr}\n\t"
        "mov r12, r0\n\t"
        "mov lr, r1\n\t"
        "mov r8, r2\n\t"
        "mov r9, r3\n\t"
        "1:\n\t"
        "ldmdb r12!, {r0-r3}\n\t"
        "ldmdb lr!, {r4-r7}\n\t"
        BNN_THRESHOLD_ONE("r3", "r7")
        BNN_THRESHOLD_ONE("r2", "r6")
        BNN_THRESHOLD_ONE("r1", "r5")
        BNN_THRESHOLD_ONE("r0", "r4")
        "bcc 1b\n\t"
        "mov r0, r9\n\t"
        "pop {r4-r9, pc}\n\t");
}
#undef BNN_THRESHOLD_ONE

BNN_NAKED static uint32_t bnn_threshold1_naked(const uint32_t *cp BNN_ASM_ARG, const int32_t *tp BNN_ASM_ARG,
                                               uint32_t kb BNN_ASM_ARG, uint32_t word BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4, lr}\n\t"
        "1:\n\t"
        "ldr r12, [r0, #-4]!\n\t"
        "ldr r4, [r1, #-4]!\n\t"
        "sub r12, r2, r12, lsl #1\n\t"
        "eor r4, r4, #0x80000000\n\t"
        "cmp r12, r4\n\t"
        "adcs r3, r3, r3\n\t"
        "bcc 1b\n\t"
        "mov r0, r3\n\t"
        "pop {r4, pc}\n\t");
}

BNN_INLINE uint32_t bnn_threshold_word_asm(const uint32_t *counts, const int32_t *t, uint32_t k,
                                           uint32_t n)
{
    const uint32_t word = (n % 4u == 0u ? bnn_threshold4_naked : bnn_threshold1_naked)(
        counts + n, t + n, k ^ 0x80000000u, 1u << (32u - n));
    return n == 32u ? ~word : ~word & ((1u << n) - 1u);
}

#endif /* BNN_HS_ASM */

/* The C twins: the same counts and words, through the path's popcount (a pair's second word
 * is x1 ^ w1 = a ^ t). */
BNN_INLINE void bnn_hs_rows_c(const uint32_t *x, const uint32_t *w, uint32_t blocks,
                              uint32_t tail, uint32_t rows, uint32_t *counts, int unrolled)
{
    const uint32_t n = 8u * blocks + tail;
    uint32_t r, i;
    (void)unrolled;
    for (r = 0; r < rows; ++r, w += n) {
        uint32_t c = 0u;
        for (i = 0; i < 8u * blocks; i += 2u) {
            const uint32_t a = x[i] ^ w[i];
            c += bnn_popcount32(a) + bnn_popcount32(a ^ x[i + 1u] ^ w[i + 1u]);
        }
        for (; i < n; ++i) c += bnn_popcount32(x[i] ^ w[i]);
        counts[r] = c;
    }
}

BNN_INLINE uint32_t bnn_threshold_word_c(const uint32_t *counts, const int32_t *t, uint32_t k,
                                         uint32_t n)
{
    uint32_t word = 0u, j;
    for (j = n; j-- > 0;) {
        const uint32_t v = (k ^ 0x80000000u) - 2u * counts[j]; /* (k - 2 count) + 2^31 */
        word = (word << 1) | (uint32_t)(v < ((uint32_t)t[j] ^ 0x80000000u));
    }
    return word;
}

#if BNN_HS_ASM
#define bnn_hs_rows bnn_hs_rows_asm
#define bnn_threshold_word bnn_threshold_word_asm
#else
#define bnn_hs_rows bnn_hs_rows_c
#define bnn_threshold_word bnn_threshold_word_c
#endif

#endif /* BNN_HS_THUMB2_H */
