# Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit.
BOARD_KIND := cortexm
BOARD_CFLAGS := -mcpu=cortex-m0 -mfloat-abi=soft -mthumb -masm-syntax-unified
BOARD_COMMON_SRCS := 
BOARD_STACK_SIZE := 2048
