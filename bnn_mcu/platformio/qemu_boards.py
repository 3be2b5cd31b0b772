"""Board manifests of the local `bnn-qemu` PlatformIO platform, from bnn_mcu/targets/boards.py.

templates/platformio/platform/boards/qemu-<board>.json are generated from the board table
(`python -m bnn_mcu.platformio.qemu_boards`; a test checks they are current). They hold what
PlatformIO shows and checks (name, core, clock, memory sizes of the real part) and what the
platform's builder needs besides firmware/ports/<board>/board.mk: the QEMU machine and its
arguments. Core flags are not repeated here: the builder reads them from board.mk.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..resources import templates_dir
from ..targets.boards import BOARDS, QEMU_BOARDS, Board

PLATFORM_NAME = "bnn-qemu"
FRAMEWORK = "bnn-ports"
ENV_PREFIX = "qemu-"

_TITLES = {"mps2-an385": "Arm MPS2 AN385", "mps2-an386": "Arm MPS2 AN386",
           "mps2-an500": "Arm MPS2 AN500", "mps2-an505": "Arm MPS2 AN505",
           "mps3-an547": "Arm MPS3 AN547", "microbit": "BBC micro:bit"}


def platform_dir() -> Path:
    """The platform as it ships inside bnn-mcu."""
    return templates_dir() / "platformio" / "platform"


def env_name(board: str) -> str:
    """PlatformIO env (and board id) of a QEMU board: "mps2-an386" -> "qemu-mps2-an386"."""
    return ENV_PREFIX + board


def board_manifest(board: Board) -> dict:
    core = "Cortex-" + board.core.split("-", 1)[1].upper()
    return {
        "build": {
            "cpu": board.core,
            "mcu": board.name,
            "f_cpu": f"{board.clock_hz}L",
            "bnn_port": board.name,
        },
        "frameworks": [FRAMEWORK],
        "name": f"{_TITLES.get(board.name, board.name)} ({core}) in QEMU",
        "upload": {
            "maximum_size": board.real_code_size,
            "maximum_ram_size": board.real_ram_size,
            "protocol": "qemu",
            "protocols": ["qemu"],
            "qemu_machine": board.qemu_machine,
            "qemu_args": list(board.qemu_args),
        },
        "url": "https://www.qemu.org/docs/master/system/target-arm.html",
        "vendor": "QEMU",
    }


def render_manifest(board: Board) -> str:
    return json.dumps(board_manifest(board), indent=2) + "\n"


def manifest_files() -> dict[str, str]:
    """File name under boards/ -> content, for every QEMU board."""
    return {f"{env_name(n)}.json": render_manifest(BOARDS[n]) for n in QEMU_BOARDS}


def write_manifests(boards_dir: Path | None = None) -> list[Path]:
    """Regenerate the board manifests; returns the paths that changed."""
    root = Path(boards_dir) if boards_dir else platform_dir() / "boards"
    root.mkdir(parents=True, exist_ok=True)
    stale = {root / name: text for name, text in manifest_files().items()
             if not (root / name).is_file() or (root / name).read_text() != text}
    for path, text in stale.items():
        path.write_text(text)
    return list(stale)


if __name__ == "__main__":
    for p in write_manifests():
        print(f"wrote {p}")
