/*
 * A tiny stand-in model for fuzzing the protocol (fuzz/protocol/fuzz_runner.c): 1x13x1 uint8
 * input (13: not a multiple of 4, so buffer sizes are not rounded to words), two layers, three
 * classes. Cheap enough that the fuzzer spends its time in the parser and dispatcher.
 */
#ifndef BNN_MODEL_H
#define BNN_MODEL_H

#include "bnn_model_api.h"

#define BNN_MODEL_INPUT_H      1u
#define BNN_MODEL_INPUT_W      13u
#define BNN_MODEL_INPUT_C      1u
#define BNN_MODEL_INPUT_BYTES  13u
#define BNN_MODEL_NUM_CLASSES  3u
#define BNN_MODEL_NUM_LAYERS   2u
#define BNN_MODEL_ARENA_BYTES  8u
#define BNN_MODEL_PARAM_BYTES  0u
#define BNN_MODEL_MACS         39u
#define BNN_MODEL_MAX_LAYER_BYTES 12u

#endif /* BNN_MODEL_H */
