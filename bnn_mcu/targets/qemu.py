"""Run firmware on a QEMU board, with exact instruction counts when asked.

    q = QemuProcess("mps2-an386", elf, bulk=vectors, count_instructions=True)
    with q as ser:                       # pyserial on socket://127.0.0.1:PORT (QEMU's UART0)
        ...                              # talk to the firmware
        q.wait(timeout=10)               # optional: the firmware exits by itself (semihosting)
    q.exit_code, q.fault, q.counts.marks, q.counts.total

QEMU runs with `-serial` on a TCP server socket that waits for us (no output is lost),
semihosting on (bnn_port_exit(code) becomes QEMU's exit code), no display and no monitor.
Its UART output is also logged to a file, which is where a "BNN-FAULT ..." line is found.

Instruction counting loads firmware/tools/qemu-plugin/bnn_icount.c (built once with the host
gcc into a cache folder): it counts every executed instruction and records the running count
each time bnn_port_mark() is entered. Beside it, the plugin keeps a cycle estimate for the
board's core (each instruction weighed by its class per the core's Technical Reference Manual,
taken branches with their pipeline refill: docs/performance.md). Differences between marks are exact and identical on
every run; absolute counts and the total also include the time the firmware spent polling its
UART, which depends on the host. `icount_shift=N` adds `-icount shift=N,align=off,sleep=off`:
virtual time then advances 2**N ns per instruction, so the firmware's own timer counts become
deterministic too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import TargetError
from ..resources import firmware_dir
from .boards import MARK_SYMBOL, get_board
from .build import symbol_address
from .host import HostProcess, SerialProcess, bulk_file

QEMU = "qemu-system-arm"
PLUGIN_SOURCE = Path("tools") / "qemu-plugin" / "bnn_icount.c"


@dataclass(frozen=True)
class Counts:
    """Executed instructions: the running count at each entry of bnn_port_mark(), in order, and
    the total at exit; beside them the estimated cycles at the same points (for `core`)."""

    total: int
    marks: tuple[int, ...]
    cycles_total: int = 0
    cycle_marks: tuple[int, ...] = ()
    core: str = ""

    @property
    def deltas(self) -> tuple[int, ...]:
        """Instructions between consecutive marks (the measured regions)."""
        return tuple(b - a for a, b in zip(self.marks, self.marks[1:]))

    @property
    def cycle_deltas(self) -> tuple[int, ...]:
        """Estimated cycles between consecutive marks."""
        return tuple(b - a for a, b in zip(self.cycle_marks, self.cycle_marks[1:]))


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


class QemuProcess(SerialProcess):
    """QEMU running `elf` on the board `target`; a context manager yielding the serial port."""

    def __init__(self, target: str, elf: str | os.PathLike, *,
                 bulk: bytes | os.PathLike | None = None, count_instructions: bool = False,
                 icount_shift: int | None = None, extra_args: tuple[str, ...] = (), **kw):
        board = get_board(target)
        if board.is_host:
            raise TargetError("QemuProcess runs QEMU boards; use HostProcess for 'host'")
        super().__init__(f"QEMU {target}", **kw)
        self.board = board
        self.elf = Path(elf)
        if not self.elf.is_file():
            raise TargetError(f"firmware {self.elf} does not exist: build it first")
        self.bulk = bulk
        self.count_instructions = count_instructions
        self.icount_shift = icount_shift
        self.extra_args = tuple(extra_args)
        self._counts: Counts | None = None

    def command(self, port: int) -> list[str]:
        b = self.board
        chardev = (f"socket,id=bnnuart,host=127.0.0.1,port={port},server=on,wait=on,nodelay=on,"
                   f"logfile={self.workdir / 'uart.log'},logappend=off")
        cmd = [QEMU, "-M", b.qemu_machine, "-kernel", str(self.elf),
               "-display", "none", "-monitor", "none", "-nodefaults",
               "-chardev", chardev, "-serial", "chardev:bnnuart",
               "-semihosting-config", "enable=on,target=native", *b.qemu_args]
        if self.bulk is not None:
            path = bulk_file(self.bulk, self.workdir)
            if b.bulk is None:
                raise TargetError(f"{b.name} has no bulk region")
            if path.stat().st_size > b.bulk.size:
                raise TargetError(f"bulk data of {path.stat().st_size} bytes does not fit the "
                                  f"{b.bulk.size} bytes of {b.name}'s bulk region")
            cmd += ["-device", f"loader,file={path},addr=0x{b.bulk.base:08x}"]
        if self.icount_shift is not None:
            cmd += ["-icount", f"shift={int(self.icount_shift)},align=off,sleep=off"]
        if self.count_instructions:
            mark = symbol_address(self.elf, MARK_SYMBOL)
            cmd += ["-plugin", f"{icount_plugin()},mark=0x{mark:x},core={b.core},"
                               f"out={self._counts_path}"]
        return cmd + list(self.extra_args)

    @property
    def _counts_path(self) -> Path:
        return self.workdir / "counts.txt"

    def serial_log_path(self) -> Path | None:
        return self._dir / "uart.log" if self._dir else None

    def missing_program_message(self, exe: str) -> str:
        return f"{exe} not found: apt-get install qemu-system-arm"

    def collect_results(self) -> None:
        if not self.count_instructions or self._dir is None:
            return
        try:
            text = self._counts_path.read_text()
        except OSError:
            return  # killed before its exit handlers ran
        total, cycles, marks, cycle_marks, core = None, 0, [], [], ""
        for line in text.splitlines():
            key, *values = line.split()
            if key == "core":
                core = values[0]
            elif key == "total":
                total, cycles = int(values[0]), int(values[1])
            elif key == "mark":
                marks.append(int(values[0]))
                cycle_marks.append(int(values[1]))
        if total is not None and "error" not in text:
            self._counts = Counts(total, tuple(marks), cycles, tuple(cycle_marks), core)

    @property
    def counts(self) -> Counts:
        """Instruction counts, once QEMU has exited (count_instructions=True)."""
        if not self.count_instructions:
            raise TargetError(f"{self.name} was not started with count_instructions=True")
        if self._counts is None:
            raise TargetError(f"{self.name}: no instruction counts (QEMU still running, or it "
                              f"was killed before writing them)")
        return self._counts


def start_target(target: str, elf: str | os.PathLike, **kw) -> SerialProcess:
    """A launcher for `target`: HostProcess for "host", QemuProcess for a board. Both are
    context managers yielding a pyserial object on socket://127.0.0.1:PORT."""
    if get_board(target).is_host:
        kw.pop("count_instructions", None)
        kw.pop("icount_shift", None)
        return HostProcess(elf, **kw)
    return QemuProcess(target, elf, **kw)


# --- the instruction-counting plugin ----------------------------------------------------------

def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bnn-mcu" / "qemu-plugin"


def icount_plugin() -> Path:
    """The instruction-counting plugin, compiled on first use (cached by source hash)."""
    src = firmware_dir() / PLUGIN_SOURCE
    code = src.read_bytes()
    out_dir = _cache_dir() / hashlib.sha256(code).hexdigest()[:16]
    so = out_dir / "bnn_icount.so"
    if so.exists():
        return so
    if shutil.which("gcc") is None:
        raise TargetError("gcc not found (needed to build the QEMU counting plugin): "
                          "apt-get install gcc")
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    res = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra",
                          "-o", tmp, str(src)], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        os.unlink(tmp)
        raise TargetError(f"cannot build the QEMU counting plugin {src}:\n{res.stderr.strip()}")
    os.replace(tmp, so)  # atomic: concurrent builders never see half a file
    return so
