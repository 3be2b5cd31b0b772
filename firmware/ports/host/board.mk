# Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit.
BOARD_KIND := host
BOARD_CFLAGS := 
BOARD_COMMON_SRCS := 
BOARD_STACK_SIZE := 1048576
