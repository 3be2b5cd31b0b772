/* The port contract (bnn_port.h) for every Cortex-M board, on top of the board's drivers. */
#include "bnn_port_common.h"
#include "cortexm.h"

#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_8M_BASE__)
#define BNN_HAS_DWT 0
#else
#define BNN_HAS_DWT 1
#define DEMCR 0xE000EDFCu
#define DWT_CTRL 0xE0001000u
#define DWT_CYCCNT 0xE0001004u
#define DWT_LAR 0xE0001FB0u
#endif

static int counter_is_dwt;

/* DWT->CYCCNT counts core cycles on real silicon but reads 0 under QEMU: use it when it runs,
 * the board's timer otherwise. */
static void counter_init(void)
{
    bnn_counter_init();
#if BNN_HAS_DWT
    BNN_REG(DEMCR) |= 1u << 24; /* TRCENA */
    BNN_REG(DWT_LAR) = 0xC5ACCE55u; /* unlock (Cortex-M7) */
    BNN_REG(DWT_CYCCNT) = 0u;
    BNN_REG(DWT_CTRL) |= 1u; /* CYCCNTENA */
    __asm__ volatile("nop\n nop\n nop\n nop\n nop\n nop\n nop\n nop");
    counter_is_dwt = BNN_REG(DWT_CYCCNT) != 0u;
#endif
}

void bnn_port_init(void)
{
    bnn_uart_init();
    counter_init();
}

void bnn_port_write(const uint8_t *buf, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        bnn_uart_putc(buf[i]);
    }
}

int bnn_port_read_byte(void)
{
    return bnn_uart_getc();
}

uint32_t bnn_port_counter(void)
{
#if BNN_HAS_DWT
    if (counter_is_dwt) {
        return BNN_REG(DWT_CYCCNT);
    }
#endif
    return bnn_counter_read();
}

const char *bnn_port_counter_unit(void)
{
    return counter_is_dwt ? "cycles" : "ticks";
}

uint32_t bnn_port_counter_hz(void)
{
    return counter_is_dwt ? BNN_BOARD_CLOCK_HZ : BNN_COUNTER_HZ;
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
    return BNN_BOARD_CLOCK_HZ;
}

const uint8_t *bnn_port_bulk_base(void)
{
    return (const uint8_t *)(uintptr_t)BNN_BULK_BASE;
}

uint32_t bnn_port_bulk_size(void)
{
    return BNN_BULK_SIZE;
}

uint32_t bnn_port_stack_used(void)
{
    return bnn_stack_high_water(__stack_limit, __stack_top);
}

/* Semihosting SYS_EXIT_EXTENDED (0x20) with ADP_Stopped_ApplicationExit: QEMU exits with
 * `code`. The UART is drained first so the host receives every byte written. */
static void semihosting_exit(uint32_t code)
{
    uint32_t block[2];
    register uint32_t op __asm__("r0") = 0x20u;
    register uint32_t *arg __asm__("r1") = block;
    block[0] = 0x20026u;
    block[1] = code;
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
}

void bnn_port_exit(int code)
{
    bnn_uart_flush(); /* before the register variables: a call would clobber r0/r1 */
    semihosting_exit((uint32_t)code);
    for (;;) {
    }
}
