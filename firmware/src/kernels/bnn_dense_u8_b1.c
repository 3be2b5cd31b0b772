#include "bnn_dense_impl.h"

BNN_NONNULL void bnn_dense_u8_b1(const bnn_dense_u8_t *p, const uint8_t *in, uint32_t *out)
{
    bnn_sink_t s = bnn_sink(&p->stage, p->out_ch, out, NULL);
    bnn_dense_u8_run(p, in, &s);
}
