/*
 * The vector runner: the one firmware for every target. It answers the serial protocol
 * (bnn_protocol.h) for the model it is linked with; all buffers are static and sized from
 * bnn_model.h, so RAM is the model's arena plus about input bytes + 0.3 KB.
 */
#include "bnn_model.h"
#include "bnn_port.h"
#include "bnn_protocol.h"

#define RX_PAYLOAD_BYTES (BNN_BENCH_REQ_FIXED_BYTES + BNN_MODEL_INPUT_BYTES)
#define RX_BYTES (BNN_PROTO_OVERHEAD + RX_PAYLOAD_BYTES)

static uint32_t rx_buf[(RX_BYTES + 3u) / 4u];
static int32_t scores[BNN_MODEL_NUM_CLASSES];
static uint32_t layer_counts[BNN_MODEL_NUM_LAYERS];
static uint32_t layer_min[BNN_MODEL_NUM_LAYERS];

static const bnn_runner_model_t model = {
    BNN_MODEL_INPUT_BYTES,
    BNN_MODEL_INPUT_H, BNN_MODEL_INPUT_W, BNN_MODEL_INPUT_C,
    BNN_MODEL_NUM_CLASSES,
    BNN_MODEL_NUM_LAYERS,
    BNN_MODEL_ARENA_BYTES,
    BNN_MODEL_PARAM_BYTES,
    BNN_MODEL_MACS,
    scores,
    layer_counts,
    layer_min,
};

static bnn_runner_t runner;

int main(void)
{
    bnn_port_init();
    bnn_runner_init(&runner, &model, rx_buf, (uint32_t)sizeof rx_buf, bnn_port_write);
    bnn_runner_send_ready(&runner);
    for (;;) {
        int c = bnn_port_read_byte();
        if (c < 0) {
            break; /* the host closed the link */
        }
        if (bnn_runner_feed(&runner, (uint8_t)c)) {
            break; /* EXIT answered */
        }
    }
    bnn_port_exit(0);
    return 0;
}
