"""`--target` for predict, verify and bench: emulator, host, qemu:BOARD, qemu:all, serial:PORT,
pio:PROJECT:ENV. Naming mistakes are BnnErrors (exit 2) found before models or data load; a
device that fails is a TargetError (exit 3)."""

from __future__ import annotations

import numpy as np

from ..errors import BnnError

TARGET_HELP = "emulator, host, qemu:BOARD, qemu:all, serial:PORT, pio:PROJECT:ENV"


def normalize_target(text: str) -> str:
    """Accept the PlatformIO env spelling of a QEMU board: "qemu-mps2-an386" -> "qemu:mps2-an386"."""
    from .boards import QEMU_BOARDS

    if text.startswith("qemu-") and text[5:] in QEMU_BOARDS:
        return "qemu:" + text[5:]
    return text


def device_targets(text: str, baud: int):
    """The device targets a --target names (qemu:all = every QEMU board)."""
    from .boards import QEMU_BOARDS
    from .session import Target, parse_device_target

    text = normalize_target(text)
    if text == "qemu:all":
        return [Target("qemu", b) for b in QEMU_BOARDS]
    return [parse_device_target(text, baud)]


def check_target(text: str, allow_all: bool = True) -> None:
    """Fail fast (before loading models or data) on a target that does not exist."""
    text = normalize_target(text)
    if text == "emulator" or (allow_all and text == "qemu:all"):
        return
    if text.partition(":")[0] not in ("host", "qemu", "serial", "pio"):
        raise BnnError(f"unknown target {text!r}; use one of: {TARGET_HELP}")
    device_targets(text, 115200)


def predict_on_target(model, x: np.ndarray, target: str, baud: int = 115200,
                      stream: int | None = None, emulated_memory: bool = False):
    """(int32 scores, int64 classes) of the integer model on one target."""
    check_target(target, allow_all=False)
    from .. import emulator
    if target == "emulator":
        r = emulator.run(model, x)
        return r.scores, r.predictions
    from .session import run_on_device
    (t,) = device_targets(target, baud)
    res = run_on_device(model, t, x, stream=stream, emulated_memory=emulated_memory)
    return res.scores, res.classes
