"""Every target bnn-mcu builds for: the single source of truth.

Codegen, the firmware build, the QEMU launcher, PlatformIO projects and memory reports read
their facts from here. The per-board C header and make fragment under firmware/ports/<board>/
(board.h, board.mk) are generated from this table (`python -m bnn_mcu.targets.boards`), and a
test checks that they are up to date.

Memory maps were read from QEMU 7.2 (`info mtree -f`); "real" sizes are those of the part a
user holds. Counters run at the rates measured under QEMU (see TARGETS.md); on real silicon the
firmware switches to DWT->CYCCNT cycles when that counter runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import TargetError

#: Exit code of a firmware that took a fault (HardFault handler, or a signal on the host).
FAULT_EXIT_CODE = 250
#: QEMU's exit code when the emulated core locks up (a fault inside the fault handler).
LOCKUP_EXIT_CODE = 134
#: First characters of the one line a fault handler writes.
FAULT_MARKER = b"BNN-FAULT"
#: Word painted over the stack at reset, for the high-water mark.
STACK_PAINT = 0xA5A5A5A5
#: Symbol whose first instruction the instruction-counting plugin watches.
MARK_SYMBOL = "bnn_port_mark"


@dataclass(frozen=True)
class Region:
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size

    def __str__(self) -> str:
        return f"0x{self.base:08x}+{_kib(self.size)}"


@dataclass(frozen=True)
class Uart:
    kind: str  # "cmsdk", "nrf51" or "socket" (host)
    base: int = 0


@dataclass(frozen=True)
class Counter:
    """A free-running 32-bit counter the port reads (when DWT->CYCCNT does not run)."""

    kind: str  # "mmio" (a register that counts up), "nrf51-timer" or "host"
    addr: int = 0  # the counting register
    hz: int = 0  # its rate under QEMU
    enable_addr: int = 0  # for "mmio": a register to OR `enable_value` into at start
    enable_value: int = 0


@dataclass(frozen=True)
class Board:
    name: str
    core: str  # gcc's -mcpu name, e.g. "cortex-m4"
    arch: str  # e.g. "armv7e-m"; "host" for the host build
    cflags: tuple[str, ...]  # core flags for arm-none-eabi-gcc
    qemu_machine: str | None
    clock_hz: int  # core clock of the board
    code: Region | None  # where code and constants are linked (None: host)
    ram: Region | None  # where data, bss and the stack go
    real_code_size: int  # of the physical part, for memory reports
    real_ram_size: int
    uart: Uart
    counter: Counter
    bulk: Region | None  # RAM the program never uses; QEMU preloads test vectors here
    stack_size: int = 16 * 1024
    fpu: bool = False
    dsp: bool = False  # __ARM_FEATURE_DSP
    mve: bool = False  # Helium
    #: Larger memories the emulator is given (--global), for test models bigger than the part.
    emulated_code: Region | None = None
    emulated_ram: Region | None = None
    qemu_args: tuple[str, ...] = field(default=())
    notes: str = ""

    @property
    def is_host(self) -> bool:
        return self.qemu_machine is None

    @property
    def counter_unit(self) -> str:
        """What bnn_port_counter() counts under QEMU / on the host."""
        return "ticks"

    @property
    def counter_hz(self) -> int:
        return self.counter.hz

    def code_region(self, emulated: bool = False) -> Region | None:
        return self.emulated_code if (emulated and self.emulated_code) else self.code

    def ram_region(self, emulated: bool = False) -> Region | None:
        return self.emulated_ram if (emulated and self.emulated_ram) else self.ram


def _kib(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n % (1024 * 1024) == 0 else f"{n // 1024} KB"


KB = 1024
MB = 1024 * 1024
_THUMB = ("-mthumb", "-masm-syntax-unified")


def _mps2(name: str, core: str, arch: str, fp: tuple[str, ...], bulk_base: int, **kw) -> Board:
    """The three MPS2 FPGA images with the classic CMSDK layout (code 0, RAM 0x20000000)."""
    return Board(
        name=name, core=core, arch=arch, cflags=(f"-mcpu={core}", *fp, *_THUMB),
        qemu_machine=name, clock_hz=25_000_000,
        code=Region(0x00000000, 4 * MB), ram=Region(0x20000000, 4 * MB),
        real_code_size=4 * MB, real_ram_size=4 * MB,
        uart=Uart("cmsdk", 0x40004000),
        # FPGAIO COUNTER: counts up at 25 MHz while PRESCALE is 0 (its reset value).
        counter=Counter("mmio", addr=0x40028018, hz=25_000_000),
        bulk=Region(bulk_base, 16 * MB),  # the 16 MB PSRAM
        **kw)


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board(
        name="host", core="host", arch="host", cflags=(), qemu_machine=None, clock_hz=0,
        code=None, ram=None, real_code_size=0, real_ram_size=0,
        uart=Uart("socket"), counter=Counter("host", hz=1_000_000_000), bulk=None,
        stack_size=1 * MB,
        notes="Linux executable; serial on a TCP socket (--port) or stdin/stdout (--stdio); "
              "bulk region from a file (--bulk); counter = CLOCK_MONOTONIC nanoseconds"),
    _mps2("mps2-an385", "cortex-m3", "armv7-m", ("-mfloat-abi=soft",), 0x21000000),
    _mps2("mps2-an386", "cortex-m4", "armv7e-m", ("-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
          0x21000000, fpu=True, dsp=True),
    _mps2("mps2-an500", "cortex-m7", "armv7e-m", ("-mfpu=fpv5-d16", "-mfloat-abi=hard"),
          0x60000000, fpu=True, dsp=True),
    Board(
        name="mps2-an505", core="cortex-m33", arch="armv8-m.main",
        cflags=("-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard", *_THUMB),
        qemu_machine="mps2-an505", clock_hz=20_000_000,
        # Secure aliases: the core resets in Secure state with VTOR at 0x10000000.
        code=Region(0x10000000, 4 * MB), ram=Region(0x38000000, 4 * MB),
        real_code_size=4 * MB, real_ram_size=4 * MB,
        uart=Uart("cmsdk", 0x50200000),
        counter=Counter("mmio", addr=0x50302018, hz=20_000_000),
        bulk=Region(0x80000000, 16 * MB),  # PSRAM
        fpu=True, dsp=True),
    Board(
        name="mps3-an547", core="cortex-m55", arch="armv8.1-m.main",
        cflags=("-mcpu=cortex-m55", "-mfloat-abi=hard", *_THUMB),
        qemu_machine="mps3-an547", clock_hz=32_000_000,
        code=Region(0x00000000, 512 * KB), ram=Region(0x20000000, 512 * KB),  # ITCM, DTCM
        real_code_size=512 * KB, real_ram_size=512 * KB,
        uart=Uart("cmsdk", 0x59303000),
        # System counter CNTCV (64-bit, low word read), enabled through CNTCR.EN.
        counter=Counter("mmio", addr=0x58100008, hz=32_000_000,
                        enable_addr=0x58100000, enable_value=1),
        bulk=Region(0x60000000, 16 * MB),  # start of the DDR
        fpu=True, dsp=True, mve=True),
    Board(
        name="microbit", core="cortex-m0", arch="armv6-m",
        cflags=("-mcpu=cortex-m0", "-mfloat-abi=soft", *_THUMB),
        qemu_machine="microbit", clock_hz=16_000_000,
        code=Region(0x00000000, 256 * KB), ram=Region(0x20000000, 16 * KB),  # nRF51822
        real_code_size=256 * KB, real_ram_size=16 * KB,
        uart=Uart("nrf51", 0x40002000),
        counter=Counter("nrf51-timer", addr=0x40008000, hz=16_000_000),
        # Emulation only: flash enlarged to 32 MB, test vectors in its upper half.
        bulk=Region(0x01000000, 16 * MB),
        stack_size=2 * KB,
        emulated_code=Region(0x00000000, 16 * MB), emulated_ram=Region(0x20000000, 256 * KB),
        qemu_args=("-global", "nrf51-soc.flash-size=0x2000000",
                   "-global", "nrf51-soc.sram-size=0x40000"),
        notes="real part: 256 KB flash, 16 KB RAM; QEMU is given 32 MB flash / 256 KB RAM so "
              "that bigger test models (built with emulated memory) and the bulk region fit"),
)}

QEMU_BOARDS: tuple[str, ...] = tuple(n for n, b in BOARDS.items() if not b.is_host)


def get_board(name: str) -> Board:
    """The board called `name`, or a TargetError that lists the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise TargetError(f"unknown target '{name}': choose one of {', '.join(BOARDS)}") from None


# --- real boards, reached through a generated PlatformIO project (bnn_mcu/platformio) -------
# Facts from the vendors' data sheets and board manuals; the serial/cycle-counter glue for each
# framework is in firmware/ports/frameworks/. QEMU stands in for none of these: their projects
# are checked here for structure and compiled with the cross compiler, and run on real boards.

@dataclass(frozen=True)
class Stm32Uart:
    """The U(S)ART behind a board's serial port, for the STM32Cube glue."""

    instance: str  # HAL instance name: "USART2", "LPUART1", ...
    tx: str  # pin, e.g. "PA2"
    rx: str
    af: int  # GPIO alternate function number (unused on the F1, which has no AF mux)
    vddio2: bool = False  # port G on the STM32L5 is powered by VDDIO2: enable it first


@dataclass(frozen=True)
class RealBoard:
    name: str  # PlatformIO board id, also the env name
    title: str
    mcu: str
    core: str  # gcc's -mcpu name
    fpu: str | None  # gcc's -mfpu name of the part's FPU; None: no FPU
    max_clock_hz: int  # the part's top clock
    clock_hz: int  # the clock the runner runs at: the framework's default (STM32: reset clock)
    flash_size: int  # of the part (bytes)
    ram_size: int
    platform: str  # PlatformIO platform
    framework: str  # PlatformIO framework
    glue: str  # firmware/ports/frameworks/<glue>
    serial: str  # what the host opens, in words
    port_hint: str  # its usual device name on Linux
    upload_protocol: str | None = None  # None: the platform's default
    uart: Stm32Uart | None = None  # None: the framework's USB-CDC `Serial`
    baud: int = 115200  # UART boards (USB CDC ignores it)
    #: Flash and RAM the framework and the runner take besides the model (estimates).
    reserve_flash: int = 32 * KB
    reserve_ram: int = 8 * KB

    @property
    def counter(self) -> str:
        """What bnn_port_counter() reads: DWT->CYCCNT, or SysTick where there is no DWT."""
        return "systick" if self.core.startswith("cortex-m0") else "dwt"

    @property
    def cflags(self) -> tuple[str, ...]:
        """Core flags for arm-none-eabi-gcc (the PlatformIO platform picks its own ABI)."""
        fp = (f"-mfpu={self.fpu}", "-mfloat-abi=hard") if self.fpu else ("-mfloat-abi=soft",)
        return (f"-mcpu={self.core}", *fp, *_THUMB)


def _stm32(name, title, mcu, core, fpu, clocks, flash, ram, uart, **kw) -> RealBoard:
    return RealBoard(name=name, title=title, mcu=mcu, core=core, fpu=fpu, max_clock_hz=clocks[0],
                     clock_hz=clocks[1], flash_size=flash, ram_size=ram, platform="ststm32",
                     framework="stm32cube", glue="stm32cube", upload_protocol="stlink", uart=uart,
                     **kw)


_VCP = "ST-LINK virtual COM port"
REAL_BOARDS: dict[str, RealBoard] = {b.name: b for b in (
    _stm32("nucleo_f401re", "ST NUCLEO-F401RE", "STM32F401RET6", "cortex-m4", "fpv4-sp-d16",
           (84_000_000, 16_000_000), 512 * KB, 96 * KB, Stm32Uart("USART2", "PA2", "PA3", 7),
           serial=f"{_VCP} (USART2 on PA2/PA3)", port_hint="/dev/ttyACM0"),
    _stm32("nucleo_f746zg", "ST NUCLEO-F746ZG", "STM32F746ZGT6", "cortex-m7", "fpv5-sp-d16",
           (216_000_000, 16_000_000), 1 * MB, 320 * KB, Stm32Uart("USART3", "PD8", "PD9", 7),
           serial=f"{_VCP} (USART3 on PD8/PD9)", port_hint="/dev/ttyACM0"),
    _stm32("nucleo_l552ze_q", "ST NUCLEO-L552ZE-Q", "STM32L552ZET6Q", "cortex-m33",
           "fpv5-sp-d16", (110_000_000, 4_000_000), 512 * KB, 256 * KB,
           Stm32Uart("LPUART1", "PG7", "PG8", 8, vddio2=True),
           serial=f"{_VCP} (LPUART1 on PG7/PG8)", port_hint="/dev/ttyACM0"),
    _stm32("bluepill_f103c8", "Blue Pill (STM32F103C8)", "STM32F103C8T6", "cortex-m3", None,
           (72_000_000, 8_000_000), 64 * KB, 20 * KB, Stm32Uart("USART1", "PA9", "PA10", 0),
           serial="USART1 on PA9 (TX) / PA10 (RX) through a 3.3 V USB-serial adapter",
           port_hint="/dev/ttyUSB0", reserve_flash=24 * KB, reserve_ram=6 * KB),
    RealBoard(name="nano33ble", title="Arduino Nano 33 BLE", mcu="nRF52840", core="cortex-m4",
              fpu="fpv4-sp-d16", max_clock_hz=64_000_000, clock_hz=64_000_000,
              flash_size=1 * MB, ram_size=256 * KB,
              platform="nordicnrf52", framework="arduino", glue="arduino",
              serial="native USB (CDC)", port_hint="/dev/ttyACM0",
              reserve_flash=192 * KB, reserve_ram=64 * KB),
    RealBoard(name="pico", title="Raspberry Pi Pico", mcu="RP2040", core="cortex-m0plus",
              fpu=None, max_clock_hz=133_000_000, clock_hz=125_000_000,
              flash_size=2 * MB, ram_size=264 * KB,
              platform="raspberrypi", framework="arduino", glue="arduino",
              serial="native USB (CDC)", port_hint="/dev/ttyACM0",
              reserve_flash=192 * KB, reserve_ram=64 * KB),
)}


# --- generated firmware files -------------------------------------------------------------

_GENERATED = "Generated from bnn_mcu/targets/boards.py by `python -m bnn_mcu.targets.boards`: " \
             "do not edit."


def render_board_h(board: Board) -> str:
    """firmware/ports/<board>/board.h: the facts the C port needs, as macros."""
    guard = "BNN_BOARD_H"
    lines = [f"/* {_GENERATED} */", f"#ifndef {guard}", f"#define {guard}", "",
             f'#define BNN_BOARD_NAME "{board.name}"',
             f'#define BNN_BOARD_CORE "{board.core}"',
             f"#define BNN_BOARD_CLOCK_HZ {board.clock_hz}u",
             f"#define BNN_FAULT_EXIT_CODE {FAULT_EXIT_CODE}",
             f"#define BNN_STACK_PAINT 0x{STACK_PAINT:08x}",
             f"#define BNN_COUNTER_HZ {board.counter.hz}u"]
    if not board.is_host:
        lines += ["", "/* Memory (emulated sizes when BNN_EMULATED_MEMORY is defined). */"]
        lines += _region_macros(board, emulated=False)
        if board.emulated_code or board.emulated_ram:
            lines += ["#ifdef BNN_EMULATED_MEMORY", *_region_macros(board, emulated=True),
                      "#endif"]
        lines += [f"#define BNN_BULK_BASE 0x{board.bulk.base:08x}u" if board.bulk else
                  "#define BNN_BULK_BASE 0u",
                  f"#define BNN_BULK_SIZE 0x{board.bulk.size:08x}u" if board.bulk else
                  "#define BNN_BULK_SIZE 0u",
                  "", f"#define BNN_UART_BASE 0x{board.uart.base:08x}u",
                  f"#define BNN_COUNTER_ADDR 0x{board.counter.addr:08x}u"]
        if board.counter.enable_addr:
            lines += [f"#define BNN_COUNTER_ENABLE_ADDR 0x{board.counter.enable_addr:08x}u",
                      f"#define BNN_COUNTER_ENABLE_VALUE 0x{board.counter.enable_value:x}u"]
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def _region_macros(board: Board, emulated: bool) -> list[str]:
    code, ram = board.code_region(emulated), board.ram_region(emulated)
    out = []
    if emulated:
        out = ["#undef BNN_CODE_BASE", "#undef BNN_CODE_SIZE", "#undef BNN_RAM_BASE",
               "#undef BNN_RAM_SIZE"]
    # No 'u' suffix: the linker script is preprocessed with these too.
    return out + [f"#define BNN_CODE_BASE 0x{code.base:08x}",
                  f"#define BNN_CODE_SIZE 0x{code.size:08x}",
                  f"#define BNN_RAM_BASE 0x{ram.base:08x}",
                  f"#define BNN_RAM_SIZE 0x{ram.size:08x}"]


#: Common port sources each UART / counter kind needs (relative to firmware/ports/common/).
_DRIVERS = {"cmsdk": "cortexm/uart_cmsdk.c", "mmio": "cortexm/counter_mmio.c"}


def render_board_mk(board: Board) -> str:
    """firmware/ports/<board>/board.mk: compiler and driver choices for the Makefile."""
    kind = "host" if board.is_host else "cortexm"
    drivers = [_DRIVERS[k] for k in (board.uart.kind, board.counter.kind) if k in _DRIVERS]
    return "\n".join([
        f"# {_GENERATED}",
        f"BOARD_KIND := {kind}",
        f"BOARD_CFLAGS := {' '.join(board.cflags)}",
        f"BOARD_COMMON_SRCS := {' '.join(drivers)}",
        f"BOARD_STACK_SIZE := {board.stack_size}",
        ""])


def generated_port_files(board: Board) -> dict[str, str]:
    """Relative path under firmware/ports/ -> content, for one board."""
    return {f"{board.name}/board.h": render_board_h(board),
            f"{board.name}/board.mk": render_board_mk(board)}


def write_port_files(ports_dir=None) -> list:
    """Regenerate every board.h / board.mk; returns the paths that changed."""
    from pathlib import Path

    from ..resources import firmware_dir

    root = Path(ports_dir) if ports_dir else firmware_dir() / "ports"
    changed = []
    for board in BOARDS.values():
        for rel, text in generated_port_files(board).items():
            path = root / rel
            if not path.exists() or path.read_text() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                changed.append(path)
    return changed


if __name__ == "__main__":
    for p in write_port_files():
        print(f"wrote {p}")
