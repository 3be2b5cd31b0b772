/*
 * Port for Arduino boards (PlatformIO: framework = arduino; here the Arduino mbed cores of the
 * Nano 33 BLE and the Raspberry Pi Pico).
 *
 * The framework owns main(): the runner's main() is compiled as bnn_app_main() (the env's
 * build_src_flags: -Dmain=bnn_app_main) and setup() runs it. Serial: the framework's `Serial`,
 * native USB CDC on these boards (the baud rate is ignored); bnn_port_init() returns once the
 * host has opened the port, so the ready frame is sent to a listening host. Counter: DWT->CYCCNT
 * core cycles on the M4 (port_real.c); on the M0+ (no DWT), SysTick as the CMSIS-RTOS2 kernel
 * extends it to 32 bits (osKernelGetSysTimerCount(): SysTick cycles plus the kernel's ticks).
 */
#include <Arduino.h>

extern "C" {
#include "bnn_port_common.h"
#include "bnn_port_glue.h"

int bnn_app_main(void);
}

#if defined(BNN_COUNTER_SYSTICK)
#include "cmsis_os2.h"
#endif

void setup()
{
    bnn_app_main(); /* returns only through bnn_port_exit(), which resets the board */
}

void loop()
{
}

/* The CMSIS system file defines the core clock; where a core does not, its default from the
 * board table stands in. */
extern "C" {
__attribute__((weak)) uint32_t SystemCoreClock = BNN_BOARD_CLOCK_HZ;
}

extern "C" {

void bnn_port_init(void)
{
    Serial.begin(BNN_BAUD);
    while (!Serial) {
        /* USB CDC: wait for the host to open the port */
    }
    bnn_real_counter_init();
}

void bnn_port_write(const uint8_t *buf, uint32_t n)
{
    Serial.write(buf, n);
}

int bnn_port_read_byte(void)
{
    int c;
    while ((c = Serial.read()) < 0) {
    }
    return c;
}

/* The sketch runs on a stack the framework allocated: no high-water mark here. */
uint32_t bnn_port_stack_used(void)
{
    return 0u;
}

void bnn_glue_flush(void)
{
    Serial.flush();
}

#if defined(BNN_COUNTER_SYSTICK)
uint32_t bnn_glue_counter(void)
{
    return osKernelGetSysTimerCount();
}

uint32_t bnn_glue_counter_hz(void)
{
    return osKernelGetSysTimerFreq();
}

const char *bnn_glue_counter_unit(void)
{
    /* SysTick counts the core clock; a tickless kernel may run its timer from another clock */
    return osKernelGetSysTimerFreq() == SystemCoreClock ? "cycles" : "ticks";
}
#else
uint32_t bnn_glue_counter(void)
{
    return micros();
}

uint32_t bnn_glue_counter_hz(void)
{
    return 1000000u;
}

const char *bnn_glue_counter_unit(void)
{
    return "ticks";
}
#endif

} /* extern "C" */
