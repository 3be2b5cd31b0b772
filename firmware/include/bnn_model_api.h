/*
 * The API every generated model implements (bnn_model.h adds its size/shape constants:
 * BNN_MODEL_INPUT_H/W/C, BNN_MODEL_INPUT_BYTES, BNN_MODEL_NUM_CLASSES, BNN_MODEL_NUM_LAYERS,
 * BNN_MODEL_ARENA_BYTES, BNN_MODEL_PARAM_BYTES, BNN_MODEL_MACS, BNN_MODEL_HASH_HI/LO) and
 * declares these functions itself, with the symbol prefix of `generate --prefix` if one was given.
 */
#ifndef BNN_MODEL_API_H
#define BNN_MODEL_API_H

#include "bnn_model_types.h"

#ifdef __cplusplus
extern "C" {
#endif

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
