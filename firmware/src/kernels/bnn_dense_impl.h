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
 * the 1..7 words past the Harley-Seal blocks of a long row. */
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

/* Harley-Seal over 8-word blocks (v6-M; chunks of <= 31 blocks): counts[r] += sum of popcount(x[i] ^ w[r * stride + i])
 * over i < 8 blocks, for rows r < rows, x and w in pair form (bnn_bdense_hs: a pair's
 * t = a ^ (x1 ^ w1) enters the ones directly). The carry-save state ones, twos, fours runs along a
 * row, each block adding its "eights" word's popcount to 4 byte lanes (<= 8 each per block,
 * so chunks of <= 31 blocks); a row's count is pc(ones) + 2 pc(twos) + 4 pc(fours) + 8 (sum
 * of the lanes), made once per row. */
BNN_INLINE void bnn_hs8_rows_c(const uint32_t *x, const uint32_t *w, uint32_t blocks,
                               uint32_t rows, size_t stride, uint32_t *counts)
{
    const bnn_masks_t k = bnn_masks();
    uint32_t r, i, j;
    for (r = 0; r < rows; ++r, w += stride) {
        uint32_t ones = 0u, twos = 0u, fours = 0u, lanes = 0u;
        for (i = 0; i < 8u * blocks; i += 8u) {
            uint32_t f[2], u;
            for (j = 0; j < 2u; ++j) { /* words i + 4j .. i + 4j + 3: two pairs (a, t) */
                const uint32_t *xi = x + i + 4u * j, *wi = w + i + 4u * j;
                const uint32_t a0 = xi[0] ^ wi[0], t0 = xi[1] ^ wi[1];
                const uint32_t a2 = xi[2] ^ wi[2], t2 = xi[3] ^ wi[3];
                uint32_t ta, tb;
                ta = a0 ^ ((a0 ^ ones) & t0);
                ones ^= t0;
                tb = a2 ^ ((a2 ^ ones) & t2);
                ones ^= t2;
                u = ta ^ tb;
                f[j] = (ta & tb) | (u & twos);
                twos ^= u;
            }
            u = f[0] ^ f[1];
            lanes += bnn_pc_lanes1((f[0] & f[1]) | (u & fours), k);
            fours ^= u;
        }
        counts[r] += bnn_lanes_sum(bnn_pc_lanes1(ones, k) + 2u * bnn_pc_lanes1(twos, k) +
                                   4u * bnn_pc_lanes1(fours, k)) + 8u * bnn_lanes_sum(lanes);
    }
}

#if BNN_NAKED_ASM
/* In Thumb-1: x r0, w r1, ones r2, twos r3, words r4-r7; x end r8, lanes r9, fours r10, a held
 * fours carry r11, a held twos carry r12, mask 0x55555555 lr (the other two masks by LDR from
 * the literal pool). Per 8-word block 78 instructions (9.75 a word, against 11.75 with 4-word
 * blocks of plain words and 16 by bnn_xor_lanes): four LDM pairs, 4 carry-save adders of 5 on
 * pairs (a, t) (carry = a ^ ((a ^ L) & t), L ^= t) and 3 of 6 (carry = b ^ ((a ^ b) & (b ^
 * L)), L ^= a ^ b), the eights word sliced into lanes; a row's first block starts from a zero
 * state, with half adders where a state word is 0. Per row: the count
 * added to counts[r]; the rows' loop state (x, chunk bytes, counts, rows left, skip bytes from
 * the end of a row's chunk to the next row's) on the stack. */
#define BNN_HS8_CSA(L, a, b, t) /* b = majority(a, b, L), L ^= a ^ b; a, t clobbered */ \
    "eors " a ", " b "\n\t" "movs " t ", " b "\n\t" "eors " t ", " L "\n\t"               \
    "ands " t ", " a "\n\t" "eors " b ", " t "\n\t" "eors " L ", " a "\n\t"
#define BNN_HS8_PCSA(L) /* the pair (a r4, t r5): r4 = majority, L ^= t; r6 clobbered */  \
    "movs r6, r4\n\t" "eors r6, " L "\n\t" "ands r6, r5\n\t" "eors r4, r6\n\t"            \
    "eors " L ", r5\n\t"
#define BNN_HS8_HA(L, a, b) /* L = a ^ b, b = a & b (L was 0) */                       \
    "movs " L ", " a "\n\t" "eors " L ", " b "\n\t" "ands " b ", " a "\n\t"
#define BNN_HS8_EIGHTS /* the eights word (r5) -> byte lanes (r4, r6: scratch) */        \
    "lsrs r4, r5, #1\n\t" "mov r6, lr\n\t" "ands r4, r6\n\t" "subs r5, r5, r4\n\t"      \
    "ldr r6, =0x33333333\n\t" "lsrs r4, r5, #2\n\t" "ands r5, r6\n\t" "ands r4, r6\n\t" \
    "adds r5, r5, r4\n\t" "lsrs r4, r5, #4\n\t" "adds r5, r5, r4\n\t"                   \
    "ldr r6, =0x0F0F0F0F\n\t" "ands r5, r6\n\t"
#define BNN_HS8_LOAD2                                                                    \
    "ldm r0!, {r4, r5}\n\t" "ldm r1!, {r6, r7}\n\t" "eors r4, r6\n\t" "eors r5, r7\n\t"
#define BNN_HS8_NIBBLES(v) /* v -> 8 nibble counts (r5, r6: scratch) */                \
    "lsrs r5, " v ", #1\n\t" "mov r6, lr\n\t" "ands r5, r6\n\t" "subs " v ", " v ", r5\n\t" \
    "ldr r6, =0x33333333\n\t" "lsrs r5, " v ", #2\n\t" "ands " v ", r6\n\t" "ands r5, r6\n\t" \
    "adds " v ", " v ", r5\n\t"
#define BNN_HS8_PAIRS(v) /* 4 byte lanes -> 2 halfword lanes (r6 = 0x00FF00FF; r5: scratch) */ \
    "lsrs r5, " v ", #8\n\t" "ands " v ", r6\n\t" "ands r5, r6\n\t" "adds " v ", " v ", r5\n\t"
BNN_NAKED static void bnn_hs8_rows_naked(const uint32_t *x BNN_ASM_ARG, const uint32_t *w BNN_ASM_ARG,
                                         uint32_t blocks BNN_ASM_ARG, uint32_t *counts BNN_ASM_ARG,
                                         uint32_t rows BNN_ASM_ARG, uint32_t skip BNN_ASM_ARG)
{
    BNN_ASM(
        BNN_T1_SAVE /* r4-r11, lr */
        "lsls r2, r2, #5\n\t"
        "push {r0, r2, r3}\n\t" /* [sp] x, #4 chunk bytes, #8 counts; rows #48, skip #52 */
        "ldr r4, =0x55555555\n\t"
        "mov lr, r4\n\t"
        "1:\n\t" /* row */
        "ldr r0, [sp]\n\t"
        "ldr r4, [sp, #4]\n\t"
        "adds r4, r0, r4\n\t"
        "mov r8, r4\n\t"
        /* the first block, from a zero state: the first pair's t is the ones, its carry
         * a & ~t; half adders where a state word is still 0 */
        BNN_HS8_LOAD2
        "movs r2, r5\n\t"
        "bics r4, r5\n\t"
        "mov r12, r4\n\t"
        BNN_HS8_LOAD2
        BNN_HS8_PCSA("r2")
        "mov r5, r12\n\t"
        BNN_HS8_HA("r3", "r4", "r5")
        "mov r11, r5\n\t"
        BNN_HS8_LOAD2
        BNN_HS8_PCSA("r2")
        "mov r12, r4\n\t"
        BNN_HS8_LOAD2
        BNN_HS8_PCSA("r2")
        "mov r5, r12\n\t"
        BNN_HS8_CSA("r3", "r4", "r5", "r6")
        "mov r4, r11\n\t"
        BNN_HS8_HA("r7", "r4", "r5")
        "mov r10, r7\n\t"
        BNN_HS8_EIGHTS
        "mov r9, r5\n\t"
        "cmp r0, r8\n\t"
        "beq 3f\n\t");
    BNN_ASM(
        "2:\n\t" /* further blocks */
        BNN_HS8_LOAD2
        BNN_HS8_PCSA("r2")
        "mov r12, r4\n\t"
        BNN_HS8_LOAD2
        BNN_HS8_PCSA("r2")
        "mov r5, r12\n\t"
        BNN_HS8_CSA("r3", "r4", "r5", "r6")
        "mov r11, r5\n\t"
        BNN_HS8_LOAD2
        BNN_HS8_PCSA("r2")
        "mov r12, r4\n\t"
        BNN_HS8_LOAD2
        BNN_HS8_PCSA("r2")
        "mov r5, r12\n\t"
        BNN_HS8_CSA("r3", "r4", "r5", "r6")
        "mov r4, r11\n\t"
        "mov r7, r10\n\t"
        BNN_HS8_CSA("r7", "r4", "r5", "r6")
        "mov r10, r7\n\t"
        BNN_HS8_EIGHTS
        "add r9, r5\n\t"
        "cmp r0, r8\n\t"
        "bne 2b\n\t"
        "3:\n\t");
    BNN_ASM(
        /* ones + 2 twos (nibbles <= 12) and fours to bytes, ones + 2 twos + 4 fours (<= 56) */
        BNN_HS8_NIBBLES("r2")
        BNN_HS8_NIBBLES("r3")
        "mov r4, r10\n\t"
        BNN_HS8_NIBBLES("r4")
        "lsls r3, r3, #1\n\t"
        "adds r2, r2, r3\n\t"
        "ldr r6, =0x0F0F0F0F\n\t"
        "lsrs r5, r2, #4\n\t"
        "ands r2, r6\n\t"
        "ands r5, r6\n\t"
        "adds r2, r2, r5\n\t"
        "lsrs r5, r4, #4\n\t"
        "adds r4, r4, r5\n\t"
        "ands r4, r6\n\t"
        "lsls r4, r4, #2\n\t"
        "adds r2, r2, r4\n\t"
        /* halfword lanes: those of r2 (<= 112) + 8 times those of the lanes (<= 8 * 496) */
        "ldr r6, =0x00FF00FF\n\t"
        BNN_HS8_PAIRS("r2")
        "mov r3, r9\n\t"
        BNN_HS8_PAIRS("r3")
        "lsls r3, r3, #3\n\t"
        "adds r2, r2, r3\n\t"
        "lsrs r5, r2, #16\n\t"
        "adds r2, r2, r5\n\t"
        "uxth r2, r2\n\t"
        "ldr r4, [sp, #8]\n\t"
        "ldr r5, [r4]\n\t"
        "adds r5, r5, r2\n\t"
        "stm r4!, {r5}\n\t"
        "str r4, [sp, #8]\n\t"
        "ldr r5, [sp, #52]\n\t"
        "adds r1, r1, r5\n\t" /* the next row's chunk */
        "ldr r5, [sp, #48]\n\t"
        "subs r5, r5, #1\n\t"
        "str r5, [sp, #48]\n\t"
        "beq 7f\n\t"
        "b 1b\n\t"
        "7:\n\t"
        "add sp, #12\n\t"
        BNN_T1_RETURN
        ".ltorg\n\t");
}
#undef BNN_HS8_PAIRS
#undef BNN_HS8_NIBBLES
#undef BNN_HS8_LOAD2
#undef BNN_HS8_CSA
#undef BNN_HS8_EIGHTS
#undef BNN_HS8_HA
#undef BNN_HS8_PCSA

BNN_INLINE void bnn_hs8_rows(const uint32_t *x, const uint32_t *w, uint32_t blocks,
                             uint32_t rows, size_t stride, uint32_t *counts)
{
    bnn_hs8_rows_naked(x, w, blocks, counts, rows, 4u * ((uint32_t)stride - 8u * blocks));
}
#else
#define bnn_hs8_rows bnn_hs8_rows_c
#endif
#endif /* BNN_PATH_V6M */

/*
 * Rows of 8 words or more (every path): Harley-Seal over 8-word blocks in pair form. The
 * weights of a row's blocks are stored as pairs (w0, w0 ^ w1) (bnn_mcu/codegen/layout.py; the
 * 0..7 words past the blocks as they are), and the input's block words are put in the same
 * form, (x0, x0 ^ x1), once per chunk of <= BNN_HS_CHUNK blocks (on the stack): a pair's
 * a = x0 ^ w0 and t = a ^ (x1 ^ w1) are one XOR each, and the carry-save adder on them one
 * instruction cheaper than on the raw words (4 instead of 5 in Thumb-2, 5 instead of 6 in
 * Thumb-1). Then 32 rows at a time, one output word (or 32 scores) per 32 rows. Rows longer
 * than a chunk (over 7936 bits in Thumb-2, 4096 on v6-M) add the chunks' counts.
 *
 * v6-M: Harley-Seal chunks of 8-word blocks in Thumb-1 (bnn_hs8_rows), the last 0..7 words of
 * each row by bnn_xor_lanes. Measured on M0 (est. cycles) against the 4-row passes of
 * bnn_popcount_rows, which share each input word (plain words, before pair form): 8-word rows
 * 20 % fewer, 1024-bit rows 18 % fewer (than 4-word blocks), 9- and 12-word rows 1-3 % more,
 * 10, 11, 13 and 15 words 0-2 % fewer.
 */
#if BNN_PATH_V6M
#define BNN_HS_CHUNK 16u /* 512 B of stack (the micro:bit has 2 KB) */
#else
#define BNN_HS_CHUNK 31u /* v7-M's byte lanes take 31 blocks */
#endif

/* xp = the n = 8 * blocks + tail words of x, the blocks' in pair form (a block per step). */
BNN_INLINE void bnn_pair_form(const uint32_t *x, uint32_t blocks, uint32_t tail, uint32_t *xp)
{
    const uint32_t *end = x + 8u * blocks;
    uint32_t i;
    for (; x != end; x += 8, xp += 8) {
        const uint32_t x0 = x[0], x2 = x[2], x4 = x[4], x6 = x[6];
        xp[0] = x0;
        xp[1] = x0 ^ x[1];
        xp[2] = x2;
        xp[3] = x2 ^ x[3];
        xp[4] = x4;
        xp[5] = x4 ^ x[5];
        xp[6] = x6;
        xp[7] = x6 ^ x[7];
    }
    for (i = 0; i < tail; ++i) xp[i] = x[i];
}

/* counts[r] = popcount of xp ^ the chunk of row r (w + r * stride: blocks, then tail words)
 * for r < rows <= 32. */
BNN_INLINE void bnn_hs_chunk(const uint32_t *xp, const uint32_t *w, uint32_t blocks,
                             uint32_t tail, uint32_t rows, size_t stride, uint32_t *counts,
                             int unrolled)
{
    uint32_t j;
#if BNN_PATH_V6M
    for (j = 0; j < rows; ++j) counts[j] = 0u;
    (void)unrolled;
    bnn_hs8_rows(xp, w, blocks, rows, stride, counts);
    for (j = 0; tail != 0u && j < rows; ++j) {
        counts[j] += bnn_lanes_sum(bnn_xor_lanes(xp + 8u * blocks, w + (size_t)j * stride + 8u * blocks, tail));
    }
#else
    /* contiguous rows in one call, else one row per call */
    const uint32_t step = stride == 8u * blocks + tail ? rows : 1u;
    for (j = 0; j < rows; j += step) {
        bnn_hs_rows(xp, w + (size_t)j * stride, blocks, tail, step, counts + j, unrolled);
    }
#endif
}

#if BNN_PATH_V6M && defined(__GNUC__)
__attribute__((noinline)) static /* inlined, it costs the short-row code registers */
#else
BNN_INLINE /* where the sink (bits or scores) is known: the other one's code goes */
#endif
void bnn_bdense_hs(const bnn_bdense_t *p, const uint32_t *in, bnn_sink_t *s)
{
    const uint32_t stride = p->in_words, blocks = stride / 8u, tail = stride % 8u;
    const int chunked = blocks > BNN_HS_CHUNK, unrolled = s->bits != NULL;
    uint32_t xp[8u * BNN_HS_CHUNK + 7u], counts[32], part[32];
    uint32_t c, j, nb, b, n;
    if (!chunked) bnn_pair_form(in, blocks, tail, xp);
    for (c = 0; c < p->out_ch; c += nb) {
        const uint32_t *w = p->weights + (size_t)c * stride;
        nb = bnn_min_u32(32u, p->out_ch - c);
        if (!chunked) {
            bnn_hs_chunk(xp, w, blocks, tail, nb, stride, counts, unrolled);
        } else {
            for (j = 0; j < nb; ++j) counts[j] = 0u;
            for (b = 0; b < blocks; b += n) {
                const uint32_t last = blocks - b <= BNN_HS_CHUNK, t = last ? tail : 0u;
                n = last ? blocks - b : BNN_HS_CHUNK;
                bnn_pair_form(in + 8u * b, n, t, xp);
                bnn_hs_chunk(xp, w + 8u * b, n, t, nb, stride, part, unrolled);
                for (j = 0; j < nb; ++j) counts[j] += part[j];
            }
        }
        if (s->bits != NULL) { /* c is a multiple of 32: one output word */
            s->bits[c >> 5] = bnn_threshold_word(counts, s->stage->thresholds + c, p->in_bits, nb);
        } else {
            for (j = 0; j < nb; ++j) counts[j] = p->in_bits - 2u * counts[j];
            for (j = 0; j < nb; j += BNN_BLOCK) bnn_sink_put(s, c + j, bnn_min_u32(BNN_BLOCK, nb - j), counts + j);
        }
    }
}

BNN_INLINE void bnn_bdense_run(const bnn_bdense_t *p, const uint32_t *in, bnn_sink_t *s)
{
    const size_t stride = p->in_words;
    uint32_t c, j, nb, acc[BNN_BLOCK];
    if (stride >= 8u) { /* the weights are in pair form (see above) */
        bnn_bdense_hs(p, in, s);
        return;
    }
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
    /* The scratch holds the tables of a pass, then the sums of a batch: all channels, or a
     * multiple of BNN_BLOCK (the sink takes whole blocks). The tables hold 8 * 255 at most:
     * zero points outside the uint8 range take the slow path, and so does a scratch (or NULL)
     * too small for the tables and a batch. */
    const uint32_t ntab = bnn_min_u32(BNN_U8_TABLES, (p->in_features + 7u) / 8u);
    const uint32_t room = p->scratch != NULL && p->scratch_words > 128u * ntab
                              ? p->scratch_words - 128u * ntab : 0u;
    const uint32_t batch = room >= p->out_ch ? p->out_ch : room - room % BNN_BLOCK;
    if ((uint32_t)p->zero_point <= 255u && batch != 0u) {
        bnn_dense_u8_tables(p, in, s, ntab, batch);
    } else {
        bnn_dense_u8_simple(p, in, s);
    }
#endif
}

#endif /* BNN_DENSE_IMPL_H */
