/*
 * Popcount, per code path. Exactly one BNN_PATH_* is 1 (bnn_kernels.h selects it):
 *   DSP       v7E-M / v8-M mainline with the DSP extension (M4, M7, M33, M55): SWAR bit
 *             slicing, one carry-save adder per 3 words, USADA8 to sum byte lanes.
 *   V7M       v7-M / v8-M mainline without DSP (M3): same slicing, a multiply sums the lanes.
 *   V6M       v6-M / v8-M baseline (M0, M0+, M23): same slicing, shifts and adds only (no
 *             multiply: it may take 32 cycles there).
 *   PORTABLE  anything else (the host): __builtin_popcount per word.
 * arm-none-eabi-gcc compiles __builtin_popcount to a libgcc call (__popcountsi2) on every
 * Cortex-M, so no Arm path uses it.
 * BNN_TEST_EMULATE_DSP / _V7M / _V6M select a path on any compiler (the DSP one with a C model
 * of USADA8) so that the host tests run each path's logic bit for bit.
 *
 * Where each kernel's fast path lives (all held bit-exact by tests/test_kernels.py):
 *   bnn_hs_thumb2.h      binary dense rows: Harley-Seal carry-save blocks of 8 words in
 *                        Thumb-2 assembly (DSP, V7M), threshold words by ADCS; C twins
 *   bnn_dense_impl.h     the same on V6M: Harley-Seal blocks of 8 words in Thumb-1 assembly
 *   bnn_conv9_thumb2.h   binary conv windows of 9 words (3x3 over <= 32 channels): a carry-save
 *                        tree on precomputed x / w XOR combinations (assembly on DSP, V7M: two
 *                        output channels per loop); windows of G such groups (3x3 over 33..256
 *                        channels, 128 on V6M)
 *   bnn_conv9_thumb1.h   the 9-word windows in Thumb-1 assembly (V6M)
 *   bnn_u8_table.h       uint8 dense first layers: subset-sum tables, one per 8 input bytes
 *   bnn_conv_u8_dsp.h    uint8 conv windows of <= 12 taps: USAD8 against byte masks (DSP);
 *                        bnn_conv2d_u8_b1.c has the subset-sum-table version for V7M, V6M
 *   bnn_conv3_u8_dsp.h   uint8 3x3 convs over 1 channel, stride 1 (DSP): per-row tables of the
 *                        3-tap sign patterns in int16 lanes, SADD16 / SSUB16 per channel
 * The code below (bnn_popcount_rows) serves the other shapes (and v6-M dense rows under 8 words).
 */
#ifndef BNN_POPCOUNT_H
#define BNN_POPCOUNT_H

#include "bnn_kernel_util.h"

#if defined(BNN_TEST_EMULATE_DSP)
#define BNN_EMULATE_INTRINSICS 1
#endif

/* Helium (M55, __ARM_FEATURE_MVE): MVE has no vector popcount. A vector version of
 * bnn_popcount_rows (VEOR on 4 words, the same bit slicing in 32-bit lanes, VADDV) goes
 * where it is marked below; until then the DSP scalar path runs on the M55 (it has DSP). */
#if BNN_PATH_DSP && defined(__ARM_FEATURE_MVE) && !defined(BNN_EMULATE_INTRINSICS)
#define BNN_PATH_MVE 1
#else
#define BNN_PATH_MVE 0
#endif

#if BNN_PATH_DSP
#if defined(BNN_EMULATE_INTRINSICS)
/* C model of USADA8: acc + sum over the 4 bytes of |a_i - b_i|. */
BNN_INLINE uint32_t bnn_usada8(uint32_t a, uint32_t b, uint32_t acc)
{
    uint32_t i;
    for (i = 0; i < 32u; i += 8u) {
        uint32_t x = (a >> i) & 0xFFu, y = (b >> i) & 0xFFu;
        acc += x > y ? x - y : y - x;
    }
    return acc;
}
#else
#include <arm_acle.h>
BNN_INLINE uint32_t bnn_usada8(uint32_t a, uint32_t b, uint32_t acc)
{
    return __usada8(a, b, acc);
}
#endif
#endif /* BNN_PATH_DSP */

#if !BNN_PATH_PORTABLE
/* The bit-slicing masks. On Thumb-2 they are hidden from GCC once per loop, so they stay in
 * registers and each combines with a shifted operand ((v >> 1) & m in one instruction, where
 * an immediate mask takes two). */
typedef struct {
    uint32_t m1, m2, m4;
} bnn_masks_t;

#if defined(__GNUC__) && defined(__thumb2__)
#define BNN_IN_REGISTER(c) __asm__("" : "+r"(c))
#else
#define BNN_IN_REGISTER(c) ((void)0)
#endif

BNN_INLINE bnn_masks_t bnn_masks(void)
{
    bnn_masks_t k;
    k.m1 = 0x55555555u;
    k.m2 = 0x33333333u;
    k.m4 = 0x0F0F0F0Fu;
    BNN_IN_REGISTER(k.m1);
    BNN_IN_REGISTER(k.m2);
    BNN_IN_REGISTER(k.m4);
    return k;
}

/* Bit slicing: 8 nibbles, each the popcount (0..4) of that nibble of v. */
BNN_INLINE uint32_t bnn_pc_nibbles(uint32_t v, bnn_masks_t k)
{
    v -= (v >> 1) & k.m1;
    return (v & k.m2) + ((v >> 2) & k.m2);
}

/* Byte lanes of popcount(v), each 0..8. */
BNN_INLINE uint32_t bnn_pc_lanes1(uint32_t v, bnn_masks_t k)
{
    uint32_t n = bnn_pc_nibbles(v, k);
    return (n + (n >> 4)) & k.m4;
}

/* Byte lanes of popcount(a) + popcount(b) + popcount(c), each 0..24: a carry-save adder
 * turns three words into ones + 2*twos, so two words get sliced instead of three. */
BNN_INLINE uint32_t bnn_pc_lanes3(uint32_t a, uint32_t b, uint32_t c, bnn_masks_t k)
{
    uint32_t u = a ^ b;
    uint32_t ones = u ^ c, twos = (a & b) | (u & c);
    uint32_t n = bnn_pc_nibbles(ones, k) + (bnn_pc_nibbles(twos, k) << 1); /* nibbles 0..12 */
    return (n & k.m4) + ((n >> 4) & k.m4);
}

/* Sum of the 4 byte lanes (each 0..255). */
BNN_INLINE uint32_t bnn_lanes_sum(uint32_t lanes)
{
#if BNN_PATH_DSP
    return bnn_usada8(lanes, 0u, 0u);
#else
    uint32_t h = (lanes & 0x00FF00FFu) + ((lanes >> 8) & 0x00FF00FFu); /* 2 halfwords */
#if BNN_PATH_V7M
    return (h * 0x00010001u) >> 16;
#else
    return (h + (h >> 16)) & 0xFFFFu;
#endif
#endif
}

/* popcount(s) + 2 popcount(t) + 4 (popcount(f1) + popcount(f2)): the end of a carry-save
 * tree, sliced to nibbles, weighted, and summed once. */
BNN_INLINE uint32_t bnn_pc_weighted(uint32_t s, uint32_t t, uint32_t f1, uint32_t f2)
{
    const bnn_masks_t k = bnn_masks();
    const uint32_t n1 = bnn_pc_nibbles(s, k) + (bnn_pc_nibbles(t, k) << 1); /* nibbles <= 12 */
    const uint32_t n2 = bnn_pc_nibbles(f1, k) + bnn_pc_nibbles(f2, k);      /* nibbles <= 8 */
    const uint32_t b1 = (n1 & k.m4) + ((n1 >> 4) & k.m4), b2 = (n2 & k.m4) + ((n2 >> 4) & k.m4);
    return bnn_lanes_sum(b1 + (b2 << 2)); /* bytes <= 24 + 64 */
}

/* 3-word groups per lane flush (no DSP): 10 * 24 = 240 (+ 2 tail words * 8) fits a byte. */
#define BNN_PC_GROUPS 10u
#endif /* !BNN_PATH_PORTABLE */

BNN_INLINE uint32_t bnn_popcount32(uint32_t v)
{
#if BNN_PATH_PORTABLE
    return (uint32_t)__builtin_popcount(v);
#else
    return bnn_lanes_sum(bnn_pc_lanes1(v, bnn_masks()));
#endif
}

#if !BNN_PATH_PORTABLE
/* A lane accumulator. DSP: a plain count (USADA8 sums the byte lanes at every add). Others:
 * 4 byte lanes, flushed every BNN_PC_GROUPS groups. */
BNN_INLINE uint32_t bnn_lanes_add(uint32_t acc, uint32_t lanes)
{
#if BNN_PATH_DSP
    return bnn_usada8(lanes, 0u, acc);
#else
    return acc + lanes;
#endif
}

BNN_INLINE uint32_t bnn_lanes_total(uint32_t acc)
{
#if BNN_PATH_DSP
    return acc;
#else
    return bnn_lanes_sum(acc);
#endif
}
#endif

/* Weight rows handled per pass over the input: on Thumb-2 two rows keep all state in the 13
 * registers (four spill); Thumb-1 spills either way and more passes cost more. */
#if BNN_PATH_DSP || BNN_PATH_V7M
#define BNN_PASS_ROWS 2u
#else
#define BNN_PASS_ROWS BNN_BLOCK
#endif

/* The BNN_BLOCK row pointers of a block whose first nb (>= 1) rows are real: the others
 * repeat the last real row, so a block is always full (loops unroll, state stays in
 * registers, nothing is read out of bounds) and their results are ignored. */
BNN_INLINE void bnn_block_rows(const uint32_t *w, size_t stride, uint32_t nb, const uint32_t **r)
{
    uint32_t j;
    BNN_UNROLL_BLOCK
    for (j = 0; j < BNN_BLOCK; ++j) r[j] = w + (j < nb ? j : nb - 1u) * stride;
}

/* cnt[j] += sum over i < n of popcount(x[i] ^ r[j][i]) for j < BNN_PASS_ROWS. */
BNN_INLINE void bnn_popcount_pass(const uint32_t *x, int x_zero, const uint32_t *const *r,
                                  uint32_t n, uint32_t *cnt)
{
    uint32_t i, j;
#if BNN_PATH_PORTABLE
    for (i = 0; i < n; ++i) {
        uint32_t xi = x_zero ? 0u : x[i];
        BNN_UNROLL_BLOCK
        for (j = 0; j < BNN_PASS_ROWS; ++j) cnt[j] += bnn_popcount32(xi ^ r[j][i]);
    }
#else
    /* BNN_PATH_MVE: place for the Helium version (see the top of this file). */
    const bnn_masks_t k = bnn_masks();
    uint32_t acc[BNN_PASS_ROWS], groups = 0u;
    BNN_UNROLL_BLOCK
    for (j = 0; j < BNN_PASS_ROWS; ++j) acc[j] = 0u;
    for (i = 0; i + 3u <= n; i += 3u) {
        uint32_t x0 = 0u, x1 = 0u, x2 = 0u;
        if (!x_zero) {
            x0 = x[i];
            x1 = x[i + 1u];
            x2 = x[i + 2u];
        }
        BNN_UNROLL_BLOCK
        for (j = 0; j < BNN_PASS_ROWS; ++j) {
            acc[j] = bnn_lanes_add(acc[j], bnn_pc_lanes3(x0 ^ r[j][i], x1 ^ r[j][i + 1u],
                                                          x2 ^ r[j][i + 2u], k));
        }
#if !BNN_PATH_DSP
        if (++groups == BNN_PC_GROUPS) {
            BNN_UNROLL_BLOCK
            for (j = 0; j < BNN_PASS_ROWS; ++j) {
                cnt[j] += bnn_lanes_sum(acc[j]);
                acc[j] = 0u;
            }
            groups = 0u;
        }
#endif
    }
    for (; i < n; ++i) {
        uint32_t xi = x_zero ? 0u : x[i];
        BNN_UNROLL_BLOCK
        for (j = 0; j < BNN_PASS_ROWS; ++j) {
            acc[j] = bnn_lanes_add(acc[j], bnn_pc_lanes1(xi ^ r[j][i], k));
        }
    }
    BNN_UNROLL_BLOCK
    for (j = 0; j < BNN_PASS_ROWS; ++j) cnt[j] += bnn_lanes_total(acc[j]);
    (void)groups;
#endif
}

/* cnt[j] += sum over i < n of popcount(x[i] ^ w[j*stride + i]) for the BNN_BLOCK rows j of a
 * block (see bnn_block_rows: counts of rows from nb on are to be ignored). With x_zero (a
 * constant at every call site) x is not read and counts as 0. Each x word is loaded once per
 * pass of BNN_PASS_ROWS rows. */
BNN_INLINE void bnn_popcount_rows(const uint32_t *x, int x_zero, const uint32_t *w,
                                  size_t stride, uint32_t n, uint32_t nb, uint32_t *cnt)
{
    const uint32_t *r[BNN_BLOCK];
    uint32_t j;
    bnn_block_rows(w, stride, nb, r);
    for (j = 0; j < BNN_BLOCK; j += BNN_PASS_ROWS) bnn_popcount_pass(x, x_zero, r + j, n, cnt + j);
}

#endif /* BNN_POPCOUNT_H */
