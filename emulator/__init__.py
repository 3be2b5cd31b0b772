"""Bit-exact host emulator of the integer IR (installed as `bnn_mcu.emulator`)."""

from .runner import EmulatorResult, run

__all__ = ["run", "EmulatorResult"]
