/*
 * The parts of the port contract (bnn_port.h) that are the same on every real board: identity,
 * counter choice, no bulk region, exit = reset. The framework glue next to this file provides
 * bnn_port_init/write/read_byte/stack_used and the bnn_glue_* hooks; board.h (generated from
 * bnn_mcu/targets/boards.py) provides the names.
 */
#include <stddef.h>

#include "bnn_port_common.h"
#include "bnn_port_glue.h"

static int counter_is_dwt;

/* Called by the glue's bnn_port_init(), after the framework set the clock. */
void bnn_real_counter_init(void)
{
    counter_is_dwt = bnn_glue_dwt_start();
}

uint32_t bnn_port_counter(void)
{
    return counter_is_dwt ? bnn_glue_dwt_read() : bnn_glue_counter();
}

const char *bnn_port_counter_unit(void)
{
    return counter_is_dwt ? "cycles" : bnn_glue_counter_unit();
}

uint32_t bnn_port_counter_hz(void)
{
    return counter_is_dwt ? SystemCoreClock : bnn_glue_counter_hz();
}

const char *bnn_port_board(void)
{
    return BNN_BOARD_NAME;
}

const char *bnn_port_core(void)
{
    return BNN_BOARD_CORE;
}

uint32_t bnn_port_clock_hz(void)
{
    return SystemCoreClock;
}

const uint8_t *bnn_port_bulk_base(void)
{
    return NULL;
}

uint32_t bnn_port_bulk_size(void)
{
    return 0u;
}

void bnn_port_exit(int code)
{
    (void)code;
    bnn_glue_flush();
    bnn_glue_system_reset();
}
