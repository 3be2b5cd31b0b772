/*
 * bnn-mcu runtime kernels: the contract, written once.
 *
 * Encoding     bit 1 = -1, bit 0 = +1.
 * Packing      activations are NHWC; the C channels of one pixel are packed into
 *              BNN_WORDS(C) uint32_t words, LSB first; unused tail bits are 0 in weights
 *              and activations (kernels keep output tails 0).
 * Accumulator  binary ops:  acc = sum over valid taps of x*w   (x, w in {-1,+1})
 *                               = K - 2*popcount(x ^ w) when every tap is valid
 *              uint8 ops:   acc = sum over valid taps of w * (x - zero_point)
 *              bnn_conv2d_u8_half_b1 (zero point zero_point + 0.5, e.g. 127.5 for an input
 *              scaled as x / 127.5 - 1, zero_point <= 254), doubled to stay integral:
 *                           acc = sum over valid taps of w * (2x - (2 zero_point + 1))
 *              All accumulators fit int32 (the converter checks).
 * Output stage threshold:   out bit c = (acc[c] < thresholds[c])
 *              scores:      score[c]  = mult[c] * acc[c] + bias[c]  (int32, no overflow)
 * Padding      binary convs: pad_value +1 (padded taps read bit 0), -1 (bit 1) or 0 (padded
 *              taps are skipped); uint8 convs skip padded taps.
 * Buffers      all pointers are owned by the caller; inputs and outputs never overlap;
 *              word buffers are 4-byte aligned. Kernels allocate nothing and keep no state.
 *
 * Every kernel has a portable C99 path. Fast paths sit in the same function behind
 * feature macros (__ARM_FEATURE_DSP for v7E-M/v8-M mainline, __ARM_ARCH_6M__ for v6-M,
 * __ARM_FEATURE_MVE for Helium) and give identical results.
 *
 * Compilers     tested: arm-none-eabi-gcc 12.2 and clang 14 (--target=arm-none-eabi, with the
 *               C library's headers, e.g. --sysroot=/usr/lib/arm-none-eabi) for Cortex-M0, M3,
 *               M4, M7, M33 and M55 at -O2 and -Os, warning-free with -std=c99 -Wall -Wextra
 *               -Wpedantic -Wconversion, no assembler flag needed; bit-exact on QEMU with both.
 *               The assembly fast paths are naked functions in GNU syntax, so GCC and clang
 *               (and, untried here, Keil's clang-based armclang) build the same code at any -O.
 *               Compilers without GNU asm (IAR, untried) build the C twins.
 * Build macros  (all optional)
 *   BNN_NO_ASM             the C twins instead of the assembly (same bits, slower)
 *   BNN_KERNELS_KEEP_OS    keep -Os for the kernels' C code under GCC (by default a pragma
 *                          compiles it at -O2 in an -Os build: the speed stays, the code grows)
 *   BNN_U8_BATCH           at most this many output channels per pass of the uint8 dense
 *                          tables (default 256; a batch covering all channels builds each
 *                          table once): sizes BNN_DENSE_U8_SCRATCH_WORDS
 *   BNN_U8_TABLES          v6-M only, 2, 3 or 4 (default) tables of 512 B per pass: fewer
 *                          save scratch for more time (micro:bit MLP first layer: 167 k
 *                          instructions, 263 k est. cycles with 4; 177 k, 282 k with 3;
 *                          199 k, 320 k with 2)
 * Scratch      bnn_dense_u8_* keep their subset-sum tables and per-channel sums in a buffer the
 *              caller gives in the parameters (scratch, scratch_words), as CMSIS-NN's kernels
 *              take a buffer sized by a *_get_buffer_size function: BNN_DENSE_U8_SCRATCH_WORDS
 *              (in_features, out_ch) words is the size for the fastest path of the core
 *              compiled for (a constant expression: generated models declare it static). A
 *              smaller buffer takes fewer channels per pass (a multiple of 4; same bits); one
 *              too small for the tables of a pass and 4 channels, or NULL, takes the
 *              one-tap-at-a-time path (same bits, slow). The kernels' stack stays small either
 *              way. Calls that run at the same time (threads, interrupts) need their own
 *              buffers. The kernels read the buffer's size from scratch_words, so building
 *              the model and the kernels with different BNN_U8_* macros is safe (maybe slower).
 * The emulator (bnn_mcu.emulator.kernels) is the specification: same names minus `bnn_`.
 */
#ifndef BNN_KERNELS_H
#define BNN_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNN_WORDS(bits) (((bits) + 31u) / 32u)

/* The code path the kernels take (bnn_popcount.h describes each); exactly one is 1. The
 * BNN_TEST_EMULATE_* macros select a path on any compiler (the host tests run each path). */
#if defined(BNN_TEST_EMULATE_DSP)
#define BNN_PATH_DSP 1
#elif defined(BNN_TEST_EMULATE_V7M)
#define BNN_PATH_V7M 1
#elif defined(BNN_TEST_EMULATE_V6M)
#define BNN_PATH_V6M 1
#elif defined(__ARM_FEATURE_DSP)
#define BNN_PATH_DSP 1
#elif defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_8M_BASE__)
#define BNN_PATH_V6M 1
#elif defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
#define BNN_PATH_V7M 1
#elif defined(__GNUC__)
#define BNN_PATH_PORTABLE 1
#else
#define BNN_PATH_V7M 1 /* no builtin: the SWAR code is plain C too */
#endif

#ifndef BNN_PATH_DSP
#define BNN_PATH_DSP 0
#endif
#ifndef BNN_PATH_V7M
#define BNN_PATH_V7M 0
#endif
#ifndef BNN_PATH_V6M
#define BNN_PATH_V6M 0
#endif
#ifndef BNN_PATH_PORTABLE
#define BNN_PATH_PORTABLE 0
#endif

/* The uint8 dense tables: tables per pass (512 B each: the v6-M lookups are Thumb-1 assembly
 * for 1 to 4 tables, the Thumb-2 ones for 7) and the most channels per pass. */
#if BNN_PATH_V6M
#ifndef BNN_U8_TABLES
#define BNN_U8_TABLES 4u
#endif
#else
#define BNN_U8_TABLES 7u
#endif
#ifndef BNN_U8_BATCH
#define BNN_U8_BATCH 256u
#endif
#define BNN_MIN_U32_(a, b) ((a) < (b) ? (a) : (b))
/* Scratch words (uint32) bnn_dense_u8_* use best for a layer on this core: the tables of one
 * pass, then one sum per channel of a pass (1 on the portable path, which uses none). */
#define BNN_DENSE_U8_SCRATCH_WORDS(in_features, out_ch)                                  \
    (BNN_PATH_PORTABLE ? 1u                                                              \
                       : 128u * BNN_MIN_U32_(BNN_U8_TABLES, ((in_features) + 7u) / 8u) + \
                             BNN_MIN_U32_(BNN_U8_BATCH, (out_ch)))

/* Output stage of a layer: exactly one of thresholds / (mult, bias) is used. */
typedef struct {
    const int32_t *thresholds; /* [out_ch], threshold stage */
    const int32_t *mult;       /* [out_ch], scores stage */
    const int32_t *bias;       /* [out_ch], scores stage */
} bnn_stage_t;

/* Binary dense: in [in_words] (packed), weights [out_ch][in_words]. */
typedef struct {
    uint32_t in_words;      /* words in the input vector (may include per-pixel tail words) */
    uint32_t in_bits;       /* K: real input bits (the dot is K - 2*popcount) */
    uint32_t out_ch;
    const uint32_t *weights;
    bnn_stage_t stage;
} bnn_bdense_t;

/* First layer dense: in [in_features] uint8, weights [out_ch][BNN_WORDS(in_features)]. */
typedef struct {
    uint32_t in_features;
    uint32_t out_ch;
    int32_t zero_point;
    const uint32_t *weights;
    bnn_stage_t stage;
    uint32_t *scratch;      /* [scratch_words], the caller's (see Scratch above), or NULL */
    uint32_t scratch_words; /* BNN_DENSE_U8_SCRATCH_WORDS(in_features, out_ch) for full speed */
} bnn_dense_u8_t;

/* Convolution geometry (NHWC). */
typedef struct {
    uint16_t in_h, in_w, in_ch;
    uint16_t out_h, out_w, out_ch;
    uint8_t k_h, k_w, stride_h, stride_w;
    uint8_t pad_top, pad_left, pad_bottom, pad_right;
} bnn_conv_geom_t;

/* Binary conv: in [in_h][in_w][BNN_WORDS(in_ch)], weights [out_ch][k_h][k_w][BNN_WORDS(in_ch)],
 * out [out_h][out_w][BNN_WORDS(out_ch)]. */
typedef struct {
    bnn_conv_geom_t g;
    int8_t pad_value; /* +1, -1 or 0 */
    const uint32_t *weights;
    bnn_stage_t stage; /* threshold stage only */
} bnn_bconv2d_t;

/* First layer conv: in [in_h][in_w][in_ch] uint8, weights [out_ch][BNN_WORDS(k_h*k_w*in_ch)]
 * with taps in (ky, kx, c) order; out [out_h][out_w][BNN_WORDS(out_ch)]. */
typedef struct {
    bnn_conv_geom_t g;
    int32_t zero_point; /* bnn_conv2d_u8_half_b1: the zero point is zero_point + 0.5 */
    const uint32_t *weights;
    bnn_stage_t stage; /* threshold stage only */
} bnn_conv2d_u8_t;

/* Max-pool on packed bits: out = AND over the window, OR on channels whose or_mask bit is 1.
 * in [in_h][in_w][BNN_WORDS(ch)], out [out_h][out_w][BNN_WORDS(ch)]. Window (oy, ox) starts at
 * input row oy*stride_h - pad_top, column ox*stride_w - pad_left; its taps outside the input
 * (padding, and ceil_mode's extra bottom/right windows) are skipped, as PyTorch pads max-pool
 * with -inf. Each window must hold a real tap (padding < kernel on every side). */
typedef struct {
    uint16_t in_h, in_w, ch, out_h, out_w;
    uint8_t k_h, k_w, stride_h, stride_w;
    uint8_t pad_top, pad_left;
    const uint32_t *or_mask; /* [BNN_WORDS(ch)] */
} bnn_maxpool2d_t;

/* A binarized input image: bit 1 (= -1) where pixel < threshold (0..256).
 * in [pixels][ch] uint8, out [pixels][BNN_WORDS(ch)]. */
typedef struct {
    uint32_t pixels;
    uint16_t ch, threshold;
} bnn_binarize_u8_t;

void bnn_bdense_b1(const bnn_bdense_t *p, const uint32_t *in, uint32_t *out);
void bnn_bdense_s32(const bnn_bdense_t *p, const uint32_t *in, int32_t *scores);
void bnn_dense_u8_b1(const bnn_dense_u8_t *p, const uint8_t *in, uint32_t *out);
void bnn_dense_u8_s32(const bnn_dense_u8_t *p, const uint8_t *in, int32_t *scores);
void bnn_bconv2d_b1(const bnn_bconv2d_t *p, const uint32_t *in, uint32_t *out);
void bnn_conv2d_u8_b1(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out);
void bnn_conv2d_u8_half_b1(const bnn_conv2d_u8_t *p, const uint8_t *in, uint32_t *out);
void bnn_maxpool2d_b1(const bnn_maxpool2d_t *p, const uint32_t *in, uint32_t *out);
void bnn_binarize_u8_b1(const bnn_binarize_u8_t *p, const uint8_t *in, uint32_t *out);

/* First index of the maximum of n scores (like torch.argmax). */
int32_t bnn_argmax_s32(const int32_t *scores, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* BNN_KERNELS_H */
