/* Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit. */
#ifndef BNN_BOARD_H
#define BNN_BOARD_H

#define BNN_BOARD_NAME "mps2-an386"
#define BNN_BOARD_CORE "cortex-m4"
#define BNN_BOARD_CLOCK_HZ 25000000u
#define BNN_FAULT_EXIT_CODE 250
#define BNN_STACK_PAINT 0xa5a5a5a5
#define BNN_COUNTER_HZ 25000000u

/* Memory (emulated sizes when BNN_EMULATED_MEMORY is defined). */
#define BNN_CODE_BASE 0x00000000
#define BNN_CODE_SIZE 0x00400000
#define BNN_RAM_BASE 0x20000000
#define BNN_RAM_SIZE 0x00400000
#define BNN_BULK_BASE 0x21000000u
#define BNN_BULK_SIZE 0x01000000u

#define BNN_UART_BASE 0x40004000u
#define BNN_COUNTER_ADDR 0x40028018u

#endif /* BNN_BOARD_H */
