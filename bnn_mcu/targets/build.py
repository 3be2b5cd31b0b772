"""Build the firmware for a target by driving firmware/Makefile.

    elf = build_firmware("mps2-an386", model_dir, build_dir)            # -> build_dir/mps2-an386.elf
    exe = build_firmware("host", model_dir, build_dir)                  # a Linux executable
    elf = build_firmware("microbit", None, d, app="tests/fixtures/port_selftest.c")

make's own dependency tracking (plus flag stamps in the Makefile) skips whatever is up to
date, so calling this again with nothing changed costs one `make` run (~0.1 s).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ..errors import TargetError
from ..resources import firmware_dir
from .boards import get_board

ARM_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
ARM_GCC = "arm-none-eabi-gcc"
BUILD_TIMEOUT = 600.0
_ERROR_LINES = 12


def check_toolchain(target: str) -> None:
    """A one-line TargetError naming the package to install when a tool is missing."""
    board = get_board(target)
    if shutil.which("make") is None:
        raise TargetError("GNU make not found: apt-get install make")
    if board.is_host:
        if shutil.which("gcc") is None:
            raise TargetError("gcc not found (needed for the host build): apt-get install gcc")
        return
    if shutil.which(ARM_GCC) is None:
        raise TargetError(f"{ARM_GCC} not found: apt-get install {ARM_PACKAGES}")
    if not _has_newlib():
        raise TargetError(f"newlib for {ARM_GCC} not found: apt-get install {ARM_PACKAGES}")


def _has_newlib() -> bool:
    try:
        out = subprocess.run([ARM_GCC, "-mthumb", "-mcpu=cortex-m0", "-print-file-name=libc_nano.a"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return os.path.isabs(out) and os.path.exists(out)


def build_firmware(target: str, model_dir: str | os.PathLike | None, build_dir: str | os.PathLike,
                   opt: str = "-O2", extra_cflags: Iterable[str] = (),
                   app: str | os.PathLike | Iterable[str | os.PathLike] | None = None, *,
                   emulated_memory: bool = False, stack_size: int | None = None,
                   runtime: bool = True, jobs: int | None = None,
                   timeout: float = BUILD_TIMEOUT, extra_ldflags: Iterable[str] = ()) -> Path:
    """Build the runner (or `app`, one or more C files replacing app/main.c) with the model in
    `model_dir` (a folder with bnn_model.c/.h; None for an app that needs no model) for
    `target`; returns build_dir/<target>.elf (for "host": a Linux executable).

    runtime=False leaves out firmware/src (kernels, protocol): an app on the port alone.
    Sanitizer options in extra_cflags are linked too; extra_ldflags adds other link flags.

    emulated_memory links for the larger memories QEMU is given (micro:bit: 16 MB flash,
    256 KB RAM): for test models bigger than the real part, never for memory reports.
    """
    check_toolchain(target)
    out = Path(build_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["make", "-C", str(firmware_dir()), f"BOARD={target}", f"BUILD_DIR={out}",
           f"OPT={opt}", f"EXTRA_CFLAGS={' '.join(extra_cflags)}", f"-j{jobs or os.cpu_count() or 2}"]
    if extra_ldflags:
        cmd.append(f"EXTRA_LDFLAGS={' '.join(extra_ldflags)}")
    if model_dir is not None:
        model = Path(model_dir).resolve()
        if not model.is_dir():
            raise TargetError(f"model folder {model} does not exist: generate the model first")
        cmd.append(f"MODEL_DIR={model}")
    if app is not None:
        apps = [app] if isinstance(app, (str, os.PathLike)) else list(app)
        cmd.append("APP=" + " ".join(str(Path(a).resolve()) for a in apps))
    if emulated_memory:
        cmd.append("EMU_MEM=1")
    if not runtime:
        cmd.append("SRC_DIRS=")
    if stack_size is not None:
        cmd.append(f"STACK_SIZE={int(stack_size)}")
    # One build at a time per folder (parallel test workers may share one).
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TargetError(f"firmware build for {target} took more than {timeout:.0f} s") from None
    if res.returncode != 0:
        raise TargetError(f"firmware build for {target} failed:\n{first_errors(res.stdout + res.stderr)}")
    elf = out / f"{target}.elf"
    if not elf.exists():
        raise TargetError(f"firmware build for {target} produced no {elf.name}")
    return elf


def first_errors(log: str, n: int = _ERROR_LINES) -> str:
    """The first compiler/linker error of a build log and the lines that follow it."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if re.search(r"\berror\b|undefined reference|\bld: |\*\*\*", line):
            return "\n".join(lines[i:i + n])
    return "\n".join(lines[-n:])


def symbol_address(elf: str | os.PathLike, symbol: str) -> int:
    """Address of `symbol` in an ARM ELF, Thumb bit cleared (where its first instruction is)."""
    nm = "arm-none-eabi-nm"
    if shutil.which(nm) is None:
        raise TargetError(f"{nm} not found: apt-get install {ARM_PACKAGES}")
    res = subprocess.run([nm, str(elf)], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise TargetError(f"cannot read symbols of {elf}: {res.stderr.strip()}")
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == symbol:
            return int(parts[0], 16) & ~1
    raise TargetError(f"{elf} has no symbol {symbol}: was it built from firmware/ports?")
