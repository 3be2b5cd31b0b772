/*
 * Cortex-M start-up shared by every board: vector table, reset (paint the stack, enable the
 * FPU/MVE, copy .data, zero .bss, run main, exit with its code) and a fault handler that
 * reports one "BNN-FAULT ..." line over the UART and exits with BNN_FAULT_EXIT_CODE.
 */
#include <stdint.h>
#include <string.h>

#include "bnn_port_common.h"
#include "cortexm.h"

#define BNN_STR2(x) #x
#define BNN_STR(x) BNN_STR2(x)
#define BNN_NUM_IRQ 32

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern int main(void);

void Reset_Handler(void);
void bnn_fault_entry(void);
void bnn_cortexm_start(void);
void bnn_fault_report(const uint32_t *frame, uint32_t exc_return);

typedef void (*bnn_vector_t)(void);

typedef struct {
    uint32_t *initial_sp;
    bnn_vector_t handlers[15 + BNN_NUM_IRQ];
} bnn_vector_table_t;

/* Every exception but reset goes to the fault report: nothing here enables interrupts, so
 * any other exception is a bug worth a clear line. */
#define F bnn_fault_entry
__attribute__((section(".vectors"), used)) const bnn_vector_table_t bnn_vectors = {
    __stack_top,
    {Reset_Handler, F, F, F, F, F, F, F, F, F, F, F, F, F, F,
     F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, F,
     F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, F}};
#undef F

/* Reset: the stack is still empty, so paint all of it (exactly, for the high-water mark), and
 * turn the FPU (and Helium) on before any compiled code could use it. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
        "    ldr r0, =__stack_limit\n"
        "    ldr r1, =__stack_top\n"
        "    ldr r2, =" BNN_STR(BNN_STACK_PAINT) "\n"
        "1:  cmp r0, r1\n"
        "    bhs 2f\n"
        "    str r2, [r0]\n"
        "    adds r0, r0, #4\n"
        "    b 1b\n"
        "2:\n"
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
        "    ldr r0, =0xE000ED88\n" /* CPACR: full access to CP10 and CP11 */
        "    ldr r1, [r0]\n"
        "    ldr r2, =0x00F00000\n"
        "    orrs r1, r1, r2\n"
        "    str r1, [r0]\n"
        "    dsb\n"
        "    isb\n"
#endif
        "    bl bnn_cortexm_start\n"
        "    b .\n"
        "    .ltorg\n");
}

void bnn_cortexm_start(void)
{
    size_t data_bytes = (size_t)((uint8_t *)__data_end - (uint8_t *)__data_start);
    size_t bss_bytes = (size_t)((uint8_t *)__bss_end - (uint8_t *)__bss_start);
    memcpy(__data_start, __data_load, data_bytes);
    memset(__bss_start, 0, bss_bytes);
    bnn_port_exit(main());
}

/* Find the stacked frame (MSP or PSP, from EXC_RETURN bit 2) and report it. Written for
 * Thumb-1 so that it also assembles for the M0. */
__attribute__((naked)) void bnn_fault_entry(void)
{
    __asm__ volatile(
        "    movs r0, #4\n"
        "    mov r1, lr\n"
        "    tst r0, r1\n"
        "    beq 1f\n"
        "    mrs r0, psp\n"
        "    b 2f\n"
        "1:  mrs r0, msp\n"
        "2:  ldr r2, =bnn_fault_report\n"
        "    bx r2\n"
        "    .ltorg\n");
}

static const char *exception_name(uint32_t n)
{
    switch (n) {
    case 2: return "nmi";
    case 3: return "hardfault";
    case 4: return "memmanage";
    case 5: return "busfault";
    case 6: return "usagefault";
    case 7: return "securefault";
    case 11: return "svcall";
    case 12: return "debugmon";
    case 14: return "pendsv";
    case 15: return "systick";
    default: return "irq";
    }
}

void bnn_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    char line[200];
    bnn_text_t t;
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    ipsr &= 0x1FFu;
    t.p = line;
    t.end = line + sizeof line;
    bnn_text_str(&t, "\r\nBNN-FAULT ");
    bnn_text_str(&t, exception_name(ipsr));
    bnn_text_str(&t, " exc=");
    bnn_text_dec(&t, ipsr);
    bnn_text_str(&t, " pc=");
    bnn_text_hex(&t, frame[6]);
    bnn_text_str(&t, " lr=");
    bnn_text_hex(&t, frame[5]);
    bnn_text_str(&t, " xpsr=");
    bnn_text_hex(&t, frame[7]);
    bnn_text_str(&t, " exc_return=");
    bnn_text_hex(&t, exc_return);
#if !defined(__ARM_ARCH_6M__) && !defined(__ARM_ARCH_8M_BASE__)
    bnn_text_str(&t, " cfsr=");
    bnn_text_hex(&t, BNN_REG(0xE000ED28u));
    bnn_text_str(&t, " hfsr=");
    bnn_text_hex(&t, BNN_REG(0xE000ED2Cu));
    bnn_text_str(&t, " mmfar=");
    bnn_text_hex(&t, BNN_REG(0xE000ED34u));
    bnn_text_str(&t, " bfar=");
    bnn_text_hex(&t, BNN_REG(0xE000ED38u));
#endif
    bnn_text_str(&t, "\r\n");
    bnn_uart_init(); /* the fault may come before bnn_port_init() */
    bnn_port_write((const uint8_t *)line, (uint32_t)(t.p - line));
    bnn_port_exit(BNN_FAULT_EXIT_CODE);
}
