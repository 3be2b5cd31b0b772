/*
 * What the common Cortex-M port code needs from a board's drivers. The UART and counter
 * drivers live in this folder (CMSDK UART, memory-mapped counter) or in ports/<board>/.
 */
#ifndef BNN_CORTEXM_H
#define BNN_CORTEXM_H

#include <stdint.h>

#define BNN_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* UART: init is idempotent (the fault handler calls it again). */
void bnn_uart_init(void);
void bnn_uart_putc(uint8_t c);
int bnn_uart_getc(void); /* blocks */
void bnn_uart_flush(void); /* returns when the last byte has left the transmitter */

/* The board's free-running 32-bit counter (used when DWT->CYCCNT does not run). */
void bnn_counter_init(void);
uint32_t bnn_counter_read(void);

/* Linker-script symbols. */
extern uint32_t __stack_limit[], __stack_top[];

#endif /* BNN_CORTEXM_H */
