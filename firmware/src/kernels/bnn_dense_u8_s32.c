#include "bnn_dense_impl.h"

BNN_NONNULL void bnn_dense_u8_s32(const bnn_dense_u8_t *p, const uint8_t *in, int32_t *scores)
{
    bnn_sink_t s = bnn_sink(&p->stage, p->out_ch, NULL, scores);
    bnn_dense_u8_run(p, in, &s);
}
