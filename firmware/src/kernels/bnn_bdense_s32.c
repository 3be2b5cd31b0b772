#include "bnn_dense_impl.h"

BNN_NONNULL void bnn_bdense_s32(const bnn_bdense_t *p, const uint32_t *in, int32_t *scores)
{
    bnn_sink_t s = bnn_sink(&p->stage, p->out_ch, NULL, scores);
    bnn_bdense_run(p, in, &s);
}
