/*
 * The API every generated model implements (bnn_model.h adds its size/shape constants:
 * BNN_MODEL_INPUT_H/W/C, BNN_MODEL_INPUT_BYTES, BNN_MODEL_NUM_CLASSES, BNN_MODEL_NUM_LAYERS,
 * BNN_MODEL_ARENA_BYTES, BNN_MODEL_PARAM_BYTES, BNN_MODEL_MACS).
 */
#ifndef BNN_MODEL_API_H
#define BNN_MODEL_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNN_MODEL_ABI_VERSION 1u

/* Called after each layer with that layer's output buffer (packed words or int32 scores). */
typedef void (*bnn_layer_hook_t)(void *ctx, uint32_t layer, const void *out, uint32_t out_bytes);

typedef struct {
    const char *name;   /* source layer name */
    const char *op;     /* kernel, e.g. "bnn_bconv2d_b1" */
    uint32_t out_bytes; /* bytes of its output */
    uint32_t macs;      /* binary or int8 multiply-accumulates */
} bnn_layer_info_t;

extern const uint8_t bnn_model_hash[8];          /* first 8 bytes of the model's SHA-256 */
extern const bnn_layer_info_t bnn_model_layers[]; /* [BNN_MODEL_NUM_LAYERS] */

/* input: BNN_MODEL_INPUT_BYTES raw uint8 pixels (HWC); scores: BNN_MODEL_NUM_CLASSES.
 * Returns the predicted class (first index of the maximum score). */
int bnn_model_run(const uint8_t *input, int32_t *scores);

/* Same, calling hook (when not NULL) after every layer. */
int bnn_model_run_hooked(const uint8_t *input, int32_t *scores, bnn_layer_hook_t hook, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* BNN_MODEL_API_H */
