/*
 * Dense layers, accumulate then stage: shared by the _b1 (threshold) and _s32 (scores)
 * kernels, which differ only in the sink they pass.
 */
#ifndef BNN_DENSE_IMPL_H
#define BNN_DENSE_IMPL_H

#include "bnn_hs_thumb2.h"
#include "bnn_u8_table.h"

#if BNN_PATH_V6M
/* Byte lanes of popcount(x[i] ^ w[i]) summed over i < n (1 <= n <= 31: a lane gets <= 8 per
 * word). On v6-M in Thumb-1 assembly: 16 instructions a word, the three masks and the end
 * pointer in registers (GCC's loop takes 20: it keeps two masks in high registers). Used for
 * the 1..3 words past the Harley-Seal blocks of a long row. */
#if BNN_NAKED_ASM
BNN_NAKED static uint32_t bnn_xor_lanes_naked(const uint32_t *x BNN_ASM_ARG,
                                              const uint32_t *w BNN_ASM_ARG, uint32_t n BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r7, lr}\n\t"
        "lsls r2, r2, #2\n\t"
        "adds r2, r0, r2\n\t"
        "mov r12, r2\n\t" /* end of x */
        "movs r4, #0\n\t"
        "ldr r5, =0x55555555\n\t"
        "ldr r6, =0x33333333\n\t"
        "ldr r7, =0x0F0F0F0F\n\t"
        "1:\n\t"
        "ldm r0!, {r2}\n\t"
        "ldm r1!, {r3}\n\t"
        "eors r2, r3\n\t"
        "lsrs r3, r2, #1\n\t"
        "ands r3, r5\n\t"
        "subs r2, r2, r3\n\t"
        "lsrs r3, r2, #2\n\t"
        "ands r2, r6\n\t"
        "ands r3, r6\n\t"
        "adds r2, r2, r3\n\t"
        "lsrs r3, r2, #4\n\t"
        "adds r2, r2, r3\n\t"
        "ands r2, r7\n\t"
        "adds r4, r4, r2\n\t"
        "cmp r0, r12\n\t"
        "bne 1b\n\t"
        "movs r0, r4\n\t"
        "pop {r4-r7, pc}\n\t"
        ".ltorg\n\t");
}
#endif

BNN_INLINE uint32_t bnn_xor_lanes(const uint32_t *x, const uint32_t *w, uint32_t n)
{
#if BNN_NAKED_ASM
    return bnn_xor_lanes_naked(x, w, n);
#else
    const bnn_masks_t k = bnn_masks();
    uint32_t lanes = 0u, i;
    for (i = 0; i < n; ++i) lanes += bnn_pc_lanes1(x[i] ^ w[i], k);
    return lanes;
#endif
}

/* Harley-Seal over 4-word blocks (v6-M): sum of popcount(x[i] ^ w[i]) over i < 4 blocks. The
 * carry-save state ones, twos runs along the chunk, each block adding its "fours" word's
 * popcount to 4 byte lanes (<= 8 each per block, so chunks of <= 31 blocks); the count is
 * pc(ones) + 2 pc(twos) + 4 (sum of the lanes). */
#define BNN_HS4_MAX_BLOCKS 31u

BNN_INLINE uint32_t bnn_hs4_c(const uint32_t *x, const uint32_t *w, uint32_t blocks)
{
    const bnn_masks_t k = bnn_masks();
    uint32_t ones = 0u, twos = 0u, lanes = 0u, i;
    for (i = 0; i < 4u * blocks; i += 4u) {
        const uint32_t a0 = x[i] ^ w[i], a1 = x[i + 1u] ^ w[i + 1u];
        const uint32_t a2 = x[i + 2u] ^ w[i + 2u], a3 = x[i + 3u] ^ w[i + 3u];
        uint32_t u = a0 ^ a1, ta = (a0 & a1) | (u & ones), tb, fours;
        ones ^= u;
        u = a2 ^ a3;
        tb = (a2 & a3) | (u & ones);
        ones ^= u;
        u = ta ^ tb;
        fours = (ta & tb) | (u & twos);
        twos ^= u;
        lanes += bnn_pc_lanes1(fours, k);
    }
    return bnn_lanes_sum(bnn_pc_lanes1(ones, k) + 2u * bnn_pc_lanes1(twos, k)) + 4u * bnn_lanes_sum(lanes);
}

#if BNN_NAKED_ASM
/* In Thumb-1: x r0, w r1, ones r2, twos r3, words r4-r7; end r8, lanes r9, masks r10, r11, lr,
 * a held carry r12. Per block 47 instructions (11.75 a word; 16 by bnn_xor_lanes): two LDM
 * pairs, 3 carry-save adders of 7, the fours word sliced into lanes; then the count. */
#define BNN_HS4_CSA(L, a, b, t) /* a = majority(a, b, L), L ^= a ^ b; b, t clobbered */ \
    "movs " t ", " a "\n\t" "eors " t ", " b "\n\t" "ands " a ", " b "\n\t"                  \
    "movs " b ", " t "\n\t" "ands " b ", " L "\n\t" "orrs " a ", " b "\n\t"                  \
    "eors " L ", " t "\n\t"
#define BNN_HS4_NIBBLES(v) /* v -> 8 nibble counts (r5, r6: scratch) */                \
    "lsrs r5, " v ", #1\n\t" "mov r6, r10\n\t" "ands r5, r6\n\t" "subs " v ", " v ", r5\n\t" \
    "mov r6, r11\n\t" "lsrs r5, " v ", #2\n\t" "ands " v ", r6\n\t" "ands r5, r6\n\t"     \
    "adds " v ", " v ", r5\n\t"
#define BNN_HS4_HSUM(v) /* v = the sum of its 4 bytes (r6 = 0x00FF00FF; r5: scratch) */     \
    "lsrs r5, " v ", #8\n\t" "ands " v ", r6\n\t" "ands r5, r6\n\t" "adds " v ", " v ", r5\n\t" \
    "lsrs r5, " v ", #16\n\t" "adds " v ", " v ", r5\n\t" "uxth " v ", " v "\n\t"
#define BNN_HS4_LOAD2                                                                    \
    "ldm r0!, {r4, r5}\n\t" "ldm r1!, {r6, r7}\n\t" "eors r4, r6\n\t" "eors r5, r7\n\t"
BNN_NAKED static uint32_t bnn_hs4_naked(const uint32_t *x BNN_ASM_ARG, const uint32_t *w BNN_ASM_ARG,
                                        uint32_t blocks BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r7, lr}\n\t"
        "mov r4, r8\n\t"
        "mov r5, r9\n\t"
        "mov r6, r10\n\t"
        "mov r7, r11\n\t"
        "push {r4-r7}\n\t" /* r8-r11 */
        "lsls r2, r2, #4\n\t"
        "adds r2, r0, r2\n\t"
        "mov r8, r2\n\t"
        "movs r2, #0\n\t"
        "movs r3, #0\n\t"
        "mov r9, r2\n\t"
        "ldr r4, =0x55555555\n\t"
        "mov r10, r4\n\t"
        "ldr r4, =0x33333333\n\t"
        "mov r11, r4\n\t"
        "ldr r4, =0x0F0F0F0F\n\t"
        "mov lr, r4\n\t"
        "1:\n\t"
        BNN_HS4_LOAD2
        BNN_HS4_CSA("r2", "r4", "r5", "r6")
        "mov r12, r4\n\t"
        BNN_HS4_LOAD2
        BNN_HS4_CSA("r2", "r4", "r5", "r6")
        "mov r5, r12\n\t"
        BNN_HS4_CSA("r3", "r4", "r5", "r6")
        "lsrs r5, r4, #1\n\t"
        "mov r6, r10\n\t"
        "ands r5, r6\n\t"
        "subs r4, r4, r5\n\t"
        "mov r6, r11\n\t"
        "lsrs r5, r4, #2\n\t"
        "ands r4, r6\n\t"
        "ands r5, r6\n\t"
        "adds r4, r4, r5\n\t"
        "lsrs r5, r4, #4\n\t"
        "adds r4, r4, r5\n\t"
        "mov r6, lr\n\t"
        "ands r4, r6\n\t"
        "add r9, r4\n\t"
        "cmp r0, r8\n\t"
        "bne 1b\n\t"
        /* ones and twos to nibbles, ones + 2 twos (<= 12) to bytes (<= 24) */
        BNN_HS4_NIBBLES("r2")
        BNN_HS4_NIBBLES("r3")
        "lsls r3, r3, #1\n\t"
        "adds r2, r2, r3\n\t"
        "lsrs r5, r2, #4\n\t"
        "mov r6, lr\n\t"
        "ands r2, r6\n\t"
        "ands r5, r6\n\t"
        "adds r2, r2, r5\n\t"
        /* r0 = sum of the bytes of r2 + 4 * that of the lanes */
        "ldr r6, =0x00FF00FF\n\t"
        BNN_HS4_HSUM("r2")
        "mov r3, r9\n\t"
        BNN_HS4_HSUM("r3")
        "lsls r3, r3, #2\n\t"
        "adds r0, r2, r3\n\t"
        "pop {r4-r7}\n\t"
        "mov r8, r4\n\t"
        "mov r9, r5\n\t"
        "mov r10, r6\n\t"
        "mov r11, r7\n\t"
        "pop {r4-r7, pc}\n\t"
        ".ltorg\n\t");
}
#undef BNN_HS4_LOAD2
#undef BNN_HS4_HSUM
#undef BNN_HS4_NIBBLES
#undef BNN_HS4_CSA
#define bnn_hs4 bnn_hs4_naked
#else
#define bnn_hs4 bnn_hs4_c
#endif

/* Rows of 16 words or more, one at a time (shorter rows gain more from the 4-row passes of
 * bnn_popcount_rows, which share each input word): Harley-Seal chunks of <= 31 blocks of 4
 * words, the last 0..3 words by bnn_xor_lanes (measured against bnn_xor_lanes alone: 1024-bit
 * rows 20 % fewer instructions, 16-word rows 7 % fewer, 18-word rows 1.6 % more). Kept out of
 * line: inlined, it costs the short-row code registers. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void bnn_bdense_long_rows(const bnn_bdense_t *p, const uint32_t *in, bnn_sink_t *s)
{
    const uint32_t stride = p->in_words, blocks = stride / 4u, tail = stride % 4u;
    uint32_t c, j, nb, b, n, acc[BNN_BLOCK];
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        for (j = 0; j < nb; ++j) {
            const uint32_t *w = p->weights + (size_t)(c + j) * stride;
            uint32_t count = 0u;
            for (b = 0; b < blocks; b += n) {
                n = bnn_min_u32(BNN_HS4_MAX_BLOCKS, blocks - b);
                count += bnn_hs4(in + 4u * b, w + 4u * b, n);
            }
            if (tail != 0u) count += bnn_lanes_sum(bnn_xor_lanes(in + 4u * blocks, w + 4u * blocks, tail));
            acc[j] = p->in_bits - 2u * count;
        }
        bnn_sink_put(s, c, nb, acc);
    }
}
#endif

BNN_INLINE void bnn_bdense_run(const bnn_bdense_t *p, const uint32_t *in, bnn_sink_t *s)
{
    const size_t stride = p->in_words;
    uint32_t c, j, nb, acc[BNN_BLOCK];
#if BNN_PATH_DSP || BNN_PATH_V7M
    /* rows of >= 8 words: Harley-Seal in 32-row chunks, then one output word (or 32 scores)
     * per chunk; v7-M's byte lanes take up to 31 blocks of 8 words */
    if (stride >= 8u && (BNN_PATH_DSP || stride < 8u * 32u)) {
        uint32_t counts[32];
        for (c = 0; c < p->out_ch; c += nb) {
            nb = bnn_min_u32(32u, p->out_ch - c);
            bnn_hs_rows(in, p->weights + c * stride, (uint32_t)stride / 8u, (uint32_t)stride % 8u, nb, counts);
            if (s->bits != NULL) {
                s->bits[c >> 5] = bnn_threshold_word(counts, s->stage->thresholds + c, p->in_bits, nb);
            } else {
                for (j = 0; j < nb; ++j) counts[j] = p->in_bits - 2u * counts[j];
                for (j = 0; j < nb; j += BNN_BLOCK) bnn_sink_put(s, c + j, bnn_min_u32(BNN_BLOCK, nb - j), counts + j);
            }
        }
        return;
    }
#endif
#if BNN_PATH_V6M
    if (stride >= 16u) {
        bnn_bdense_long_rows(p, in, s);
        return;
    }
#endif
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        for (j = 0; j < BNN_BLOCK; ++j) acc[j] = 0u;
        bnn_popcount_rows(in, 0, p->weights + c * stride, stride, p->in_words, nb, acc);
        for (j = 0; j < nb; ++j) acc[j] = p->in_bits - 2u * acc[j];
        bnn_sink_put(s, c, nb, acc);
    }
}

/* The portable path: one tap at a time, w = +1 (bit 0) or -1 (bit 1). */
BNN_INLINE void bnn_dense_u8_simple(const bnn_dense_u8_t *p, const uint8_t *in, bnn_sink_t *s)
{
    const uint32_t k = p->in_features, zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS(k);
    uint32_t c, j, t, nb, acc[BNN_BLOCK];
    for (c = 0; c < p->out_ch; c += nb) {
        nb = bnn_min_u32(BNN_BLOCK, p->out_ch - c);
        for (j = 0; j < nb; ++j) {
            const uint32_t *w = p->weights + (c + j) * stride;
            uint32_t a = 0u;
            for (t = 0; t < k; ++t) {
                const uint32_t v = (uint32_t)in[t] - zp; /* modulo 2^32 */
                a += ((w[t >> 5] >> (t & 31u)) & 1u) ? 0u - v : v;
            }
            acc[j] = a;
        }
        bnn_sink_put(s, c, nb, acc);
    }
}

BNN_INLINE void bnn_dense_u8_run(const bnn_dense_u8_t *p, const uint8_t *in, bnn_sink_t *s)
{
#if BNN_PATH_PORTABLE
    bnn_dense_u8_simple(p, in, s);
#else
    /* the tables hold 8 * 255 at most: zero points outside the uint8 range take the slow path */
    if ((uint32_t)p->zero_point <= 255u) {
        bnn_dense_u8_tables(p, in, s);
    } else {
        bnn_dense_u8_simple(p, in, s);
    }
#endif
}

#endif /* BNN_DENSE_IMPL_H */
