/* Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit. */
#ifndef BNN_BOARD_H
#define BNN_BOARD_H

#define BNN_BOARD_NAME "host"
#define BNN_BOARD_CORE "host"
#define BNN_BOARD_CLOCK_HZ 0u
#define BNN_FAULT_EXIT_CODE 250
#define BNN_STACK_PAINT 0xa5a5a5a5
#define BNN_COUNTER_HZ 1000000000u

#endif /* BNN_BOARD_H */
