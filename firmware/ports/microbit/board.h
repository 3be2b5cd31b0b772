/* Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit. */
#ifndef BNN_BOARD_H
#define BNN_BOARD_H

#define BNN_BOARD_NAME "microbit"
#define BNN_BOARD_CORE "cortex-m0"
#define BNN_BOARD_CLOCK_HZ 16000000u
#define BNN_FAULT_EXIT_CODE 250
#define BNN_STACK_PAINT 0xa5a5a5a5
#define BNN_COUNTER_HZ 16000000u

/* Memory (emulated sizes when BNN_EMULATED_MEMORY is defined). */
#define BNN_CODE_BASE 0x00000000
#define BNN_CODE_SIZE 0x00040000
#define BNN_RAM_BASE 0x20000000
#define BNN_RAM_SIZE 0x00004000
#ifdef BNN_EMULATED_MEMORY
#undef BNN_CODE_BASE
#undef BNN_CODE_SIZE
#undef BNN_RAM_BASE
#undef BNN_RAM_SIZE
#define BNN_CODE_BASE 0x00000000
#define BNN_CODE_SIZE 0x01000000
#define BNN_RAM_BASE 0x20000000
#define BNN_RAM_SIZE 0x00040000
#endif
#define BNN_BULK_BASE 0x01000000u
#define BNN_BULK_SIZE 0x01000000u

#define BNN_UART_BASE 0x40002000u
#define BNN_COUNTER_ADDR 0x40008000u

#endif /* BNN_BOARD_H */
