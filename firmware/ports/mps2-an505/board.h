/* Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit. */
#ifndef BNN_BOARD_H
#define BNN_BOARD_H

#define BNN_BOARD_NAME "mps2-an505"
#define BNN_BOARD_CORE "cortex-m33"
#define BNN_BOARD_CLOCK_HZ 20000000u
#define BNN_FAULT_EXIT_CODE 250
#define BNN_STACK_PAINT 0xa5a5a5a5
#define BNN_COUNTER_HZ 20000000u

/* Memory (emulated sizes when BNN_EMULATED_MEMORY is defined). */
#define BNN_CODE_BASE 0x10000000
#define BNN_CODE_SIZE 0x00400000
#define BNN_RAM_BASE 0x38000000
#define BNN_RAM_SIZE 0x00400000
#define BNN_BULK_BASE 0x80000000u
#define BNN_BULK_SIZE 0x01000000u

#define BNN_UART_BASE 0x50200000u
#define BNN_COUNTER_ADDR 0x50302018u

#endif /* BNN_BOARD_H */
