/* Port code every target shares: the instruction-count marker and small text helpers. */
#include "bnn_port_common.h"

/* The instruction-counting plugin (firmware/tools/qemu-plugin) records the running count each
 * time the first instruction of this function executes. Keep it out of line, in the image, and
 * with an effect the optimizer must preserve, so every call site really calls it. */
__attribute__((noinline, used)) void bnn_port_mark(uint32_t id)
{
    __asm__ volatile("" : : "r"(id) : "memory");
}

void bnn_text_str(bnn_text_t *t, const char *s)
{
    while (*s != '\0' && t->p < t->end) {
        *t->p++ = *s++;
    }
}

void bnn_text_hex(bnn_text_t *t, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[11];
    int i;
    buf[0] = '0';
    buf[1] = 'x';
    for (i = 0; i < 8; ++i) {
        buf[2 + i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    }
    buf[10] = '\0';
    bnn_text_str(t, buf);
}

void bnn_text_dec(bnn_text_t *t, uint32_t v)
{
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    bnn_text_str(t, &buf[i]);
}

uint32_t bnn_stack_high_water(const uint32_t *limit, const uint32_t *top)
{
    const uint32_t *p = limit;
    while (p < top && *p == (uint32_t)BNN_STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((const uint8_t *)top - (const uint8_t *)p);
}
