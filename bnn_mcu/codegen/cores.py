"""The cores `bnn-mcu generate --core` accepts, and the compiler flags for each.

The gcc flags of a core come from the board tables (bnn_mcu/targets/boards.py: QEMU boards and
real boards), the one source of truth; Cortex-M85 has no board there and neither GCC 12 nor
clang 14 know `-mcpu=cortex-m85`, so it is spelled as its architecture (Armv8.1-M mainline
with Helium and double-precision FP). What a core changes in the generated folder: the build
line, and the stack and flash figures, measured for that core (footprint.py). The C itself is
the same for every core: the kernels pick their fast path from the compiler's feature macros.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BnnError

#: Path the kernels select (bnn_popcount.h), by core.
_PATHS = {
    "cortex-m0": "v6-M (Thumb-1 shifts and adds)", "cortex-m0plus": "v6-M (Thumb-1 shifts and adds)",
    "cortex-m3": "v7-M (Thumb-2, multiply to sum lanes)",
    "cortex-m4": "DSP (Thumb-2 assembly, USADA8)", "cortex-m7": "DSP (Thumb-2 assembly, USADA8)",
    "cortex-m33": "DSP (Thumb-2 assembly, USADA8)", "cortex-m55": "DSP (Thumb-2 assembly, USADA8)",
    "cortex-m85": "DSP (Thumb-2 assembly, USADA8)", "host": "portable C (__builtin_popcount)",
}
#: Whether the runtime kernels build under clang --target=arm-none-eabi (their assembly is in naked
#: functions with `.syntax unified`, so yes). The generated README offers a clang build line only
#: when this is True, and tests/test_generated_folder.py fails when it no longer matches clang.
CLANG_BUILDS_KERNELS = True

_M85 = ("-march=armv8.1-m.main+mve.fp+fp.dp", "-mfloat-abi=hard", "-mthumb", "-masm-syntax-unified")


@dataclass(frozen=True)
class Core:
    name: str  # e.g. "cortex-m0plus", or "host"
    gcc_flags: tuple[str, ...]  # for arm-none-eabi-gcc (host: the system's gcc)
    kernel_path: str

    @property
    def is_host(self) -> bool:
        return self.name == "host"

    @property
    def gcc(self) -> str:
        return "gcc" if self.is_host else "arm-none-eabi-gcc"

    @property
    def clang_flags(self) -> tuple[str, ...]:
        """The same target for clang: -masm-syntax-unified is a GCC option."""
        if self.is_host:
            return ()
        return ("--target=arm-none-eabi",
                *(f for f in self.gcc_flags if f != "-masm-syntax-unified"))


def cores() -> dict[str, Core]:
    from ..targets.boards import BOARDS, REAL_BOARDS

    flags: dict[str, tuple] = {"host": ()}
    for b in (*BOARDS.values(), *REAL_BOARDS.values()):
        if b.core != "host":
            flags.setdefault(b.core, b.cflags)
    flags["cortex-m85"] = _M85
    return {name: Core(name, flags[name], _PATHS[name]) for name in _PATHS}  # small to big


def core_names() -> str:
    return ", ".join(cores())


def get_core(name: str) -> Core:
    """A core by name; `m4` and `cortex-m4` are the same, `m0+` is `cortex-m0plus`."""
    table = cores()
    key = name.strip().lower().replace("m0+", "m0plus")
    if key not in table and not key.startswith("cortex-"):
        key = f"cortex-{key}"
    if key not in table:
        raise BnnError(f"unknown core {name!r}; choose one of {core_names()}")
    return table[key]
