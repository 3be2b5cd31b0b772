/* A counter register that counts up by itself (MPS2 FPGAIO COUNTER, SSE-300 CNTCV low word). */
#include "bnn_port_common.h"
#include "cortexm.h"

void bnn_counter_init(void)
{
#ifdef BNN_COUNTER_ENABLE_ADDR
    BNN_REG(BNN_COUNTER_ENABLE_ADDR) |= BNN_COUNTER_ENABLE_VALUE;
#endif
}

uint32_t bnn_counter_read(void)
{
    return BNN_REG(BNN_COUNTER_ADDR);
}
