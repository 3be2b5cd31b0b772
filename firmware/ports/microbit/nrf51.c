/* nRF51822 (BBC micro:bit) drivers: UART0 and TIMER0 as a 32-bit 16 MHz counter. */
#include "bnn_port_common.h"
#include "cortexm.h"

#define UART_STARTRX (BNN_UART_BASE + 0x000u)
#define UART_STARTTX (BNN_UART_BASE + 0x008u)
#define UART_RXDRDY (BNN_UART_BASE + 0x108u)
#define UART_TXDRDY (BNN_UART_BASE + 0x11Cu)
#define UART_ENABLE (BNN_UART_BASE + 0x500u)
#define UART_PSELTXD (BNN_UART_BASE + 0x50Cu)
#define UART_PSELRXD (BNN_UART_BASE + 0x514u)
#define UART_RXD (BNN_UART_BASE + 0x518u)
#define UART_TXD (BNN_UART_BASE + 0x51Cu)
#define UART_BAUDRATE (BNN_UART_BASE + 0x524u)

#define TIMER_START (BNN_COUNTER_ADDR + 0x000u)
#define TIMER_CAPTURE0 (BNN_COUNTER_ADDR + 0x040u)
#define TIMER_MODE (BNN_COUNTER_ADDR + 0x504u)
#define TIMER_BITMODE (BNN_COUNTER_ADDR + 0x508u)
#define TIMER_PRESCALER (BNN_COUNTER_ADDR + 0x510u)
#define TIMER_CC0 (BNN_COUNTER_ADDR + 0x540u)

void bnn_uart_init(void)
{
    BNN_REG(UART_PSELTXD) = 24u; /* micro:bit USB bridge pins */
    BNN_REG(UART_PSELRXD) = 25u;
    BNN_REG(UART_BAUDRATE) = 0x01D7E000u; /* 115200 */
    BNN_REG(UART_ENABLE) = 4u;
    BNN_REG(UART_STARTTX) = 1u;
    BNN_REG(UART_STARTRX) = 1u;
}

void bnn_uart_putc(uint8_t c)
{
    BNN_REG(UART_TXD) = c;
    while (BNN_REG(UART_TXDRDY) == 0u) {
    }
    BNN_REG(UART_TXDRDY) = 0u;
}

int bnn_uart_getc(void)
{
    while (BNN_REG(UART_RXDRDY) == 0u) {
    }
    BNN_REG(UART_RXDRDY) = 0u; /* clear first, then read: the next byte may arrive at once */
    return (int)(BNN_REG(UART_RXD) & 0xFFu);
}

void bnn_uart_flush(void)
{
    /* bnn_uart_putc() already waits for TXDRDY. */
}

void bnn_counter_init(void)
{
    BNN_REG(TIMER_MODE) = 0u;      /* timer */
    BNN_REG(TIMER_BITMODE) = 3u;   /* 32 bits */
    BNN_REG(TIMER_PRESCALER) = 0u; /* 16 MHz */
    BNN_REG(TIMER_START) = 1u;
}

uint32_t bnn_counter_read(void)
{
    BNN_REG(TIMER_CAPTURE0) = 1u;
    return BNN_REG(TIMER_CC0);
}
