/*
 * Private helpers shared by the kernels: block size, int32 conversion, the output stage
 * (threshold bits or scores) and conv window clipping. Not part of the contract.
 */
#ifndef BNN_KERNEL_UTIL_H
#define BNN_KERNEL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "bnn_kernels.h"

/* Speed whatever the project's -O: a project built at -Os would otherwise lose a fifth of the
 * speed of the hot loops (measured: the uint8 table kernel +24 % instructions on M4), for a
 * few hundred bytes of code. GCC takes the kernels' own optimization level by this pragma,
 * which every kernel file meets before its first function; define BNN_KERNELS_KEEP_OS to keep
 * -Os for them. (Clang has no such pragma: its -Os kernels are measured in the README.) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE_SIZE__) && \
    !defined(BNN_KERNELS_KEEP_OS)
#pragma GCC optimize("O2")
#endif

/* Forced inlining: callers pass constant block sizes and flags that must fold away. */
#if defined(__GNUC__)
#define BNN_INLINE static inline __attribute__((always_inline))
#else
#define BNN_INLINE static inline
#endif

/* On the definitions of the layer kernels: their pointers (parameters, input, output) are never
 * NULL, as the contract requires; static analysers (clang-analyzer) are told so. Compilers are
 * not: GCC would drop the sink's NULL tests and allocate registers differently, moving
 * instruction counts both ways (measured: MLP +0.2 %, d1024 first layer +2 % on v6-M). */
#if defined(__clang_analyzer__)
#define BNN_NONNULL __attribute__((nonnull))
#else
#define BNN_NONNULL
#endif

/* The assembly fast paths are whole naked functions (no compiler-made prologue; arguments in
 * r0-r3 and on the stack as the AAPCS says): no register allocation around them, so GCC and
 * clang (so also Keil's armclang) build the same code at every -O, -O0 and -Os included. Each
 * piece starts with `.syntax unified`, so no assembler flag (-masm-syntax-unified) is needed on
 * Thumb-1. Compilers without GNU asm (IAR) build the C twins, which give the same bits; define
 * BNN_NO_ASM to build the C twins with GCC or clang as well. */
#define BNN_ASM_UNIFIED ".syntax unified\n\t"
/* One piece of a naked function's assembly (ISO C caps string literals at 4095 characters,
 * and clang -Wpedantic says so: long bodies go in pieces, one assembly stream). */
#define BNN_ASM(text) __asm__ volatile(BNN_ASM_UNIFIED text)
/* Thumb-1 naked functions that use r8-r11: save them (push reaches r0-r7 and lr only) and
 * restore them on return; what the function pushes after BNN_T1_SAVE it pops before
 * BNN_T1_RETURN. */
#define BNN_T1_SAVE \
    "push {r4-r7, lr}\n\t" "mov r4, r8\n\t" "mov r5, r9\n\t" "mov r6, r10\n\t" \
    "mov r7, r11\n\t" "push {r4-r7}\n\t"
#define BNN_T1_RETURN \
    "pop {r4-r7}\n\t" "mov r8, r4\n\t" "mov r9, r5\n\t" "mov r10, r6\n\t" \
    "mov r11, r7\n\t" "pop {r4-r7, pc}\n\t"

#if defined(__GNUC__) && defined(__thumb__) && !defined(BNN_NO_ASM) && \
    defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    !defined(BNN_TEST_EMULATE_DSP) && !defined(BNN_TEST_EMULATE_V7M) && !defined(BNN_TEST_EMULATE_V6M)
#define BNN_NAKED_ASM 1
#define BNN_NAKED __attribute__((naked, noinline, unused)) /* unused: not every file calls it */
#define BNN_ASM_ARG __attribute__((unused)) /* read by the assembly, not by C */
#else
#define BNN_NAKED_ASM 0
#endif

/* Fully unroll the loop that follows over the rows of a block, so that per-row state stays in
 * registers (GCC keeps small arrays in memory when it only partly unrolls). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define BNN_UNROLL_BLOCK _Pragma("GCC unroll 4")
#define BNN_UNROLL_TAPS _Pragma("GCC unroll 8")
#else
#define BNN_UNROLL_BLOCK
#define BNN_UNROLL_TAPS
#endif

/* Output channels computed together, so each loaded input word serves BNN_BLOCK weight rows.
 * Divides 32: a block never straddles an output word. */
#define BNN_BLOCK 4u

BNN_INLINE uint32_t bnn_min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Accumulators are computed modulo 2^32 (the exact value fits int32, the converter checks);
 * this turns them back into int32 without relying on implementation-defined conversion. */
BNN_INLINE int32_t bnn_u32_to_s32(uint32_t v)
{
    return v <= 0x7FFFFFFFu ? (int32_t)v : -(int32_t)(~v) - 1;
}

/* Where a layer's per-channel accumulators go: threshold bits or int32 scores. */
typedef struct {
    const bnn_stage_t *stage;
    uint32_t *bits;  /* threshold stage: packed output, or NULL */
    int32_t *scores; /* scores stage: output, or NULL */
    uint32_t n;      /* channels */
    uint32_t word;   /* output word being assembled */
} bnn_sink_t;

BNN_INLINE bnn_sink_t bnn_sink(const bnn_stage_t *stage, uint32_t n, uint32_t *bits,
                               int32_t *scores)
{
    bnn_sink_t s;
    s.stage = stage;
    s.bits = bits;
    s.scores = scores;
    s.n = n;
    s.word = 0u;
    return s;
}

/* Channels c .. c+nb-1 (in order, c a multiple of BNN_BLOCK), acc modulo 2^32.
 * Every output word is stored whole, so tails are 0 whatever the buffer held. */
BNN_INLINE void bnn_sink_put(bnn_sink_t *s, uint32_t c, uint32_t nb, const uint32_t *acc)
{
    uint32_t j;
    if (s->bits != NULL) {
        const int32_t *t = s->stage->thresholds + c;
        for (j = 0; j < nb; ++j) {
            /* plain signed compare: INT32_MIN / INT32_MAX give constant channels */
            s->word |= (uint32_t)(bnn_u32_to_s32(acc[j]) < t[j]) << ((c + j) & 31u);
        }
        if (((c + nb) & 31u) == 0u || c + nb == s->n) {
            s->bits[c >> 5] = s->word;
            s->word = 0u;
        }
    } else {
        const int32_t *m = s->stage->mult + c, *b = s->stage->bias + c;
        for (j = 0; j < nb; ++j) {
            s->scores[c + j] = bnn_u32_to_s32((uint32_t)m[j] * acc[j] + (uint32_t)b[j]);
        }
    }
}

/* The taps of one output pixel that fall inside the image: ky in [ky0, ky1), kx in
 * [kx0, kx1); (iy, ix) is the input position of tap (0, 0), negative inside padding. */
typedef struct {
    int32_t iy, ix;
    uint32_t ky0, ky1, kx0, kx1;
} bnn_window_t;

BNN_INLINE void bnn_tap_range(int32_t origin, uint32_t k, uint32_t size, uint32_t *k0,
                              uint32_t *k1)
{
    int32_t lo = origin < 0 ? -origin : 0;
    int32_t hi = (int32_t)size - origin;
    if (lo > (int32_t)k) lo = (int32_t)k;
    if (hi > (int32_t)k) hi = (int32_t)k;
    if (hi < lo) hi = lo;
    *k0 = (uint32_t)lo;
    *k1 = (uint32_t)hi;
}

BNN_INLINE bnn_window_t bnn_conv_window(const bnn_conv_geom_t *g, uint32_t oy, uint32_t ox)
{
    bnn_window_t w;
    w.iy = (int32_t)(oy * g->stride_h) - (int32_t)g->pad_top;
    w.ix = (int32_t)(ox * g->stride_w) - (int32_t)g->pad_left;
    bnn_tap_range(w.iy, g->k_h, g->in_h, &w.ky0, &w.ky1);
    bnn_tap_range(w.ix, g->k_w, g->in_w, &w.kx0, &w.kx1);
    return w;
}

/* Index of the input pixel under tap (ky, kx0) for a valid row ky. */
BNN_INLINE size_t bnn_window_pixel(const bnn_window_t *w, const bnn_conv_geom_t *g,
                                   uint32_t ky)
{
    return (size_t)(uint32_t)(w->iy + (int32_t)ky) * g->in_w + (uint32_t)(w->ix + (int32_t)w->kx0);
}

#endif /* BNN_KERNEL_UTIL_H */
