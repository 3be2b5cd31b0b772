#include "bnn_dense_impl.h"

BNN_NONNULL void bnn_bdense_b1(const bnn_bdense_t *p, const uint32_t *in, uint32_t *out)
{
    bnn_sink_t s = bnn_sink(&p->stage, p->out_ch, out, NULL);
    bnn_bdense_run(p, in, &s);
}
