"""`bnn-mcu generate MODEL --platformio [--board ID ...] -o PROJ`: a PlatformIO project.

    PROJ/platformio.ini                  one env per board: real boards (vendor platforms and
                                         frameworks) and QEMU boards (the local bnn-qemu platform)
    PROJ/src/main.c                      the vector runner (firmware/app/main.c)
    PROJ/lib/bnn_model/                  the model: bnn_model.c/.h, model.bnn (hash source)
    PROJ/lib/bnn_runtime/                kernels, serial protocol, public headers (bnn_port.h ...)
    PROJ/lib/bnn_port_<framework>/       serial and cycle-counter glue for the real boards of one
                                         framework (firmware/ports/frameworks/) + board.h
    PROJ/README.md                       envs, memory, the commands

The real-board facts live in bnn_mcu/targets/boards.py (REAL_BOARDS), the QEMU boards' in the
same file (BOARDS); QEMU envs take their port (start-up, linker script, UART, counter) from the
bnn-qemu platform's framework, i.e. firmware/ports, like firmware/Makefile. The same model
always gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import __version__
from ..codegen.generate import generate_model_sources
from ..codegen.project import _prepare_outdir, _write, check_budget
from ..errors import BnnError
from ..escape import ini_comment, markdown_text
from ..ir import bnnfile
from ..ir.ops import IntModel
from ..outputs import replacing_folder
from ..resources import firmware_dir, templates_dir
from ..summary import summary_table, totals
from ..targets.boards import (BOARDS, FAULT_EXIT_CODE, KB, QEMU_BOARDS, REAL_BOARDS, STACK_PAINT,
                              RealBoard)
from .pieces import platform_spec, write_platform
from .qemu_boards import FRAMEWORK, PLATFORM_NAME, env_name

#: First TCP port of the QEMU envs' UART servers (one port per board, in board-table order, so
#: an env keeps its port whichever boards a project has).
QEMU_BASE_PORT = 4441
#: Flash the runtime, the runner and the port take besides the model on a QEMU board (estimate).
QEMU_RESERVE_FLASH = 16 * KB
#: Generated folders under lib/ (cleared when a project is regenerated with --force).
LIB_PREFIX = "bnn_"


@dataclass(frozen=True)
class EnvSpec:
    """One env of the project: a real board, or a QEMU board served by bnn-qemu."""

    name: str
    real: RealBoard | None = None
    qemu: str | None = None  # bnn_mcu.targets.boards.BOARDS name

    @property
    def title(self) -> str:
        return self.real.title if self.real else f"QEMU {self.qemu}"

    @property
    def core(self) -> str:
        return self.real.core if self.real else BOARDS[self.qemu].core

    @property
    def flash_size(self) -> int:
        return self.real.flash_size if self.real else BOARDS[self.qemu].real_code_size

    @property
    def ram_size(self) -> int:
        return self.real.ram_size if self.real else BOARDS[self.qemu].real_ram_size

    @property
    def budget(self) -> tuple[int, int]:
        """KB of flash and RAM left for the model's constants and RAM."""
        if self.real:
            flash = self.real.flash_size - self.real.reserve_flash
            ram = self.real.ram_size - self.real.reserve_ram
        else:
            b = BOARDS[self.qemu]
            flash = b.real_code_size - QEMU_RESERVE_FLASH
            ram = b.real_ram_size - b.stack_size - 2 * KB
        return flash // KB, ram // KB

    @property
    def budget_text(self) -> str:
        return (f"{self.name} left after the framework and the runner, of "
                f"{self.flash_size // KB} KB flash and {self.ram_size // KB} KB RAM in all")


def supported_envs() -> list[str]:
    return [*REAL_BOARDS, *(env_name(b) for b in QEMU_BOARDS)]


def env_spec(name: str) -> EnvSpec:
    if name in REAL_BOARDS:
        return EnvSpec(name, real=REAL_BOARDS[name])
    qemu = {env_name(b): b for b in QEMU_BOARDS}
    if name in qemu:
        return EnvSpec(name, qemu=qemu[name])
    raise BnnError(f"unknown board {name!r}: choose from {', '.join(supported_envs())}")


def select_envs(model: IntModel, boards: list[str] | None) -> tuple[list[EnvSpec], list[str]]:
    """The envs to generate and, for the default set (boards=None), the notes on boards left
    out because the model does not fit them. A requested board the model does not fit is an
    error with the numbers."""
    requested = boards is not None
    names = list(dict.fromkeys(boards)) if requested else supported_envs()
    specs = [env_spec(n) for n in names]
    chosen, left_out = [], []
    for spec in specs:
        try:
            check_budget(model, *spec.budget, what=spec.budget_text)
        except BnnError as e:
            if requested:
                raise BnnError(f"{e}: pick a smaller model or another board") from None
            left_out.append(f"{spec.name}: {e}")
            continue
        chosen.append(spec)
    if not chosen:
        raise BnnError("the model fits none of the supported boards: " + "; ".join(left_out))
    return chosen, left_out


# --- files ---------------------------------------------------------------------------------------

def _jinja() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "platformio")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def _library_json(name: str, description: str, **extra) -> bytes:
    data = {"name": name, "version": __version__, "description": description,
            "keywords": ["bnn-mcu"], "license": "Apache-2.0", **extra}
    return (json.dumps(data, indent=2) + "\n").encode()


def board_macro(board: RealBoard) -> str:
    return "BNN_BOARD_" + board.name.upper()


def _hal_family(board: RealBoard) -> str:
    """"STM32F401RET6" -> "f4" (the HAL's header family)."""
    return board.mcu[5:7].lower()


def _board_defines(board: RealBoard) -> list[tuple[str, str]]:
    d = [("BNN_BOARD_NAME", f'"{board.name}"'), ("BNN_BOARD_CORE", f'"{board.core}"'),
         ("BNN_BOARD_CLOCK_HZ", f"{board.clock_hz}u"), ("BNN_BAUD", f"{board.baud}u")]
    if board.counter == "systick":
        d.append(("BNN_COUNTER_SYSTICK", "1"))
    u = board.uart
    if u is not None:
        family = _hal_family(board)
        d += [("BNN_HAL_HEADER", f'"stm32{family}xx_hal.h"'),
              ("BNN_UART_INSTANCE", u.instance), ("BNN_UART_IRQN", f"{u.instance}_IRQn"),
              ("BNN_UART_IRQ_HANDLER", f"{u.instance}_IRQHandler"),
              ("BNN_UART_CLK_ENABLE()", f"__HAL_RCC_{u.instance}_CLK_ENABLE()")]
        for end, pin in (("TX", u.tx), ("RX", u.rx)):
            d += [(f"BNN_UART_{end}_PORT", f"GPIO{pin[1]}"),
                  (f"BNN_UART_{end}_PIN", f"GPIO_PIN_{pin[2:]}"),
                  (f"BNN_UART_{end}_CLK_ENABLE()", f"__HAL_RCC_GPIO{pin[1]}_CLK_ENABLE()")]
        if family == "f1":
            d.append(("BNN_STM32_F1", "1"))  # no alternate-function mux: pins by mode
        else:
            d.append(("BNN_UART_AF", f"GPIO_AF{u.af}_{u.instance}"))
        d.append(("BNN_UART_VDDIO2", "1" if u.vddio2 else "0"))
    return d


def render_board_h(glue: str, boards: list[RealBoard]) -> str:
    """board.h of one framework's port library: a section per board of the project, chosen by
    the env's -D BNN_BOARD_<ID>."""
    lines = ["/* Generated by bnn-mcu from bnn_mcu/targets/boards.py (REAL_BOARDS): do not edit.",
             f" * The {glue} boards of this project; each env's build_flags define one",
             " * BNN_BOARD_<ID>. */",
             "#ifndef BNN_BOARD_H", "#define BNN_BOARD_H", "",
             f"#define BNN_FAULT_EXIT_CODE {FAULT_EXIT_CODE}",
             f"#define BNN_STACK_PAINT 0x{STACK_PAINT:08x}", ""]
    for i, board in enumerate(boards):
        lines.append(f"#{'if' if i == 0 else 'elif'} defined({board_macro(board)})")
        lines.append(f"/* {board.title}: {board.mcu}, {board.core}; serial: {board.serial} */")
        width = max(len(k) for k, _ in _board_defines(board))
        lines += [f"#define {k.ljust(width)} {v}" for k, v in _board_defines(board)]
    lines += ["#else",
              f'#error "no board selected: build through platformio.ini, whose {glue} envs define '
              'BNN_BOARD_<ID>"', "#endif", "", "#endif /* BNN_BOARD_H */", ""]
    return "\n".join(lines)


def _runtime_files() -> list[tuple[str, Path]]:
    """(path under lib/bnn_runtime, source) for the public headers and every runtime source."""
    fw = firmware_dir()
    files = [(f"include/{p.name}", p) for p in sorted((fw / "include").glob("*.h"))]
    src = fw / "src"
    files += [(f"src/{p.relative_to(src).as_posix()}", p) for p in sorted(src.rglob("*"))
              if p.suffix in (".c", ".h")]
    return files


def _glue_files(glue: str) -> list[tuple[str, Path]]:
    fw = firmware_dir() / "ports"
    files = [(p.name, p) for p in sorted((fw / "frameworks" / glue).iterdir())
             if p.suffix in (".c", ".cpp", ".h")]
    files += [(p.name, p) for p in sorted((fw / "frameworks" / "common").iterdir())
              if p.suffix in (".c", ".h")]
    files += [(name, fw / "common" / name) for name in ("bnn_port_common.h", "port_common.c")]
    return files


_GLUE_INFO = {
    "stm32cube": ("STM32Cube HAL", "ststm32"),
    "arduino": ("Arduino", "*"),
}


#: Top-level files of a project (the folders src/ and lib/bnn_* hold the rest).
TOP_FILES = ("platformio.ini", "README.md", ".gitignore", "src/main.c")


def _refuse_special(path: Path, folder: bool) -> None:
    if path.is_symlink():
        raise BnnError(f"{path} is a symbolic link; bnn-mcu does not write through links: "
                       "remove it first")
    if path.exists() and not (path.is_dir() if folder else path.is_file()):
        raise BnnError(f"{path}: exists and is not a {'folder' if folder else 'regular file'}; "
                       "remove it first")


def _check_generated(out: Path) -> None:
    """Before writing (over an earlier project with --force): refuse links and special files
    where the project writes (a link would make it write outside `out`, a FIFO would block).
    The lib/ folders an earlier generation wrote are not carried into the new project, so no
    stale runtime file is built."""
    lib = out / "lib"
    generated = sorted(lib.glob(LIB_PREFIX + "*")) if lib.is_dir() and not lib.is_symlink() else []
    for path in (out / "src", lib, *generated):
        _refuse_special(path, folder=True)
    for name in TOP_FILES:
        _refuse_special(out / name, folder=False)


def _generated(rel: str) -> bool:
    """Files and folders the project generator owns (anything else in the folder is kept)."""
    return rel in TOP_FILES or rel.startswith("lib/" + LIB_PREFIX)


def generate_pio_project(model: IntModel, out: Path, boards: list[str] | None = None,
                         force: bool = False, flash_kb: int | None = None,
                         ram_kb: int | None = None) -> tuple[list[Path], list[EnvSpec], list[str]]:
    """Write the project; returns (files written, envs, notes on boards left out)."""
    check_budget(model, flash_kb, ram_kb)
    envs, left_out = select_envs(model, boards)
    out = Path(out)
    _prepare_outdir(out, force)
    _check_generated(out)
    with replacing_folder(out, _generated) as new:  # the old project or the new, never a mix
        written = _write_project(model, new, envs, left_out)
    return [out / p.relative_to(new) for p in written], envs, left_out


def _write_project(model: IntModel, out: Path, envs: list[EnvSpec],
                   left_out: list[str]) -> list[Path]:
    written: list[Path] = []
    name = model.meta.get("name", "model")
    digest = bnnfile.model_hash(model)
    lib = out / "lib"

    _write(out / "src" / "main.c", (firmware_dir() / "app" / "main.c").read_bytes(), written)
    written += generate_model_sources(model, lib / "bnn_model")
    _write(lib / "bnn_model" / "model.bnn", bnnfile.serialize(model), written)
    _write(lib / "bnn_model" / "library.json", _library_json(
        "bnn_model", f"{name}: generated by bnn-mcu (model hash {digest[:16]})"), written)
    for rel, src in _runtime_files():
        _write(lib / "bnn_runtime" / rel, src.read_bytes(), written)
    _write(lib / "bnn_runtime" / "library.json", _library_json(
        "bnn_runtime", "bnn-mcu runtime: BNN kernels, serial protocol, port contract"), written)

    glues: dict[str, list[RealBoard]] = {}
    for spec in envs:
        if spec.real:
            glues.setdefault(spec.real.glue, []).append(spec.real)
    for glue, members in glues.items():
        d = lib / f"bnn_port_{glue}"
        for rel, src in _glue_files(glue):
            _write(d / "src" / rel, src.read_bytes(), written)
        _write(d / "src" / "board.h", render_board_h(glue, members).encode(), written)
        title, platforms = _GLUE_INFO[glue]
        _write(d / "library.json", _library_json(
            f"bnn_port_{glue}", f"bnn-mcu port through {title}: serial and cycle counter for "
            + ", ".join(b.name for b in members), frameworks=members[0].framework,
            platforms=platforms, build={"libArchive": False}), written)

    if any(spec.qemu for spec in envs):  # the QEMU envs name the local platform by path
        write_platform()
    t = totals(model)
    ctx = dict(version=__version__, hash=digest[:16], model=model, totals=t,
               ini_name=ini_comment(name), md_name=markdown_text(name),
               envs=envs, left_out=left_out, platform_name=PLATFORM_NAME, framework=FRAMEWORK,
               qemu_platform=platform_spec(),
               qemu_port={env_name(b): QEMU_BASE_PORT + i for i, b in enumerate(QEMU_BOARDS)},
               board_macro=board_macro, table=summary_table(model, fmt="github"),
               kb=lambda n: f"{n // KB:,} KB")
    env = _jinja()
    for template, dest in (("platformio.ini.j2", "platformio.ini"), ("README.md.j2", "README.md"),
                           ("gitignore.j2", ".gitignore")):
        _write(out / dest, env.get_template(template).render(**ctx).encode(), written)
    return written
