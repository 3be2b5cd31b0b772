/*
 * uint8 x binary dense layers by subset-sum tables (the fast paths of bnn_dense_u8_*).
 *
 * A weight byte covers 8 taps. For a group of 8 input bytes x[0..8) the table
 *     T[b] = sum over t < 8 of (bit t of b ? -(x[t] - zp) : +(x[t] - zp))      (b = 0..255)
 * holds that group's exact contribution for every possible weight byte b, so each channel pays
 * one table load per 8 taps: acc[c] = sum over groups g of T_g[byte g of row c]. The tables
 * depend on the input only: built once per inference and shared by every channel.
 *
 * Layout: the input is walked in passes of BNN_U8_TABLES groups (their tables, 512 B each);
 * channels go in batches whose int32 sums stay between passes. Tables and sums live in the
 * caller's scratch (bnn_dense_u8_t.scratch: BNN_DENSE_U8_SCRATCH_WORDS), not on the stack.
 * Entries are biased by BNN_U8_BIAS to fit uint16 (|T| <= 8 * 255); the bias is taken out
 * once per channel. The table count is per core class (registers of the lookups). On
 * Thumb cores the table build and the lookups of a full pass are naked assembly functions
 * (bnn_u8_table_asm, bnn_u8_lookups*_asm; the same code at every -O, with GCC and clang).
 */
#ifndef BNN_U8_TABLE_H
#define BNN_U8_TABLE_H

#include "bnn_popcount.h"

#define BNN_U8_BIAS 2048u

/* BNN_U8_TABLES and BNN_U8_BATCH (bnn_kernels.h): on v6-M the Thumb-1 lookups take 13
 * instructions per channel and pass for 2 tables, 17 for 3, 21 for 4; on Thumb-2, 26 for 7
 * (the lookups of a pass fill its 14 registers). Measured on the micro:bit MLP's first layer
 * (784 -> 256), instructions / estimated cycles with 128 channels a pass: 227 k / 367 k for 2
 * tables, 205 k / 327 k for 3, 194 k / 307 k for 4; with 256: 199 k / 320 k, 177 k / 282 k,
 * 167 k / 263 k (the default: 3 KB of scratch). */
#if BNN_PATH_V6M && (BNN_U8_TABLES < 2 || BNN_U8_TABLES > 4)
#error "BNN_U8_TABLES must be 2, 3 or 4 on v6-M"
#endif

/* Table entries are written as uint32 pairs and read as uint16: the reads go through a type
 * that may alias (GCC, clang), or through bytes elsewhere. */
#if defined(__GNUC__)
typedef uint16_t __attribute__((may_alias)) bnn_u16_alias_t;
#define BNN_TABLE_ENTRY(t, i) ((uint32_t)((const bnn_u16_alias_t *)(const void *)(t))[i])
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BNN_TABLE_ENTRY(t, i) \
    ((uint32_t)((const uint8_t *)(t))[2u * (i)] << 8 | ((const uint8_t *)(t))[2u * (i) + 1u])
#else
#define BNN_TABLE_ENTRY(t, i) \
    ((uint32_t)((const uint8_t *)(t))[2u * (i)] | (uint32_t)((const uint8_t *)(t))[2u * (i) + 1u] << 8)
#endif

/* The table of the taps x[0..n) (n <= 8; taps past n count as x = zp, i.e. 0) into tab[128]
 * (256 entries, entry b in the uint16 at index b). Written as 128 pairs (entries 2j, 2j+1):
 * flipping the sign of tap t adds -2(x[t] - zp) to an entry, so with d[t] that amount in both
 * halves, pair j + 2^k = pair j + d[k+1] (exact: every half stays in [8, 4088], so no carry
 * crosses halves). Pairs 0..7 are made in registers, then moved in place along a Gray code
 * of taps 4..7: each of the 16 blocks of eight pairs costs one add per pair. */
#define BNN_U8_BLOCK(pos, delta)                                                         \
    do {                                                                                 \
        uint32_t *b_ = tab + 8u * (pos);                                                 \
        p0 += (delta); p1 += (delta); p2 += (delta); p3 += (delta);                      \
        p4 += (delta); p5 += (delta); p6 += (delta); p7 += (delta);                      \
        b_[0] = p0; b_[1] = p1; b_[2] = p2; b_[3] = p3;                                  \
        b_[4] = p4; b_[5] = p5; b_[6] = p6; b_[7] = p7;                                  \
    } while (0)

#if BNN_PATH_MVE
#include <arm_mve.h>
/* Helium: pairs 0..7 in two vectors; a block is two vector adds of the scalar step and two
 * stores (GCC's own vectorization of the scalar code goes through the stack). */
#undef BNN_U8_BLOCK
#define BNN_U8_BLOCK(pos, delta)                                                         \
    do {                                                                                 \
        lo = vaddq_n_u32(lo, (delta));                                                   \
        hi = vaddq_n_u32(hi, (delta));                                                   \
        vst1q_u32(tab + 8u * (pos), lo);                                                 \
        vst1q_u32(tab + 8u * (pos) + 4u, hi);                                            \
    } while (0)
#endif

/* A table in assembly, from the 8 bytes x[0..8) (naked: x r0, zp r1, tab r2). With
 * D[t] = 2 (x[t] - zp) in both halves, pair j = pair 0 - the D of the taps set in j. The first
 * B pairs (taps 0 .. log2 B) are made in registers; then blocks of B pairs follow in order,
 * block i being block i - 1 minus a step: from i - 1 to i the tap of i's lowest set bit z is
 * set and those below are cleared, so the step is E[z] = D[z] - (the D of the taps below). */
#if BNN_NAKED_ASM && (BNN_PATH_DSP || BNN_PATH_V7M) && !BNN_PATH_MVE
#define BNN_U8_TABLE_ASM 1
/* Thumb-2: 8 pairs r0-r7, steps r8-r11 (taps 4..7), table lr; 16 blocks of 8 SUBs and an STM.
 * Halves: D' = v + (v << 16), and D = D' << 1 folds into the shifted operand of SUB. */
#define BNN_U8_TAP_E(t, e)                                                               \
    "ldrb r3, [r0, #" #t "]\n\t"                                                          \
    "sub r3, r3, r1\n\t"                                                                 \
    "add r4, r4, r3\n\t"                                                                 \
    "add r3, r3, r3, lsl #16\n\t"                                                        \
    "sub " e ", r3, r5\n\t"                                                              \
    "lsl " e ", " e ", #1\n\t"                                                           \
    "add r5, r5, r3\n\t"
#define BNN_U8_TAP_D(t, d)                                                               \
    "ldrb r3, [r0, #" #t "]\n\t"                                                          \
    "sub r3, r3, r1\n\t"                                                                 \
    "add r4, r4, r3\n\t"                                                                 \
    "add " d ", r3, r3, lsl #16\n\t"
#define BNN_U8_SUB8(e)                                                                   \
    "sub r0, r0, " e "\n\tsub r1, r1, " e "\n\tsub r2, r2, " e "\n\tsub r3, r3, " e "\n\t" \
    "sub r4, r4, " e "\n\tsub r5, r5, " e "\n\tsub r6, r6, " e "\n\tsub r7, r7, " e "\n\t" \
    "stm lr!, {r0-r7}\n\t"
BNN_NAKED static void bnn_u8_table_asm(const uint8_t *x BNN_ASM_ARG, uint32_t zp BNN_ASM_ARG,
                                       uint32_t *tab BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r11, lr}\n\t"
        "mov lr, r2\n\t"
        "mov r4, #2048\n\t" /* s = BNN_U8_BIAS + sum of v */
        "mov r5, #0\n\t"    /* D' of the taps below */
        BNN_U8_TAP_E(4, "r8")
        BNN_U8_TAP_E(5, "r9")
        BNN_U8_TAP_E(6, "r10")
        BNN_U8_TAP_E(7, "r11")
        BNN_U8_TAP_D(1, "r5")
        BNN_U8_TAP_D(2, "r6")
        BNN_U8_TAP_D(3, "r7")
        "ldrb r3, [r0]\n\t"
        "sub r3, r3, r1\n\t"
        "add r4, r4, r3\n\t"
        "sub r3, r4, r3, lsl #1\n\t" /* entry 1: s - 2 v0 */
        "add r0, r4, r3, lsl #16\n\t"
        "sub r1, r0, r5, lsl #1\n\t"
        "sub r2, r0, r6, lsl #1\n\t"
        "sub r3, r1, r6, lsl #1\n\t"
        "sub r4, r0, r7, lsl #1\n\t"
        "sub r5, r1, r7, lsl #1\n\t"
        "sub r6, r2, r7, lsl #1\n\t"
        "sub r7, r3, r7, lsl #1\n\t"
        "stm lr!, {r0-r7}\n\t"
        BNN_U8_SUB8("r8")
        BNN_U8_SUB8("r9")
        BNN_U8_SUB8("r8")
        BNN_U8_SUB8("r10")
        BNN_U8_SUB8("r8")
        BNN_U8_SUB8("r9")
        BNN_U8_SUB8("r8")
        BNN_U8_SUB8("r11")
        BNN_U8_SUB8("r8")
        BNN_U8_SUB8("r9")
        BNN_U8_SUB8("r8")
        BNN_U8_SUB8("r10")
        BNN_U8_SUB8("r8")
        BNN_U8_SUB8("r9")
        BNN_U8_SUB8("r8")
        "pop {r4-r11, pc}\n\t");
}
#undef BNN_U8_SUB8
#undef BNN_U8_TAP_D
#undef BNN_U8_TAP_E
#elif BNN_NAKED_ASM && BNN_PATH_V6M
#define BNN_U8_TABLE_ASM 1
/* Thumb-1: 4 pairs r0-r3, table r4, steps r6, r7 and r8-r10 (taps 3..7; the high ones through
 * r5); 32 blocks of 4 SUBs and an STM. */
#define BNN_U8_TAP_V(t)                                                                  \
    "ldrb r3, [r0, #" #t "]\n\t"                                                          \
    "subs r3, r3, r1\n\t"                                                                \
    "adds r4, r4, r3\n\t"
#define BNN_U8_D(d) /* d = 2 (v + (v << 16)), v in r3 */                                 \
    "lsls " d ", r3, #16\n\t"                                                            \
    "adds " d ", " d ", r3\n\t"                                                          \
    "lsls " d ", " d ", #1\n\t"
#define BNN_U8_TAP_HI(t, e)                                                              \
    BNN_U8_TAP_V(t) BNN_U8_D("r2")                                                       \
    "subs r3, r2, r5\n\t"                                                                \
    "mov " e ", r3\n\t"                                                                  \
    "adds r5, r5, r2\n\t"
#define BNN_U8_SUB4(e)                                                                   \
    "subs r0, r0, " e "\n\tsubs r1, r1, " e "\n\tsubs r2, r2, " e "\n\tsubs r3, r3, " e "\n\t" \
    "stm r4!, {r0-r3}\n\t"
#define BNN_U8_SUB4_HI(e) "mov r5, " e "\n\t" BNN_U8_SUB4("r5")
BNN_NAKED static void bnn_u8_table_asm(const uint8_t *x BNN_ASM_ARG, uint32_t zp BNN_ASM_ARG,
                                       uint32_t *tab BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r7, lr}\n\t"
        "mov r3, r8\n\t"
        "mov r4, r9\n\t"
        "mov r5, r10\n\t"
        "push {r3-r5}\n\t"
        "mov r12, r2\n\t"
        "movs r4, #128\n\t"
        "lsls r4, r4, #4\n\t" /* s = BNN_U8_BIAS + sum of v */
        BNN_U8_TAP_V(3) BNN_U8_D("r2")
        "movs r6, r2\n\t" /* E[1] = D[3] */
        "movs r5, r2\n\t" /* D of the taps below */
        BNN_U8_TAP_V(4) BNN_U8_D("r2")
        "subs r7, r2, r5\n\t"
        "adds r5, r5, r2\n\t"
        BNN_U8_TAP_HI(5, "r8")
        BNN_U8_TAP_HI(6, "r9")
        BNN_U8_TAP_HI(7, "r10")
        BNN_U8_TAP_V(1) BNN_U8_D("r5")
        BNN_U8_TAP_V(2) BNN_U8_D("r2")
        BNN_U8_TAP_V(0)
        "lsls r3, r3, #1\n\t"
        "subs r3, r4, r3\n\t" /* entry 1: s - 2 v0 */
        "lsls r3, r3, #16\n\t"
        "adds r0, r4, r3\n\t"
        "subs r1, r0, r5\n\t"
        "subs r3, r1, r2\n\t"
        "subs r2, r0, r2\n\t"
        "mov r4, r12\n\t"
        "stm r4!, {r0-r3}\n\t"
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4_HI("r8")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4_HI("r9")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4_HI("r8")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4_HI("r10")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4_HI("r8")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4_HI("r9")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4_HI("r8")
        BNN_U8_SUB4("r6")
        BNN_U8_SUB4("r7")
        BNN_U8_SUB4("r6")
        "pop {r3-r5}\n\t"
        "mov r8, r3\n\t"
        "mov r9, r4\n\t"
        "mov r10, r5\n\t"
        "pop {r4-r7, pc}\n\t");
}
#undef BNN_U8_SUB4_HI
#undef BNN_U8_SUB4
#undef BNN_U8_TAP_HI
#undef BNN_U8_D
#undef BNN_U8_TAP_V
#endif

BNN_INLINE void bnn_u8_table(const uint8_t *x, uint32_t n, uint32_t zp, uint32_t *tab)
{
    uint32_t t;
    uint8_t last[8];
    if (n < 8u) { /* the last group of a row: taps past n read zp (x - zp = 0) */
        for (t = 0; t < 8u; ++t) last[t] = t < n ? x[t] : (uint8_t)zp;
        x = last;
    }
#if defined(BNN_U8_TABLE_ASM)
    bnn_u8_table_asm(x, zp, tab);
#else
    uint32_t v[8], d[8], s = BNN_U8_BIAS, p0, p1, p2, p3, p4, p5, p6, p7;
    BNN_UNROLL_TAPS /* straight-line code, all in registers */
    for (t = 0; t < 8u; ++t) {
        v[t] = (uint32_t)x[t] - zp; /* modulo 2^32 */
        s += v[t];
        d[t] = (0u - 2u * v[t]) * 0x00010001u;
    }
    p0 = s | ((s - 2u * v[0]) << 16); /* entries 0 and 1 */
    p1 = p0 + d[1];
    p2 = p0 + d[2];
    p3 = p1 + d[2];
    p4 = p0 + d[3];
    p5 = p1 + d[3];
    p6 = p2 + d[3];
    p7 = p3 + d[3];
#if BNN_PATH_MVE
    {
        const uint32_t first[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
        uint32x4_t lo = vld1q_u32(first), hi = vld1q_u32(first + 4);
#endif
    /* block index = bits of taps 4..7 set; Gray order: one tap flips per step */
    BNN_U8_BLOCK(0, 0u);
    BNN_U8_BLOCK(1, d[4]);
    BNN_U8_BLOCK(3, d[5]);
    BNN_U8_BLOCK(2, 0u - d[4]);
    BNN_U8_BLOCK(6, d[6]);
    BNN_U8_BLOCK(7, d[4]);
    BNN_U8_BLOCK(5, 0u - d[5]);
    BNN_U8_BLOCK(4, 0u - d[4]);
    BNN_U8_BLOCK(12, d[7]);
    BNN_U8_BLOCK(13, d[4]);
    BNN_U8_BLOCK(15, d[5]);
    BNN_U8_BLOCK(14, 0u - d[4]);
    BNN_U8_BLOCK(10, 0u - d[6]);
    BNN_U8_BLOCK(11, d[4]);
    BNN_U8_BLOCK(9, 0u - d[5]);
    BNN_U8_BLOCK(8, 0u - d[4]);
#if BNN_PATH_MVE
    }
#endif
#endif
}

/* Byte g of a weight row (taps 8g .. 8g+7, LSB first). */
BNN_INLINE uint32_t bnn_weight_byte(const uint32_t *row, uint32_t g)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (row[g >> 2] >> (8u * (g & 3u))) & 0xFFu;
#else
    return ((const uint8_t *)row)[g];
#endif
}

/* What a pass of lookups walks: per channel (row), the weight bytes b[0 .. nt) of its pass,
 * rows `step` bytes apart until `end`, adding into acc[] (one sum per row). */
typedef struct {
    const uint32_t *tab; /* nt tables of 256 entries (128 words) one after the other */
    const uint8_t *b, *end;
    uint32_t step;
    uint32_t *acc;
} bnn_u8_pass_t;

/* The C twin (and the shorter last pass): acc[c] += T_j[b_c[j]] for j < nt. */
BNN_INLINE void bnn_u8_lookups_c(const bnn_u8_pass_t *p, uint32_t nt)
{
    const uint8_t *b = p->b;
    uint32_t *acc = p->acc, j;
    for (; b != p->end; b += p->step, ++acc) {
        uint32_t a = *acc;
        for (j = 0; j < nt; ++j) a += BNN_TABLE_ENTRY(p->tab + 128u * j, b[j]);
        *acc = a;
    }
}

#if BNN_NAKED_ASM && (BNN_PATH_DSP || BNN_PATH_V7M)
/* Seven tables in Thumb-2: bases r0-r6, bytes r8, end r9, step r10, sums r11, sum r12; per
 * channel 26 instructions (a byte load, a halfword load and an add per table; the loads in
 * pairs, so no load waits for the one before it). */
BNN_NAKED static void bnn_u8_lookups7_asm(const bnn_u8_pass_t *p BNN_ASM_ARG)
{
    BNN_ASM(
        "push {r4-r11, lr}\n\t"
        "ldr r8, [r0, #4]\n\t"
        "ldr r9, [r0, #8]\n\t"
        "ldr r10, [r0, #12]\n\t"
        "ldr r11, [r0, #16]\n\t"
        "ldr r0, [r0]\n\t"
        "add r1, r0, #512\n\t"
        "add r2, r0, #1024\n\t"
        "add r3, r0, #1536\n\t"
        "add r4, r0, #2048\n\t"
        "add r5, r0, #2560\n\t"
        "add r6, r0, #3072\n\t"
        "1:\n\t"
        "ldr r12, [r11]\n\t"
        "ldrb r7, [r8]\n\t"
        "ldrb lr, [r8, #1]\n\t"
        "ldrh r7, [r0, r7, lsl #1]\n\t"
        "ldrh lr, [r1, lr, lsl #1]\n\t"
        "add r12, r12, r7\n\t"
        "add r12, r12, lr\n\t"
        "ldrb r7, [r8, #2]\n\t"
        "ldrb lr, [r8, #3]\n\t"
        "ldrh r7, [r2, r7, lsl #1]\n\t"
        "ldrh lr, [r3, lr, lsl #1]\n\t"
        "add r12, r12, r7\n\t"
        "add r12, r12, lr\n\t"
        "ldrb r7, [r8, #4]\n\t"
        "ldrb lr, [r8, #5]\n\t"
        "ldrh r7, [r4, r7, lsl #1]\n\t"
        "ldrh lr, [r5, lr, lsl #1]\n\t"
        "add r12, r12, r7\n\t"
        "add r12, r12, lr\n\t"
        "ldrb r7, [r8, #6]\n\t"
        "add r8, r8, r10\n\t"
        "ldrh r7, [r6, r7, lsl #1]\n\t"
        "add r12, r12, r7\n\t"
        "str r12, [r11], #4\n\t"
        "cmp r8, r9\n\t"
        "bne 1b\n\t"
        "pop {r4-r11, pc}\n\t");
}
/* The assembly for a pass of nt tables; 0 when there is none (shorter passes: the C twin). */
BNN_INLINE int bnn_u8_lookups_asm(const bnn_u8_pass_t *p, uint32_t nt)
{
    if (nt == 7u) {
        bnn_u8_lookups7_asm(p);
        return 1;
    }
    return 0;
}
#define BNN_U8_LOOKUPS_ASM 1
#elif BNN_NAKED_ASM && BNN_PATH_V6M
/* One to four tables in Thumb-1: bases r0-r3, bytes r4, sums r5, sum r6, end r8, step r9; per
 * channel 5 instructions and 4 per table (13 for two tables, 17 for three, 21 for four: 5.25
 * per table, and 8.25 estimated cycles, against 9 for three). */
#define BNN_U8_LOOK(j, base)                                                             \
    "ldrb r7, [r4, #" #j "]\n\t"                                                         \
    "lsls r7, r7, #1\n\t"                                                                \
    "ldrh r7, [" base ", r7]\n\t"                                                        \
    "adds r6, r6, r7\n\t"
/* One function per table count (1 .. BNN_U8_TABLES): a layer's last pass may be shorter. */
#define BNN_U8_LOOKUPS_T1(name, looks)                                                   \
    BNN_NAKED static void name(const bnn_u8_pass_t *p BNN_ASM_ARG)                       \
    {                                                                                    \
        BNN_ASM(                                                                         \
            "push {r4-r7, lr}\n\t"                                                       \
            "mov r4, r8\n\t"                                                             \
            "mov r5, r9\n\t"                                                             \
            "push {r4, r5}\n\t"                                                          \
            "ldr r1, [r0, #8]\n\t"                                                       \
            "mov r8, r1\n\t"                                                             \
            "ldr r1, [r0, #12]\n\t"                                                      \
            "mov r9, r1\n\t"                                                             \
            "ldr r4, [r0, #4]\n\t"                                                       \
            "ldr r5, [r0, #16]\n\t"                                                      \
            "ldr r0, [r0]\n\t"                                                           \
            "movs r7, #128\n\t"                                                          \
            "lsls r7, r7, #2\n\t" /* 512 B a table */                                    \
            "adds r1, r0, r7\n\t"                                                        \
            "adds r2, r1, r7\n\t"                                                        \
            "adds r3, r2, r7\n\t"                                                        \
            "1:\n\t"                                                                     \
            "ldr r6, [r5]\n\t"                                                           \
            looks                                                                        \
            "stm r5!, {r6}\n\t"                                                          \
            "add r4, r9\n\t"                                                             \
            "cmp r4, r8\n\t"                                                             \
            "bne 1b\n\t"                                                                 \
            "pop {r4, r5}\n\t"                                                           \
            "mov r8, r4\n\t"                                                             \
            "mov r9, r5\n\t"                                                             \
            "pop {r4-r7, pc}\n\t");                                                      \
    }
#define BNN_U8_LOOK01 BNN_U8_LOOK(0, "r0") BNN_U8_LOOK(1, "r1")
BNN_U8_LOOKUPS_T1(bnn_u8_lookups1_t1_asm, BNN_U8_LOOK(0, "r0"))
BNN_U8_LOOKUPS_T1(bnn_u8_lookups2_t1_asm, BNN_U8_LOOK01)
#if BNN_U8_TABLES >= 3
BNN_U8_LOOKUPS_T1(bnn_u8_lookups3_t1_asm, BNN_U8_LOOK01 BNN_U8_LOOK(2, "r2"))
#endif
#if BNN_U8_TABLES >= 4
BNN_U8_LOOKUPS_T1(bnn_u8_lookups4_t1_asm, BNN_U8_LOOK01 BNN_U8_LOOK(2, "r2") BNN_U8_LOOK(3, "r3"))
#endif
#undef BNN_U8_LOOK01
/* The assembly for a pass of nt tables (1 .. BNN_U8_TABLES: every pass). */
BNN_INLINE int bnn_u8_lookups_asm(const bnn_u8_pass_t *p, uint32_t nt)
{
#if BNN_U8_TABLES >= 4
    if (nt == 4u) {
        bnn_u8_lookups4_t1_asm(p);
        return 1;
    }
#endif
#if BNN_U8_TABLES >= 3
    if (nt == 3u) {
        bnn_u8_lookups3_t1_asm(p);
        return 1;
    }
#endif
    if (nt == 2u) {
        bnn_u8_lookups2_t1_asm(p);
        return 1;
    }
    bnn_u8_lookups1_t1_asm(p);
    return 1;
}
#undef BNN_U8_LOOKUPS_T1
#undef BNN_U8_LOOK
#define BNN_U8_LOOKUPS_ASM 1
#endif

/* acc[c] += the entries of tables 0 .. nt-1 picked by weight bytes g0 .. g0+nt-1 of each of the
 * nb rows from w on (nt <= BNN_U8_TABLES; a row's bytes past its groups are never read). */
BNN_INLINE void bnn_u8_lookups(const uint32_t *t, const uint32_t *w, uint32_t g0, uint32_t nt,
                               size_t stride, uint32_t nb, uint32_t *acc)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint32_t c, j;
    for (c = 0; c < nb; ++c, w += stride) {
        for (j = 0; j < nt; ++j) acc[c] += BNN_TABLE_ENTRY(t + 128u * j, bnn_weight_byte(w, g0 + j));
    }
#else
    bnn_u8_pass_t p;
    p.tab = t;
    p.b = (const uint8_t *)w + g0;
    p.step = (uint32_t)stride * 4u;
    p.end = p.b + (size_t)nb * p.step;
    p.acc = acc;
#if defined(BNN_U8_LOOKUPS_ASM)
    if (bnn_u8_lookups_asm(&p, nt)) return;
#endif
    bnn_u8_lookups_c(&p, nt);
#endif
}

/* acc[c] for the channels of one output stage: sum over valid taps of w * (x - zp). The
 * scratch holds ntab tables (ntab = min(BNN_U8_TABLES, groups)), then the sums of batch
 * channels (all of them, or a multiple of BNN_BLOCK: bnn_dense_u8_run checks both fit). */
BNN_INLINE void bnn_dense_u8_tables(const bnn_dense_u8_t *p, const uint8_t *in, bnn_sink_t *s,
                                    uint32_t ntab, uint32_t batch)
{
    uint32_t *const tab = p->scratch;
    uint32_t *const acc = tab + 128u * ntab;
    const uint32_t k = p->in_features, zp = (uint32_t)p->zero_point;
    const size_t stride = BNN_WORDS(k);
    const uint32_t groups = (k + 7u) / 8u;
    const uint32_t bias = groups * BNN_U8_BIAS; /* one biased entry per group */
    uint32_t c0, nb, g0, nt, c, j;
    for (c0 = 0; c0 < p->out_ch; c0 += nb) {
        const uint32_t *w = p->weights + (size_t)c0 * stride;
        nb = bnn_min_u32(batch, p->out_ch - c0);
        for (c = 0; c < nb; ++c) acc[c] = 0u - bias;
        for (g0 = 0; g0 < groups; g0 += nt) {
            nt = bnn_min_u32(ntab, groups - g0);
            for (j = 0; j < nt; ++j) {
                bnn_u8_table(in + 8u * (g0 + j), bnn_min_u32(8u, k - 8u * (g0 + j)), zp,
                             tab + 128u * j);
            }
            bnn_u8_lookups(tab, w, g0, nt, stride, nb, acc);
        }
        for (c = 0; c < nb; c += BNN_BLOCK) {
            bnn_sink_put(s, c0 + c, bnn_min_u32(BNN_BLOCK, nb - c), acc + c);
        }
    }
}

#endif /* BNN_U8_TABLE_H */
