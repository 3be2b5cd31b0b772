"""Run a firmware image as a local process that serves its serial stream on a TCP port.

`SerialProcess` is the common machinery of the host build and QEMU (qemu.py): start the
process on a free port, connect pyserial's `socket://` to it (retrying while it starts), hand
the serial object to the caller, then stop the process with bounded waits and turn whatever
went wrong (did not start, fault, lock-up, killed, hung) into one clear TargetError that
carries the process's last output. Every wait has a timeout: nothing here can hang.

    proc = HostProcess(build_dir / "host.elf", bulk=vectors)
    with proc as ser:                 # a pyserial object on socket://127.0.0.1:PORT
        ser.write(b"...")
        line = proc.read_until(b"\\n", timeout=2.0)
        code = proc.wait(timeout=5.0)  # the firmware ended by itself with this code
    proc.exit_code, proc.fault, proc.output
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from serial import PortNotOpenError, SerialException
from serial.serialutil import Timeout
from serial.urlhandler import protocol_socket

from ..errors import TargetError
from .boards import FAULT_EXIT_CODE, FAULT_MARKER, LOCKUP_EXIT_CODE

#: How long a process may take to accept the serial connection.
CONNECT_TIMEOUT = 10.0
#: How long a stopped process gets to exit (after SIGTERM, then again after SIGKILL).
STOP_TIMEOUT = 3.0
_TAIL = 1200  # characters of output quoted in errors
# Lines QEMU always prints, left out of error messages.
_NOISE = re.compile(r"QEMU waiting for connection on|nic \S+ has no peer")


class SocketSerial(protocol_socket.Serial):
    """pyserial's `socket://` port, with three changes that make it behave like a serial port
    whose far end may stop at any time:
    - read() returns the bytes it received before the peer closed the connection (pyserial
      raises and drops them); the next read() raises SerialException("socket disconnected");
    - open() does not flush input (the firmware may send its first bytes at once);
    - close() does not sleep 0.3 s (meant for quick reconnects; each run has its own port)."""

    _opening = False
    _eof = False

    def read(self, size=1):
        if not self.is_open:
            raise PortNotOpenError()
        data = bytearray()
        timeout = Timeout(self._timeout)
        while len(data) < size and not self._eof:
            ready, _, _ = select.select([self._socket], [], [], timeout.time_left())
            if not ready:
                break
            try:
                chunk = self._socket.recv(size - len(data))
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:  # e.g. reset by a peer that died with unread input
                if not data:
                    raise SerialException(f"read failed: {e}") from None
                chunk = b""
            if not chunk:
                self._eof = True
                break
            data += chunk
            if timeout.expired():
                break
        if not data and self._eof and size > 0:
            raise SerialException("socket disconnected")
        return bytes(data)

    def open(self):
        self._opening = True
        try:
            super().open()
        finally:
            self._opening = False

    def reset_input_buffer(self):
        if not self._opening:
            super().reset_input_buffer()

    def close(self):
        if self.is_open and self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._socket.close()
            self._socket = None
        self.is_open = False


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (a start-up retry covers a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_fault(text: str) -> str | None:
    """The first BNN-FAULT line in `text`, or None."""
    m = re.search(re.escape(FAULT_MARKER.decode()) + r"[^\r\n]*", text)
    return m.group(0).strip() if m else None


class SerialProcess:
    """A process serving a firmware's byte stream on 127.0.0.1:PORT. Subclasses give the
    command line; use as a context manager, which yields the connected serial object."""

    #: A line the process prints when its port was taken between our probe and its bind.
    port_busy_pattern = re.compile(r"[Aa]ddress already in use")

    def __init__(self, name: str, *, read_timeout: float = 5.0, write_timeout: float = 30.0,
                 connect_timeout: float = CONNECT_TIMEOUT, stop_timeout: float = STOP_TIMEOUT,
                 keep_files: bool = False):
        self.name = name  # for messages, e.g. "QEMU mps2-an386"
        self.read_timeout = read_timeout
        # For one write() call: host -> guest runs at only ~4-15 KiB/s on the QEMU boards.
        self.write_timeout = write_timeout
        self.connect_timeout = connect_timeout
        self.stop_timeout = stop_timeout
        self.keep_files = keep_files
        self.serial: SocketSerial | None = None
        self.port: int | None = None
        self.exit_code: int | None = None
        self.fault: str | None = None
        self.start_seconds: float | None = None  # from launch to a connected serial
        self._proc: subprocess.Popen | None = None
        self._dir: Path | None = None
        self._stopped_by_us = False
        self._exit_collected = False
        self._finished = False
        self._output = ""
        self._serial_log = ""

    # --- what subclasses provide ------------------------------------------------------------
    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def serial_log_path(self) -> Path | None:
        """A file where the process copies what the firmware wrote, if it keeps one."""
        return None

    def collect_results(self) -> None:
        """Called once the process has ended (e.g. read a counts file)."""

    # --- life cycle ----------------------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="bnn-run-"))
        return self._dir

    def __enter__(self):
        t0 = time.monotonic()
        try:
            for attempt in range(3):
                self.port = free_tcp_port()
                self._launch(self.command(self.port))
                try:
                    self.serial = self._connect()
                    break
                except _PortBusy:
                    self._reap()
                    if attempt == 2:
                        raise TargetError(f"{self.name}: no free TCP port after 3 tries") from None
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self.serial

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, (SerialException, OSError)):
            self._await_end()
        self.stop()
        problem = self._problem()
        # A failure of the link (or none) is explained by what happened to the process; any
        # other exception from the caller's code is left as it is.
        if problem and (exc is None or isinstance(exc, (TargetError, SerialException, OSError))):
            raise TargetError(problem) from exc
        return False

    def _launch(self, cmd: list[str]) -> None:
        self._out_path = self.workdir / "output.txt"
        exe = cmd[0]
        if shutil.which(exe) is None and not Path(exe).is_file():
            raise TargetError(self.missing_program_message(exe))
        with open(self._out_path, "wb") as out:
            # Output goes to a file, not a pipe: a full pipe could block the process.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self._stopped_by_us = False
        self._exit_collected = False
        self._finished = False
        self.exit_code = None

    def missing_program_message(self, exe: str) -> str:
        return f"{self.name}: cannot run {exe}: file not found"

    def _connect(self) -> SocketSerial:
        deadline = time.monotonic() + self.connect_timeout
        url = f"socket://127.0.0.1:{self.port}"
        while True:
            code = self._proc.poll()
            if code is not None:
                if self.port_busy_pattern.search(self._read_output()):
                    raise _PortBusy()
                raise TargetError(f"{self.name} exited with code {code} before its serial port "
                                  f"accepted a connection{self._tail()}")
            try:
                return SocketSerial(url, timeout=self.read_timeout,
                                    write_timeout=self.write_timeout)
            except SerialException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TargetError(f"{self.name} did not open its serial port {url} within "
                                      f"{self.connect_timeout:.0f} s{self._tail()}") from None
                time.sleep(0.005)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the firmware to end by itself; its exit code. A fault, a lock-up or no exit
        within `timeout` seconds is a TargetError."""
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TargetError(f"{self.name} did not exit within {timeout:g} s "
                              f"(the firmware hangs or waits for input){self._tail()}") from None
        self._finish(code)
        self._exit_collected = True
        problem = self._problem()
        if problem:
            raise TargetError(problem)
        return code

    def check(self) -> None:
        """Raise a TargetError if the process has ended on its own (for clearer errors when a
        read times out); do nothing while it runs."""
        if self._proc is not None and self._proc.poll() is not None:
            self._finish(self._proc.returncode)
            problem = self._problem() or (f"{self.name} exited with code {self.exit_code}"
                                          f"{self._tail()}")
            raise TargetError(problem)

    def read_until(self, terminator: bytes = b"\n", timeout: float = 5.0,
                   what: str = "reply") -> bytes:
        """Read up to and including `terminator`; a TargetError after `timeout` seconds or
        when the process ends first."""
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while not buf.endswith(terminator):
            left = deadline - time.monotonic()
            if left <= 0:
                self.check()
                raise TargetError(f"{self.name}: no {what} within {timeout:g} s "
                                  f"(got {bytes(buf[-80:])!r})")
            self.serial.timeout = min(left, 0.2)
            try:
                chunk = self.serial.read(1)
            except SerialException as e:
                self._await_end()
                self.check()
                raise TargetError(f"{self.name}: serial link lost: {e}") from None
            if not chunk:
                self.check()
            buf += chunk
        self.serial.timeout = self.read_timeout
        return bytes(buf)

    def _await_end(self, timeout: float = 1.0) -> None:
        """The link broke: give the process a moment to finish dying, so that the error can
        say why (killed, fault) instead of a bare "connection reset"."""
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        """Close the link and end the process: SIGTERM, then SIGKILL, each with a bounded wait."""
        if self._proc is not None and self._proc.poll() is None:
            self._stopped_by_us = True  # closing the link may end it too (the host build)
        if self.serial is not None:
            try:
                self.serial.close()
            except (OSError, SerialException):
                pass
        if self._proc is None:
            return
        if self._proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self._proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self._proc.wait(timeout=self.stop_timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._proc.poll() is None:  # cannot happen after SIGKILL, unless the kernel hangs
            raise TargetError(f"{self.name} (pid {self._proc.pid}) survived SIGKILL")
        self._finish(self._proc.returncode)

    def _finish(self, code: int) -> None:
        if self._finished:
            return
        self._finished = True
        self.exit_code = code
        self._output = self._read_output()
        log = self.serial_log_path()
        if log is not None and log.exists():
            self._serial_log = log.read_bytes().decode("latin-1")
        self.fault = parse_fault(self._serial_log) or parse_fault(self._output)
        self.collect_results()
        if not self.keep_files and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _reap(self) -> None:
        self._proc.wait(timeout=self.stop_timeout)
        self._proc = None

    def _read_output(self) -> str:
        try:
            return self._out_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return self._output

    @property
    def output(self) -> str:
        """What the process printed (stdout and stderr)."""
        return self._output or self._read_output()

    @property
    def serial_log(self) -> str:
        """What the firmware wrote to its serial port, when the process keeps a copy."""
        return self._serial_log

    def _tail(self) -> str:
        lines = (self._output or self._read_output()).splitlines()
        text = "\n".join(ln for ln in lines if not _NOISE.search(ln)).strip()
        return f"; last output: {text[-_TAIL:]}" if text else ""

    def _problem(self) -> str | None:
        """What went wrong with a process that has ended, or None if nothing did."""
        code = self.exit_code
        if code is None:
            return None
        if code == FAULT_EXIT_CODE or self.fault:
            return f"{self.name}: firmware fault: {self.fault or 'no report'} (exit code {code})"
        lockup = re.search(r"fatal: (Lockup[^\n]*)", self._output)
        if lockup or code == LOCKUP_EXIT_CODE:
            pc = re.search(r"R15=([0-9a-f]{8})", self._output)
            return (f"{self.name}: the core locked up (exit code {LOCKUP_EXIT_CODE}: a fault with "
                    f"no working handler, e.g. a bad stack pointer or vector table): "
                    f"{lockup.group(1) if lockup else 'lockup'}"
                    f"{f' at pc=0x{pc.group(1)}' if pc else ''}")
        if self._stopped_by_us:
            return None
        if code < 0:
            return (f"{self.name} was killed by signal {-code} "
                    f"({signal.Signals(-code).name}){self._tail()}")
        if code != 0 and not self._exit_collected:
            return f"{self.name} exited unexpectedly with code {code}{self._tail()}"
        return None


class _PortBusy(Exception):
    pass


class HostProcess(SerialProcess):
    """The host build (host.elf from build_firmware("host", ...)) serving 127.0.0.1:PORT."""

    port_busy_pattern = re.compile(r"cannot listen on 127\.0\.0\.1: Address already in use")

    def __init__(self, exe, *, bulk: bytes | os.PathLike | None = None, **kw):
        super().__init__("host firmware", **kw)
        self.exe = Path(exe)
        self.bulk = bulk

    def command(self, port: int) -> list[str]:
        cmd = [str(self.exe), "--port", str(port)]
        if self.bulk is not None:
            cmd += ["--bulk", str(bulk_file(self.bulk, self.workdir))]
        return cmd

    def missing_program_message(self, exe: str) -> str:
        return f"host firmware {exe} does not exist: build it with build_firmware('host', ...)"


def bulk_file(bulk: bytes | os.PathLike, workdir: Path) -> Path:
    """`bulk` as a file: written to workdir when given as bytes."""
    if isinstance(bulk, (bytes, bytearray, memoryview)):
        path = workdir / "bulk.bin"
        path.write_bytes(bytes(bulk))
        return path
    path = Path(bulk)
    if not path.is_file():
        raise TargetError(f"bulk file {path} does not exist")
    return path
