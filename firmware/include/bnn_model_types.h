/*
 * The types of the model API (bnn_model_api.h), apart so that a generated bnn_model.h can
 * declare its own, optionally prefixed, functions (`generate --prefix`) on the same types:
 * two models' headers then go into one translation unit.
 */
#ifndef BNN_MODEL_TYPES_H
#define BNN_MODEL_TYPES_H

#include <stdint.h>

#define BNN_MODEL_ABI_VERSION 1u

/* Called after each layer with that layer's output buffer (packed words or int32 scores). */
typedef void (*bnn_layer_hook_t)(void *ctx, uint32_t layer, const void *out, uint32_t out_bytes);

typedef struct {
    const char *name;   /* source layer name */
    const char *op;     /* kernel, e.g. "bnn_bconv2d_b1" */
    uint32_t out_bytes; /* bytes of its output */
    uint32_t macs;      /* binary or int8 multiply-accumulates */
} bnn_layer_info_t;

#endif /* BNN_MODEL_TYPES_H */
