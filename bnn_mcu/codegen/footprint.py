"""Stack, flash and RAM of a generated folder on one core, measured when it is generated.

The folder is compiled with the core's flags and `-fstack-usage` at each optimization level,
then linked on its own with `--gc-sections` and `bnn_model_run` as the entry, so the image
holds exactly what a firmware's call of bnn_model_run pulls in (kernels, schedule, constants,
arena, and the C library's memset/memcpy when a kernel calls them):
  - flash and RAM from the linker's map: the bytes each output section (.text, .rodata,
    .data, .bss) takes from the folder's objects, and apart from the C library members they
    pull in (the same sums a firmware's map shows for these objects);
  - stack = the deepest call chain from bnn_model_run in that image's code (direct calls and
    tail calls read from the disassembly, so libgcc helpers count too), each function's frame
    taken from -fstack-usage, or for library code (no .su) the sum of every stack allocation
    in its body (push, sub sp, vpush: an upper bound).
The hook of bnn_model_run_hooked is the only indirect call: its own stack comes on top.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BnnError
from .cores import Core

OPTS = ("-O2", "-Os")
#: Flags of the measured build beside the core's (what the README's build line says).
BUILD_FLAGS = ("-std=c99", "-ffunction-sections", "-fdata-sections")


@dataclass(frozen=True)
class Build:
    """One optimization level's figures."""

    opt: str
    stack: int  # bytes bnn_model_run needs
    chain: tuple  # ((function, frame bytes), ...) of the deepest call chain
    text: int  # the folder's objects, per output section
    rodata: int
    data: int
    bss: int
    lib_flash: int  # C library / libgcc members pulled in (text, rodata, data)
    lib_members: tuple  # their names, e.g. ("memset",)

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data + self.lib_flash


@dataclass(frozen=True)
class Footprint:
    core: str
    compiler: str  # e.g. "arm-none-eabi-gcc 12.2.1"
    flags: tuple
    builds: tuple  # Build per OPTS

    @property
    def opts(self) -> list[str]:
        return [b.opt for b in self.builds]

    @property
    def worst(self) -> Build:
        return max(self.builds, key=lambda b: (b.stack, b.flash))

    @property
    def stack(self) -> int:  # the figure for the header: holds at every measured level
        return max(b.stack for b in self.builds)

    @property
    def flash(self) -> int:
        return max(b.flash for b in self.builds)

    @property
    def chain_text(self) -> str:
        return chain_text(self.worst.chain)


def chain_text(chain) -> str:
    return " > ".join(f"{name} {size}" for name, size in chain)


def measure(folder: Path, core: Core, prefix: str = "") -> Footprint | None:
    """Figures for the generated folder on `core`, or None when there is nothing to measure
    (the host) or no cross compiler on PATH."""
    if core.is_host or shutil.which(core.gcc) is None:
        return None
    version = _run([core.gcc, "-dumpversion"], folder).strip()
    builds = []
    sources = sorted(p.resolve() for p in Path(folder).glob("*.c"))
    for opt in OPTS:
        with tempfile.TemporaryDirectory(prefix="bnn-footprint-") as tmp:
            builds.append(_measure_one(Path(tmp), sources, core, opt, prefix))
    return Footprint(core.name, f"{core.gcc} {version}", (*core.gcc_flags, *BUILD_FLAGS),
                     tuple(builds))


def _run(cmd: list, cwd: Path) -> str:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        first = (p.stderr.strip().splitlines() or ["(no message)"])[0]
        raise BnnError(f"measuring the generated C failed: {Path(str(cmd[0])).name}: {first}")
    return p.stdout


def _measure_one(tmp: Path, sources: list, core: Core, opt: str, prefix: str) -> Build:
    flags = [*core.gcc_flags, opt, *BUILD_FLAGS]
    _run([core.gcc, *flags, "-fstack-usage", "-c", *sources], tmp)
    entry = f"{prefix}bnn_model_run"
    elf, mapfile = tmp / "footprint.elf", tmp / "footprint.map"
    objects = sorted(tmp.glob("*.o"))
    _run([core.gcc, *core.gcc_flags, opt, "-nostartfiles", "--specs=nano.specs",
          "--specs=nosys.specs", "-Wl,--gc-sections", f"-Wl,-e,{entry}", f"-Wl,-Map={mapfile}",
          *objects, "-o", elf], tmp)
    ours, lib = map_contributions(mapfile.read_text(), {o.name for o in objects})
    frames = su_frames(tmp.glob("*.su"))
    calls, bodies = call_graph(_run([tool(core, "objdump"), "-d", "--no-show-raw-insn", elf], tmp))
    stack, chain = deepest_chain(entry, calls, frames, bodies)
    lib_flash = sum(n for (sec, _), n in lib.items() if sec != ".bss")
    return Build(opt, stack, chain, ours.get(".text", 0),
                 ours.get(".rodata", 0) + ours.get(".ARM.exidx", 0), ours.get(".data", 0),
                 ours.get(".bss", 0), lib_flash,
                 tuple(sorted({m for (_, m), n in lib.items() if n})))


def tool(core: Core, name: str) -> str:
    return core.gcc[: -len("gcc")] + name


_MAP_INPUT = re.compile(r"^ (\.\S+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")


def map_contributions(text: str, objects: set) -> tuple[dict, dict]:
    """A GNU ld map -> ({output section: bytes from `objects`}, {(output section, library
    member): bytes}) over the allocated sections (.text, .rodata, .data, .bss, .ARM.exidx)."""
    ours: dict[str, int] = {}
    lib: dict[tuple, int] = {}
    out_sec = None
    pending = False  # an input section name alone on its line: its numbers follow
    for line in text.split("Linker script and memory map", 1)[-1].splitlines():
        if line and not line[0].isspace():
            out_sec = line.split()[0]
            continue
        if out_sec not in (".text", ".rodata", ".data", ".bss", ".ARM.exidx"):
            continue
        if re.fullmatch(r" \.\S+", line):
            pending = True
            continue
        m = _MAP_INPUT.match(line)
        if not m or (m.group(1) is None and not pending):
            continue
        pending = False
        size, source = int(m.group(2), 16), m.group(3).strip()
        if Path(source).name in objects:
            ours[out_sec] = ours.get(out_sec, 0) + size
        else:  # libc_nano.a(lib_a-memset.o) -> memset
            member = re.sub(r"^lib_a-|\.o$", "", re.sub(r".*\((.*)\)$", r"\1", source))
            lib[(out_sec, member)] = lib.get((out_sec, member), 0) + size
    return ours, lib


def _plain(name: str) -> str:
    """GCC clone names: the .su says `f.constprop`, the symbol table `f.constprop.0`."""
    return re.sub(r"(\.\w+)\.\d+$", r"\1", name)


def su_frames(paths) -> dict[str, int]:
    """-fstack-usage files -> {function: frame bytes}. Two static functions of one name in two
    files get the larger frame. A dynamic frame (alloca, VLA) has no bound: refused."""
    frames: dict[str, int] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            where, size, kind = line.rsplit("\t", 2)
            name = where.rsplit(":", 1)[-1]
            if kind.startswith("dynamic") and "bounded" not in kind:
                raise BnnError(f"{name}: stack frame of unbounded size ({kind}); cannot state a bound")
            frames[name] = max(frames.get(name, 0), int(size))
    return frames


_FUNC = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
_CALL = re.compile(r"^\s*[0-9a-f]+:\s+(bl|blx|b|b\.w|b\.n)\s+[0-9a-f]+ <([^>+]+)>")
_ALLOC = re.compile(r"^\s*[0-9a-f]+:\s+(push|stmdb|vpush|sub|sub\.w|subw)\s+(.*)$")


def call_graph(disassembly: str) -> tuple[dict[str, set], dict[str, list]]:
    """objdump -d text -> ({function: functions it calls or tail-calls}, {function: its stack
    allocating instructions}). A branch to another function's first instruction is a call; to
    an offset inside a function (Thumb-1 long branches within one function) it is not."""
    calls: dict[str, set] = {}
    allocs: dict[str, list] = {}
    current = None
    for line in disassembly.splitlines():
        m = _FUNC.match(line)
        if m:
            current = m.group(2)
            calls.setdefault(current, set())
            allocs.setdefault(current, [])
            continue
        if current is None:
            continue
        m = _CALL.match(line)
        if m and m.group(2) != current:
            calls[current].add(m.group(2))
        m = _ALLOC.match(line)
        if m:
            allocs[current].append((m.group(1), m.group(2)))
    return calls, allocs


def allocated_bytes(instructions: list) -> int:
    """Sum of every stack allocation in a body (an upper bound of its frame when no
    allocation sits in a loop, as in the C library's leaf functions)."""
    total = 0
    for op, args in instructions:
        if op in ("push", "vpush") or (op == "stmdb" and args.startswith("sp!")):
            regs = re.search(r"\{([^}]*)\}", args)
            if regs:
                total += _count_regs(regs.group(1)) * (8 if re.search(r"\bd\d", regs.group(1)) else 4)
        elif op.startswith("sub") and re.match(r"sp,\s*(sp,\s*)?#(\d+)", args):
            total += int(re.match(r"sp,\s*(sp,\s*)?#(\d+)", args).group(2))
    return total


def _count_regs(text: str) -> int:
    n = 0
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"([rsd])(\d+)-[rsd](\d+)", part)
        n += int(m.group(3)) - int(m.group(2)) + 1 if m else 1
    return n


def deepest_chain(entry: str, calls: dict, frames: dict, bodies: dict) -> tuple[int, tuple]:
    """(bytes, chain) of the deepest path from entry; recursion has no bound: refused."""
    memo: dict[str, tuple[int, tuple]] = {}

    def frame(fn: str) -> int:
        name = _plain(fn)
        return frames[name] if name in frames else allocated_bytes(bodies.get(fn, []))

    def visit(fn: str, path: tuple) -> tuple[int, tuple]:
        if fn in path:
            raise BnnError(f"{fn}: recursive call chain ({' > '.join(path + (fn,))}); "
                           "the stack has no static bound")
        if fn not in memo:
            below = max((visit(c, path + (fn,)) for c in sorted(calls.get(fn, ()))),
                        default=(0, ()))
            memo[fn] = (frame(fn) + below[0], ((_plain(fn), frame(fn)),) + below[1])
        return memo[fn]

    if entry not in calls:
        raise BnnError(f"{entry} is not in the linked image: cannot measure its stack")
    return visit(entry, ())
