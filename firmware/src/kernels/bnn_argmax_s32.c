#include "bnn_kernels.h"

/* Strict '>' keeps the first index of the maximum. n == 0 has no index: -1. */
int32_t bnn_argmax_s32(const int32_t *scores, uint32_t n)
{
    uint32_t i, best = 0u;
    if (n == 0u) return -1;
    for (i = 1u; i < n; ++i) {
        if (scores[i] > scores[best]) best = i;
    }
    return (int32_t)best;
}
