/* Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit. */
#ifndef BNN_BOARD_H
#define BNN_BOARD_H

#define BNN_BOARD_NAME "mps3-an547"
#define BNN_BOARD_CORE "cortex-m55"
#define BNN_BOARD_CLOCK_HZ 32000000u
#define BNN_FAULT_EXIT_CODE 250
#define BNN_STACK_PAINT 0xa5a5a5a5
#define BNN_COUNTER_HZ 32000000u

/* Memory (emulated sizes when BNN_EMULATED_MEMORY is defined). */
#define BNN_CODE_BASE 0x00000000
#define BNN_CODE_SIZE 0x00080000
#define BNN_RAM_BASE 0x20000000
#define BNN_RAM_SIZE 0x00080000
#define BNN_BULK_BASE 0x60000000u
#define BNN_BULK_SIZE 0x01000000u

#define BNN_UART_BASE 0x59303000u
#define BNN_COUNTER_ADDR 0x58100008u
#define BNN_COUNTER_ENABLE_ADDR 0x58100000u
#define BNN_COUNTER_ENABLE_VALUE 0x1u

#endif /* BNN_BOARD_H */
