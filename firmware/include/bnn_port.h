/*
 * Port layer: what the vector runner needs from a target (host, a QEMU board, a real board).
 * One implementation per target in firmware/ports/<target>/; common helpers in
 * firmware/ports/common/.
 */
#ifndef BNN_PORT_H
#define BNN_PORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Clocks, UART (receiver enabled before anything is sent), counters, FPU. */
void bnn_port_init(void);

/* Serial byte stream to the host: blocking. */
void bnn_port_write(const uint8_t *buf, uint32_t n);
int bnn_port_read_byte(void); /* blocks; returns 0..255, or -1 when the link is closed */

/* Free-running 32-bit counter for measurements, and what it counts. */
uint32_t bnn_port_counter(void);
const char *bnn_port_counter_unit(void); /* "cycles", "instructions" or "ticks" */
uint32_t bnn_port_counter_hz(void);      /* 0 when the unit is not time */

/* Identity of the target. */
const char *bnn_port_board(void); /* e.g. "mps2-an386", "host", "nucleo_f401re" */
const char *bnn_port_core(void);  /* e.g. "cortex-m4" */
uint32_t bnn_port_clock_hz(void);

/* Bulk region: test vectors preloaded into target memory (QEMU -device loader, or a file for
 * the host build). Size 0 when the target has none. */
const uint8_t *bnn_port_bulk_base(void);
uint32_t bnn_port_bulk_size(void);

/* Stack use so far (high-water mark of the painted stack), in bytes. */
uint32_t bnn_port_stack_used(void);

/* Marker for exact instruction counting: the QEMU plugin records the instruction count each
 * time this (never inlined) function runs. */
void bnn_port_mark(uint32_t id);

/* End the program with a code (semihosting exit on QEMU, exit() on the host). */
void bnn_port_exit(int code);

#ifdef __cplusplus
}
#endif

#endif /* BNN_PORT_H */
