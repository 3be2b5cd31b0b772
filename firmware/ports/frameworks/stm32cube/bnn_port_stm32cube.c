/*
 * Port for STM32 boards through STM32Cube HAL (PlatformIO: framework = stm32cube).
 *
 * Serial: the board's U(S)ART (board.h: instance, pins, alternate function) at BNN_BAUD, 8N1.
 * HAL sets up clocks, pins and the baud rate; the byte path uses the data registers directly:
 * an RX interrupt moves every received byte into a ring, so bytes that arrive while an
 * inference runs are kept (the host pipelines requests), and TX polls. The receiver is enabled
 * before bnn_port_init() returns, so the ready frame is only sent once the board can listen.
 * Counter: DWT->CYCCNT core cycles (port_real.c). Clock: the reset default (HSI, or MSI on the
 * L5) unless the application defines bnn_board_clock_init() to raise it; SystemCoreClock is
 * what info reports.
 */
#include "bnn_port_common.h"
#include "bnn_port_glue.h"

#include BNN_HAL_HEADER

#ifndef BNN_RX_RING_BYTES
#define BNN_RX_RING_BYTES 2048u /* a power of two */
#endif
#ifndef BNN_STACK_PAINT_MAX
#define BNN_STACK_PAINT_MAX (32u * 1024u) /* bytes painted below the stack at init, at most */
#endif

/* Register names differ between the USART generations: SR/DR (F1, F4), ISR/RDR/TDR (F7),
 * the same with FIFO-aware bit names (L5). */
#if defined(USART_ISR_RXNE_RXFNE)
#define RX_READY(u) (((u)->ISR & USART_ISR_RXNE_RXFNE) != 0u)
#define TX_EMPTY(u) (((u)->ISR & USART_ISR_TXE_TXFNF) != 0u)
#define TX_DONE(u) (((u)->ISR & USART_ISR_TC) != 0u)
#define RX_IRQ_ENABLE USART_CR1_RXNEIE_RXFNEIE
#define HAS_ICR 1
#elif defined(USART_ISR_RXNE)
#define RX_READY(u) (((u)->ISR & USART_ISR_RXNE) != 0u)
#define TX_EMPTY(u) (((u)->ISR & USART_ISR_TXE) != 0u)
#define TX_DONE(u) (((u)->ISR & USART_ISR_TC) != 0u)
#define RX_IRQ_ENABLE USART_CR1_RXNEIE
#define HAS_ICR 1
#else
#define RX_READY(u) (((u)->SR & (USART_SR_RXNE | USART_SR_ORE)) != 0u)
#define TX_EMPTY(u) (((u)->SR & USART_SR_TXE) != 0u)
#define TX_DONE(u) (((u)->SR & USART_SR_TC) != 0u)
#define RX_IRQ_ENABLE USART_CR1_RXNEIE
#define HAS_ICR 0
#endif

static UART_HandleTypeDef uart;
static volatile uint8_t rx_ring[BNN_RX_RING_BYTES];
static volatile uint32_t rx_head; /* written by the interrupt */
static volatile uint32_t rx_tail; /* written by bnn_port_read_byte() */
static const uint32_t *stack_limit;

/* Linker-script symbols of the STM32Cube GCC scripts: end of .bss, initial stack pointer. */
extern uint32_t end[];
extern uint32_t _estack[];

__attribute__((weak)) void bnn_board_clock_init(void)
{
}

/* HAL_Init() starts a 1 kHz SysTick for HAL's time base; its handler is the application's. */
void SysTick_Handler(void)
{
    HAL_IncTick();
}

void BNN_UART_IRQ_HANDLER(void)
{
    USART_TypeDef *u = BNN_UART_INSTANCE;
#if HAS_ICR
    /* An overrun or framing error keeps the interrupt pending until it is cleared. */
    u->ICR = USART_ICR_ORECF | USART_ICR_FECF;
    if (RX_READY(u)) {
        rx_ring[rx_head & (BNN_RX_RING_BYTES - 1u)] = (uint8_t)u->RDR;
        rx_head = rx_head + 1u;
    }
#else
    if (RX_READY(u)) { /* reading SR then DR also clears an overrun */
        rx_ring[rx_head & (BNN_RX_RING_BYTES - 1u)] = (uint8_t)u->DR;
        rx_head = rx_head + 1u;
    }
#endif
}

static void pins_init(void)
{
    GPIO_InitTypeDef pin = {0};
    BNN_UART_TX_CLK_ENABLE();
    BNN_UART_RX_CLK_ENABLE();
#if BNN_UART_VDDIO2
    __HAL_RCC_PWR_CLK_ENABLE();
    HAL_PWREx_EnableVddIO2(); /* the port is powered by VDDIO2 */
#endif
#if defined(BNN_STM32_F1)
    pin.Pin = BNN_UART_TX_PIN;
    pin.Mode = GPIO_MODE_AF_PP;
    pin.Speed = GPIO_SPEED_FREQ_HIGH;
    HAL_GPIO_Init(BNN_UART_TX_PORT, &pin);
    pin.Pin = BNN_UART_RX_PIN;
    pin.Mode = GPIO_MODE_INPUT;
    pin.Pull = GPIO_PULLUP;
    HAL_GPIO_Init(BNN_UART_RX_PORT, &pin);
#else
    pin.Mode = GPIO_MODE_AF_PP;
    pin.Pull = GPIO_PULLUP;
    pin.Speed = GPIO_SPEED_FREQ_VERY_HIGH;
    pin.Alternate = BNN_UART_AF;
    pin.Pin = BNN_UART_TX_PIN;
    HAL_GPIO_Init(BNN_UART_TX_PORT, &pin);
    pin.Pin = BNN_UART_RX_PIN;
    HAL_GPIO_Init(BNN_UART_RX_PORT, &pin);
#endif
}

/* Paint the free RAM below the stack (between .bss and the current stack pointer) so that
 * bnn_port_stack_used() can find the deepest word the stack reached. Nothing here uses a
 * heap. */
static void stack_paint(void)
{
    uint32_t *sp;
    uint32_t *p;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    p = end;
    if ((uint32_t)((uint8_t *)sp - (uint8_t *)p) > BNN_STACK_PAINT_MAX) {
        p = (uint32_t *)((uint8_t *)sp - BNN_STACK_PAINT_MAX);
    }
    stack_limit = p;
    while (p < sp - 16) { /* leave this function's own frame alone */
        *p++ = (uint32_t)BNN_STACK_PAINT;
    }
}

void bnn_port_init(void)
{
    HAL_Init();
    bnn_board_clock_init();
    SystemCoreClockUpdate();
    stack_paint();
    pins_init();
    BNN_UART_CLK_ENABLE();
    uart.Instance = BNN_UART_INSTANCE;
    uart.Init.BaudRate = BNN_BAUD;
    uart.Init.WordLength = UART_WORDLENGTH_8B;
    uart.Init.StopBits = UART_STOPBITS_1;
    uart.Init.Parity = UART_PARITY_NONE;
    uart.Init.Mode = UART_MODE_TX_RX;
    uart.Init.HwFlowCtl = UART_HWCONTROL_NONE;
    if (HAL_UART_Init(&uart) != HAL_OK) {
        bnn_glue_system_reset();
    }
    BNN_UART_INSTANCE->CR1 |= RX_IRQ_ENABLE;
    HAL_NVIC_SetPriority(BNN_UART_IRQN, 0, 0);
    HAL_NVIC_EnableIRQ(BNN_UART_IRQN);
    bnn_real_counter_init();
}

void bnn_port_write(const uint8_t *buf, uint32_t n)
{
    USART_TypeDef *u = BNN_UART_INSTANCE;
    uint32_t i;
    for (i = 0; i < n; ++i) {
        while (!TX_EMPTY(u)) {
        }
#if HAS_ICR
        u->TDR = buf[i];
#else
        u->DR = buf[i];
#endif
    }
}

int bnn_port_read_byte(void)
{
    uint8_t c;
    while (rx_tail == rx_head) {
    }
    c = rx_ring[rx_tail & (BNN_RX_RING_BYTES - 1u)];
    rx_tail = rx_tail + 1u;
    return (int)c;
}

uint32_t bnn_port_stack_used(void)
{
    return stack_limit ? bnn_stack_high_water(stack_limit, _estack) : 0u;
}

void bnn_glue_flush(void)
{
    while (!TX_DONE(BNN_UART_INSTANCE)) {
    }
}

/* Every STM32 here has a DWT cycle counter: these only matter if it did not start. */
uint32_t bnn_glue_counter(void)
{
    return HAL_GetTick();
}

uint32_t bnn_glue_counter_hz(void)
{
    return 1000u;
}

const char *bnn_glue_counter_unit(void)
{
    return "ticks";
}
