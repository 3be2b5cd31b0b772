/*
 * Stand-in model for the protocol fuzzer: layer 0 packs the input's sign bits (4 bytes),
 * layer 1 outputs the three int32 scores s[c] = sum_i x[i] * ((i + c) % 5 - 2).
 * The second layer's name is longer than the protocol's 255-byte strings: INFO must cut it.
 */
#include "bnn_model.h"

const uint8_t bnn_model_hash[8] = { 0x66u, 0x75u, 0x7au, 0x7au, 0x2du, 0x6du, 0x30u, 0x31u };

#define LONG_NAME_32 "0123456789abcdef0123456789abcdef"
#define LONG_NAME_256 LONG_NAME_32 LONG_NAME_32 LONG_NAME_32 LONG_NAME_32 \
                      LONG_NAME_32 LONG_NAME_32 LONG_NAME_32 LONG_NAME_32

const bnn_layer_info_t bnn_model_layers[BNN_MODEL_NUM_LAYERS] = {
    { "bits", "fuzz_bits", 4u, 13u },
    { LONG_NAME_256 "-scores", "fuzz_scores", 12u, 39u },
};

int bnn_model_run_hooked(const uint8_t *input, int32_t *scores, bnn_layer_hook_t hook, void *ctx)
{
    uint32_t bits = 0, i, c;
    int best = 0;

    for (i = 0; i < BNN_MODEL_INPUT_BYTES; i++) {
        bits |= (uint32_t)(input[i] >> 7) << i;
    }
    if (hook) {
        hook(ctx, 0u, &bits, sizeof bits);
    }
    for (c = 0; c < BNN_MODEL_NUM_CLASSES; c++) {
        int32_t s = 0;
        for (i = 0; i < BNN_MODEL_INPUT_BYTES; i++) {
            s += (int32_t)input[i] * ((int32_t)((i + c) % 5u) - 2);
        }
        scores[c] = s;
        if (s > scores[best]) {
            best = (int)c;
        }
    }
    if (hook) {
        hook(ctx, 1u, scores, 4u * BNN_MODEL_NUM_CLASSES);
    }
    return best;
}

int bnn_model_run(const uint8_t *input, int32_t *scores)
{
    return bnn_model_run_hooked(input, scores, 0, 0);
}
