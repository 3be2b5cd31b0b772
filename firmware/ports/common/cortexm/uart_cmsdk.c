/* CMSDK APB UART (MPS2/MPS3 boards): no FIFO, one byte each way. */
#include "bnn_port_common.h"
#include "cortexm.h"

#define UART_DATA (BNN_UART_BASE + 0x00u)
#define UART_STATE (BNN_UART_BASE + 0x04u) /* b0 TX full, b1 RX full */
#define UART_CTRL (BNN_UART_BASE + 0x08u)  /* b0 TX enable, b1 RX enable */
#define UART_BAUDDIV (BNN_UART_BASE + 0x10u)

void bnn_uart_init(void)
{
    /* Enable before the first write: a write with TX disabled wedges QEMU's model. */
    BNN_REG(UART_BAUDDIV) = BNN_BOARD_CLOCK_HZ / 115200u;
    BNN_REG(UART_CTRL) = 3u;
    /* A read of DATA makes QEMU's model poll its backend again: without it, the first byte the
     * host sends waits for the emulator's main loop to wake up (about a second). */
    (void)BNN_REG(UART_DATA);
}

void bnn_uart_putc(uint8_t c)
{
    while ((BNN_REG(UART_STATE) & 1u) != 0u) {
    }
    BNN_REG(UART_DATA) = c;
}

int bnn_uart_getc(void)
{
    while ((BNN_REG(UART_STATE) & 2u) == 0u) {
    }
    return (int)(BNN_REG(UART_DATA) & 0xFFu);
}

void bnn_uart_flush(void)
{
    while ((BNN_REG(UART_STATE) & 1u) != 0u) {
    }
}
