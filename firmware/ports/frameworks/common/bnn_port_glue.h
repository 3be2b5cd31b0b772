/*
 * What every real-board glue shares (firmware/ports/frameworks/<framework>/): Cortex-M system
 * registers reached by address, so that the glue does not depend on which CMSIS version a
 * framework ships. Internal to the ports, not part of the port contract (bnn_port.h).
 */
#ifndef BNN_PORT_GLUE_H
#define BNN_PORT_GLUE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNN_SCB_AIRCR 0xE000ED0Cu
#define BNN_DEMCR 0xE000EDFCu
#define BNN_DWT_CTRL 0xE0001000u
#define BNN_DWT_CYCCNT 0xE0001004u
#define BNN_DWT_LAR 0xE0001FB0u
#define BNN_GLUE_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* The framework's core clock (CMSIS system file). */
extern uint32_t SystemCoreClock;

/* Start DWT->CYCCNT; 1 when it counts. ARMv6-M (M0/M0+) has no DWT cycle counter: 0. */
static inline int bnn_glue_dwt_start(void)
{
#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_8M_BASE__)
    return 0;
#else
    uint32_t before;
    BNN_GLUE_REG(BNN_DEMCR) |= 1u << 24; /* TRCENA: power the DWT */
#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__)
    BNN_GLUE_REG(BNN_DWT_LAR) = 0xC5ACCE55u; /* software unlock (needed on the Cortex-M7) */
#endif
    BNN_GLUE_REG(BNN_DWT_CYCCNT) = 0u;
    BNN_GLUE_REG(BNN_DWT_CTRL) |= 1u; /* CYCCNTENA */
    before = BNN_GLUE_REG(BNN_DWT_CYCCNT);
    __asm__ volatile("nop\n nop\n nop\n nop\n nop\n nop\n nop\n nop");
    return BNN_GLUE_REG(BNN_DWT_CYCCNT) != before;
#endif
}

static inline uint32_t bnn_glue_dwt_read(void)
{
    return BNN_GLUE_REG(BNN_DWT_CYCCNT);
}

/* SYSRESETREQ: a real board has nowhere to exit to, so it starts the runner again. */
static inline void bnn_glue_system_reset(void)
{
    __asm__ volatile("dsb" ::: "memory");
    BNN_GLUE_REG(BNN_SCB_AIRCR) = (0x5FAu << 16) | (1u << 2);
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
}

/* port_real.c: pick DWT->CYCCNT or the glue's counter (call once the clock is set). */
void bnn_real_counter_init(void);

/* What each framework's glue provides to port_real.c. */
void bnn_glue_flush(void);         /* returns when every written byte has left */
uint32_t bnn_glue_counter(void);   /* used when DWT->CYCCNT does not count */
uint32_t bnn_glue_counter_hz(void);
const char *bnn_glue_counter_unit(void);

#ifdef __cplusplus
}
#endif

#endif /* BNN_PORT_GLUE_H */
