# Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: do not edit.
BOARD_KIND := cortexm
BOARD_CFLAGS := -mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard -mthumb -masm-syntax-unified
BOARD_COMMON_SRCS := cortexm/uart_cmsdk.c cortexm/counter_mmio.c
BOARD_STACK_SIZE := 16384
