"""Ports, the firmware build and the launchers, on the host build and every QEMU board.

Each target runs tests/fixtures/port_selftest.c (built with APP=), which answers one-byte
commands: the tests check the UART both ways, the board identity, the counter, the stack
high-water mark, the bulk region, the semihosting exit code, the fault report, and that the
instruction-counting plugin is exact and repeatable. Then the failure paths: a QEMU that cannot
start, is killed, never answers or never exits becomes a TargetError, quickly.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bnn_mcu.errors import TargetError
from bnn_mcu.resources import firmware_dir
from bnn_mcu.targets import boards, build, host, qemu
from bnn_mcu.targets.boards import BOARDS, FAULT_EXIT_CODE, QEMU_BOARDS, get_board
from bnn_mcu.targets.build import build_firmware
from bnn_mcu.targets.qemu import QemuProcess, start_target

SELFTEST = Path(__file__).parent / "fixtures" / "port_selftest.c"
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="needs qemu-system-arm and arm-none-eabi-gcc "
                               "(apt-get install qemu-system-arm gcc-arm-none-eabi "
                               "libnewlib-arm-none-eabi)")
ALL_TARGETS = [pytest.param(n, marks=() if n == "host" else (needs_arm, pytest.mark.qemu))
               for n in BOARDS]
QEMU_TARGETS = [pytest.param(n, marks=(needs_arm, pytest.mark.qemu)) for n in QEMU_BOARDS]


@pytest.fixture(scope="module")
def elfs(tmp_path_factory):
    """The self-test built for every target this machine can build for."""
    root = tmp_path_factory.mktemp("selftest")
    targets = [n for n in BOARDS if n == "host" or HAVE_ARM]
    with ThreadPoolExecutor(max_workers=4) as pool:
        built = pool.map(lambda n: build_firmware(n, None, root / n, app=SELFTEST, runtime=False,
                                                 jobs=2), targets)
        return dict(zip(targets, built))


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


class SelfTest:
    """A running self-test: its launcher and serial port, banner already read."""

    def __init__(self, target, elf, **kw):
        self.proc = start_target(target, elf, **kw)

    def __enter__(self):
        self.ser = self.proc.__enter__()
        assert self.proc.read_until(timeout=10) == b"SELFTEST READY\n"
        return self

    def __exit__(self, *exc):
        return self.proc.__exit__(*exc)

    def ask(self, cmd: bytes, timeout: float = 10.0) -> list[str]:
        self.ser.write(cmd)
        return self.proc.read_until(timeout=timeout).decode().split()

    def exit(self, code: int) -> int:
        self.ser.write(b"x" + bytes([code]))
        return self.proc.wait(timeout=10)


def read_exactly(proc, n: int, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        assert time.monotonic() < deadline, f"got {len(buf)} of {n} bytes"
        proc.serial.timeout = 0.2
        buf += proc.serial.read(n - len(buf))
    return bytes(buf)


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


# --- boards.py and the generated port files ----------------------------------------------------

def test_generated_port_files_are_up_to_date():
    ports = firmware_dir() / "ports"
    for board in BOARDS.values():
        for rel, text in boards.generated_port_files(board).items():
            assert (ports / rel).read_text() == text, \
                f"{rel} is stale: run python -m bnn_mcu.targets.boards"


def test_board_table_is_consistent():
    for b in BOARDS.values():
        if b.is_host:
            continue
        assert b.qemu_machine and b.cflags[0] == f"-mcpu={b.core}"
        assert b.real_ram_size <= b.ram_region(emulated=True).size
        # The bulk region overlaps neither the code nor the RAM the program uses.
        for r in (b.code_region(True), b.ram_region(True)):
            assert b.bulk.end <= r.base or b.bulk.base >= r.end
        assert b.stack_size < b.ram.size


def test_unknown_board_is_a_clear_error():
    with pytest.raises(TargetError, match="unknown target 'mps9'.*mps2-an385"):
        get_board("mps9")


# --- build ---------------------------------------------------------------------------------------

def test_missing_cross_compiler_names_the_package(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(build.shutil, "which", lambda n: None if "arm-none-eabi" in n else real(n))
    with pytest.raises(TargetError, match="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        build_firmware("mps2-an386", None, "/nonexistent", app=SELFTEST)


def test_missing_qemu_names_the_package(monkeypatch, tmp_path):
    elf = tmp_path / "x.elf"
    elf.write_bytes(b"")
    monkeypatch.setattr(host.shutil, "which", lambda n: None)
    with pytest.raises(TargetError, match="qemu-system-arm not found: apt-get install qemu-system-arm"):
        with QemuProcess("mps2-an385", elf):
            pass


def test_compile_error_shows_the_compiler_message(tmp_path):
    bad = tmp_path / "bad_app.c"
    bad.write_text("int main(void)\n{\n    return undeclared_thing;\n}\n")
    with pytest.raises(TargetError) as e:
        build_firmware("host", None, tmp_path / "out", app=bad, runtime=False)
    msg = str(e.value)
    assert "firmware build for host failed" in msg
    assert "bad_app.c:3" in msg and "undeclared_thing" in msg


@needs_arm
def test_ram_overflow_on_the_real_part_is_a_link_error(tmp_path):
    big = tmp_path / "port_big_app.c"
    big.write_text("#include <stdint.h>\n#include \"bnn_port.h\"\n"
                   "static volatile uint8_t arena[20000];\n"
                   "int main(void) { arena[0] = 1; return arena[19999]; }\n")
    with pytest.raises(TargetError, match="RAM overflow"):
        build_firmware("microbit", None, tmp_path / "real", app=big, runtime=False)
    # The emulated micro:bit has room for it.
    assert build_firmware("microbit", None, tmp_path / "emu", app=big, runtime=False,
                          emulated_memory=True).is_file()


def test_rebuild_is_skipped_unless_something_changed(tmp_path):
    def build(opt="-O2"):
        return build_firmware("host", None, tmp_path, opt=opt, app=SELFTEST, runtime=False)

    stamp = build().stat().st_mtime_ns
    assert build().stat().st_mtime_ns == stamp
    assert build(opt="-Os").stat().st_mtime_ns != stamp


# --- every target: the self-test -----------------------------------------------------------------

@pytest.mark.parametrize("target", ALL_TARGETS)
def test_port_selftest(target, elfs):
    board = get_board(target)
    bulk = random.Random(target).randbytes(48 * 1024)
    with SelfTest(target, elfs[target], bulk=bulk) as st:
        info = dict(kv.split("=", 1) for kv in st.ask(b"i")[1:])
        assert info["board"] == target
        assert info["core"] == (board.core if not board.is_host else info["core"])
        assert int(info["clock"]) == board.clock_hz
        assert info["unit"] == board.counter_unit and int(info["hz"]) == board.counter_hz
        if board.is_host:
            assert int(info["size"]) == len(bulk)
        else:
            assert int(info["bulk"], 16) == board.bulk.base and int(info["size"]) == board.bulk.size

        # UART, host -> guest -> host, reading while a second thread writes.
        data = random.Random(1).randbytes(4096)
        st.ser.write(b"e" + u32(len(data)))
        writer = threading.Thread(target=lambda: [st.ser.write(data[i:i + 256])
                                                  for i in range(0, len(data), 256)])
        writer.start()
        echoed = read_exactly(st.proc, len(data))
        writer.join(timeout=20)
        assert echoed == data
        # Guest -> host at full speed.
        n = 32 * 1024
        st.ser.write(b"g" + u32(n))
        assert read_exactly(st.proc, n) == bytes((i * 7 + 3) & 0xFF for i in range(n))

        c0, c1 = map(int, st.ask(b"c")[1:])
        assert (c1 - c0) % 2**32 > 0, "counter does not advance"

        before, after = map(int, st.ask(b"s")[1:])
        # The 1 KB buffer lies deeper than anything before it on the boards; on the host,
        # libc may already have gone deeper than the buffer.
        assert 0 < before < after < board.stack_size and after >= 1024

        assert int(st.ask(b"b" + u32(len(bulk)))[1], 16) == fnv1a(bulk)
        assert st.exit(42) == 42
    assert st.proc.exit_code == 42 and st.proc.fault is None


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_fault_is_reported_with_pc_and_lr(target, elfs):
    st = SelfTest(target, elfs[target])
    with pytest.raises(TargetError, match=r"firmware fault: BNN-FAULT") as e:
        with st:
            st.ser.write(b"f")
            st.proc.wait(timeout=10)
    assert st.proc.exit_code == FAULT_EXIT_CODE
    if target != "host":
        assert "hardfault" in str(e.value) or "usagefault" in str(e.value)
        assert " pc=0x" in st.proc.fault and " lr=0x" in st.proc.fault


@needs_arm
def test_bus_fault_on_an_invalid_address(elfs):
    st = SelfTest("mps2-an385", elfs["mps2-an385"])
    with pytest.raises(TargetError, match=r"BNN-FAULT hardfault .*bfar=0xfffffff0"):
        with st:
            st.ser.write(b"r" + u32(0xFFFFFFF0))
            st.proc.wait(timeout=10)


# --- exact instruction counts ----------------------------------------------------------------------

def _count_loops(target, elf, ns):
    with SelfTest(target, elf, count_instructions=True) as st:
        for n in ns:
            assert st.ask(b"m" + u32(n))[0] == "marked"
        st.exit(0)
    return st.proc.counts


@pytest.mark.parametrize("target", QEMU_TARGETS)
def test_instruction_counts_are_exact_and_repeatable(target, elfs):
    ns = (10, 1000, 50_000)
    first = _count_loops(target, elfs[target], ns)
    second = _count_loops(target, elfs[target], ns)
    regions = first.deltas[0::2]  # mark(0) -> mark(1) of each command
    # By hand: bnn_port_mark's "bx lr", "mov r0, r4", 2 per iteration, "movs r0, #1", "bl".
    assert regions == tuple(2 * n + 4 for n in ns)
    assert second.deltas[0::2] == regions
    assert first.total >= first.marks[-1] > 0


@needs_arm
@pytest.mark.qemu
def test_icount_mode_makes_the_board_timer_deterministic(elfs):
    def ticks():
        with SelfTest("mps2-an386", elfs["mps2-an386"], icount_shift=10) as st:
            c = [int(v) for _ in range(3) for v in st.ask(b"c")[1:]]
            st.exit(0)
        return [b - a for a, b in zip(c[0::2], c[1::2])]

    first, second = ticks(), ticks()
    assert first == second and first[0] > 0
    assert len(set(first)) == 1  # the same loop, the same number of ticks


@needs_arm
@pytest.mark.qemu
def test_instruction_counts_stay_exact_under_icount(elfs):
    # Under -icount QEMU re-translates blocks cut short by I/O: per-block counting would
    # overcount there, the plugin's per-instruction counting must not.
    with SelfTest("mps2-an500", elfs["mps2-an500"], icount_shift=3, count_instructions=True) as st:
        for n in (7, 3000):
            st.ask(b"c")  # timer reads: I/O inside translation blocks
            st.ask(b"m" + u32(n))
        st.exit(0)
    assert st.proc.counts.deltas[0::2] == (2 * 7 + 4, 2 * 3000 + 4)


# --- failure paths: all bounded ---------------------------------------------------------------------

@needs_arm
def test_qemu_that_cannot_start_is_a_clear_error(elfs):
    t0 = time.monotonic()
    with pytest.raises(TargetError, match=r"QEMU mps2-an385 exited with code 1 before .*-no-such-option"):
        with QemuProcess("mps2-an385", elfs["mps2-an385"], extra_args=("-no-such-option",)):
            pass
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("target", ["host", pytest.param("mps2-an505", marks=needs_arm)])
def test_killed_mid_run_is_a_clear_error(target, elfs):
    st = SelfTest(target, elfs[target])
    with pytest.raises(TargetError, match=r"killed by signal 9 \(SIGKILL\)"):
        with st:
            os.kill(st.proc.pid, signal.SIGKILL)
            st.ask(b"i")


@pytest.mark.parametrize("target", ["host", pytest.param("mps2-an386", marks=needs_arm)])
def test_firmware_that_exits_early_is_a_clear_error(target, elfs):
    st = SelfTest(target, elfs[target])
    with pytest.raises(TargetError, match=r"exited unexpectedly with code 3"):
        with st:
            st.ser.write(b"x\x03")
            st.ask(b"i")  # the answer never comes: the firmware has gone


@pytest.mark.parametrize("target", ["host", pytest.param("microbit", marks=needs_arm)])
def test_a_device_that_never_answers_times_out(target, elfs):
    t0 = time.monotonic()
    with SelfTest(target, elfs[target]) as st:
        with pytest.raises(TargetError, match=r"no reply within 0.5 s"):
            st.ask(b"?", timeout=0.5)  # unknown command: no answer
        with pytest.raises(TargetError, match=r"did not exit within 0.5 s"):
            st.proc.wait(timeout=0.5)
    assert time.monotonic() - t0 < 8
    assert not st.proc.running


@pytest.mark.parametrize("target", [pytest.param("microbit", marks=needs_arm),
                                    pytest.param("mps3-an547", marks=needs_arm)])
def test_lockup_is_a_clear_error(target, elfs):
    st = SelfTest(target, elfs[target])
    with pytest.raises(TargetError, match=r"locked up \(exit code 134.*Lockup.* at pc=0x"):
        with st:
            st.ser.write(b"L")  # a fault with the stack pointer in unmapped memory
            st.proc.wait(timeout=10)


def test_bulk_larger_than_the_region_is_refused(elfs, tmp_path):
    if not HAVE_ARM:
        pytest.skip("needs arm-none-eabi-gcc")
    with pytest.raises(TargetError, match="does not fit"):
        with QemuProcess("mps3-an547", elfs["mps3-an547"], bulk=bytes(16 * 1024 * 1024 + 1)):
            pass


def test_socket_serial_keeps_the_bytes_sent_before_the_peer_closed():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as srv:
        ser = host.SocketSerial(f"socket://127.0.0.1:{srv.getsockname()[1]}", timeout=2)
        conn, _ = srv.accept()
        conn.sendall(b"last words")
        conn.close()
        assert ser.read(100) == b"last words"  # plain pyserial raises and drops them
        with pytest.raises(host.SerialException, match="disconnected"):
            ser.read(1)
        ser.close()


def test_host_port_stdio_mode(elfs):
    p = subprocess.run([str(elfs["host"]), "--stdio"], input=b"ix\x05", capture_output=True,
                       timeout=10)
    assert p.returncode == 5
    assert p.stdout.startswith(b"SELFTEST READY\ninfo board=host ")


def test_plugin_builds_once_into_the_cache(tmp_path, monkeypatch):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    so = qemu.icount_plugin()
    assert so.is_file() and str(so).startswith(str(tmp_path))
    mtime = so.stat().st_mtime_ns
    assert qemu.icount_plugin().stat().st_mtime_ns == mtime
