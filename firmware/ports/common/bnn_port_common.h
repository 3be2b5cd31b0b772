/*
 * Internals shared by the ports (not part of the port contract in bnn_port.h).
 *
 * A port is ports/common (this folder, every target) + ports/common/cortexm (every Cortex-M
 * board) + ports/<board> (board.h and board.mk generated from bnn_mcu/targets/boards.py, plus
 * board-specific drivers).
 */
#ifndef BNN_PORT_COMMON_H
#define BNN_PORT_COMMON_H

#include <stdint.h>

#include "bnn_port.h"
#include "board.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A fixed-size text buffer, for the fault line (no printf on the boards). */
typedef struct {
    char *p;
    char *end;
} bnn_text_t;

void bnn_text_str(bnn_text_t *t, const char *s);
void bnn_text_hex(bnn_text_t *t, uint32_t v); /* "0x%08x" */
void bnn_text_dec(bnn_text_t *t, uint32_t v);

/* Bytes of [limit, top) no longer holding BNN_STACK_PAINT, counted from the top. */
uint32_t bnn_stack_high_water(const uint32_t *limit, const uint32_t *top);

#ifdef __cplusplus
}
#endif

#endif /* BNN_PORT_COMMON_H */
