"""Run an integer model on a device target: build the runner, start it, talk the protocol.

Targets: "host" (the runner built for this machine), "qemu:BOARD", "serial:PORT" (a real board
already flashed with the same runner), "pio:PROJECT:ENV" (a generated PlatformIO project's QEMU
env, built and run by pio: bnn_mcu/platformio/target.py). Vectors go through the serial
protocol; on host and QEMU most of a large set goes through the bulk region (preloaded into
target memory, results streamed back) while a streamed subset still exercises the serial path.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..codegen import generate_model_sources
from ..errors import BnnError, TargetError
from ..ir.bnnfile import model_hash
from .boards import BOARDS, get_board


@dataclass(frozen=True)
class Target:
    kind: str  # "host", "qemu", "serial" or "pio"
    name: str  # board name ("host", "mps2-an386", ...), the port, or PROJECT:ENV (pio)
    baud: int = 115200

    @property
    def label(self) -> str:
        return self.name if self.kind in ("host", "serial") else f"{self.kind}:{self.name}"


@dataclass
class Firmware:
    elf: Path
    flash_bytes: int  # text + data
    ram_bytes: int  # data + bss (stack included)


@dataclass
class DeviceResult:
    target: Target
    scores: np.ndarray
    classes: np.ndarray
    counts: np.ndarray
    info: object = None  # protocol.DeviceInfo
    streamed: int = 0
    bulk: int = 0
    firmware: Firmware | None = None
    traces: list = field(default_factory=list)  # per traced vector: list of per-layer bytes
    link_stats: object = None


def cache_dir() -> Path:
    import os
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bnn-mcu" / "firmware"


def _elf_sizes(elf: Path, host: bool) -> tuple[int, int]:
    tool = "size" if host else "arm-none-eabi-size"
    if shutil.which(tool) is None:
        return 0, 0
    out = subprocess.run([tool, str(elf)], capture_output=True, text=True, timeout=30).stdout
    try:
        text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    except (IndexError, ValueError):
        return 0, 0
    return text + data, data + bss


def build_runner(model, board: str, opt: str = "-O2", emulated_memory: bool = False,
                 extra_cflags: tuple = (), quiet: bool = False) -> Firmware:
    """Generate the model's C and build the vector runner for `board` (cached by content)."""
    from ..resources import firmware_dir
    from .build import build_firmware

    key = hashlib.sha256("|".join([model_hash(model), board, opt, str(emulated_memory),
                                   " ".join(extra_cflags), _tree_digest(firmware_dir())])
                         .encode()).hexdigest()[:20]
    work = cache_dir() / f"{board}-{key}"
    elf = work / "build" / (f"{board}.elf")
    if not elf.is_file():
        if not quiet:
            print(f"building the runner for {board} ({opt})...", file=sys.stderr)
        generate_model_sources(model, work / "model")
        try:
            elf = build_firmware(board, work / "model", work / "build", opt=opt,
                                 extra_cflags=extra_cflags, emulated_memory=emulated_memory)
        except TargetError as e:
            b = BOARDS.get(board)
            if b is not None and not b.is_host and "overflow" in str(e).lower():
                from ..summary import totals
                t = totals(model, b.core)
                raise TargetError(
                    f"the model does not fit {board} ({b.core}, {b.real_ram_size // 1024} KB RAM, "
                    f"{b.real_code_size // 1024} KB flash): it needs {t['flash_bytes']:,} B of "
                    f"constants and {t['ram_bytes']:,} B of RAM; pick a smaller model "
                    "(or --emulated-memory for a QEMU-only test)") from None
            raise
    flash, ram = _elf_sizes(elf, get_board(board).is_host)
    return Firmware(elf, flash, ram)


def _tree_digest(root: Path) -> str:
    """Digest of the firmware sources, so a changed kernel rebuilds cached runners."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".c", ".h", ".ld", ".in", ".mk") or p.name == "Makefile":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def parse_device_target(text: str, baud: int = 115200) -> Target:
    kind, _, arg = text.partition(":")
    if text == "host":
        return Target("host", "host")
    if kind == "qemu" and arg in BOARDS and not BOARDS[arg].is_host:
        return Target("qemu", arg)
    if kind == "qemu":
        boards = ", ".join(n for n, b in BOARDS.items() if not b.is_host)
        raise BnnError(f"unknown QEMU board {arg!r}; choose one of {boards} (or qemu:all)")
    if kind == "serial" and arg:
        return Target("serial", arg, baud)
    if kind == "pio":  # a generated PlatformIO project's QEMU env (bnn_mcu/platformio/target.py)
        from ..platformio.target import check_target
        check_target(arg)
        return Target("pio", arg)
    raise BnnError(f"unknown target {text!r}")


@contextmanager
def device(model, target: Target, bulk: np.ndarray | None = None, count_instructions: bool = False,
           emulated_memory: bool = False, timeout: float = 10.0, opt: str = "-O2"):
    """A DeviceLink to the runner for `model` on `target`, ready, with its hash checked."""
    from .link import DeviceLink, open_link
    from .protocol import bulk_image
    from .qemu import start_target

    expected = model_hash(model)[:16]
    if target.kind == "serial":
        link = open_link(target.name, baudrate=target.baud, timeout=timeout,
                         expected_hash=expected)
        try:
            link.wait_ready(timeout=max(timeout, 5.0))
            yield link, None, None
        finally:
            link.close()
        return
    kw = {"bulk": bulk_image(bulk)} if bulk is not None and len(bulk) else {}
    if count_instructions:
        kw["count_instructions"] = True
    if target.kind == "pio":  # built by `pio run`, run by `pio run -t upload` (QEMU)
        from ..platformio.target import PioUploadProcess, pio_firmware
        fw = pio_firmware(target.name, model)
        proc = PioUploadProcess(target.name, read_timeout=timeout, **kw)
    else:
        fw = build_runner(model, target.name, opt=opt, emulated_memory=emulated_memory)
        proc = start_target(target.name, fw.elf, read_timeout=timeout, **kw)
    with proc as ser:
        link = DeviceLink(ser, timeout=timeout, expected_hash=expected)
        try:
            link.wait_ready(timeout=max(timeout, 10.0))
            yield link, proc, fw
            link.exit()
        finally:
            link.close()


def _bar(total: int, desc: str, enabled: bool):
    bar = tqdm(total=total, desc=desc, unit="vec", leave=False, dynamic_ncols=True,
               disable=not (enabled and sys.stderr.isatty()))

    def update(done, n):
        bar.n = done
        bar.refresh()
    return bar, update


def run_on_device(model, target: Target, x: np.ndarray, stream: int | None = None,
                  trace: int = 0, progress: bool = True, emulated_memory: bool = False,
                  window: int | None = None) -> DeviceResult:
    """Scores for every vector of x [N, H, W, C]: `stream` of them through the serial protocol
    (None: all of them on a real board, 200 on host/QEMU), the rest through the bulk region;
    per-layer trace of the first `trace` vectors."""
    n = len(x)
    flat = np.ascontiguousarray(x.reshape(n, -1))
    if target.kind == "serial":
        stream = n
    elif stream is None:
        stream = min(n, 200)
    stream = min(stream, n)
    res = DeviceResult(target, np.zeros((n, model.num_classes), np.int32), np.zeros(n, np.int64),
                       np.zeros(n, np.int64), streamed=stream, bulk=n - stream)
    bulk_x = flat[stream:]
    capacity = None
    start = 0
    while True:
        chunk = bulk_x[start:] if capacity is None else bulk_x[start:start + capacity]
        with device(model, target, bulk=chunk, emulated_memory=emulated_memory) as (link, proc, fw):
            info = link.device
            res.info, res.firmware = info, fw
            if capacity is None and len(chunk) > info.bulk_capacity and target.kind != "serial":
                capacity = info.bulk_capacity
                if capacity == 0:
                    raise TargetError(f"{target.label} has no bulk region: use --stream {n}")
                continue  # restart with a chunk that fits
            if start == 0:
                for i in range(min(trace, n)):
                    res.traces.append(link.trace(flat[i]).layers)
                if stream:
                    bar, cb = _bar(stream, f"{target.label} serial", progress)
                    r = link.run(flat[:stream], window=window, progress=cb)
                    bar.close()
                    res.scores[:stream], res.classes[:stream], res.counts[:stream] = \
                        r.scores, r.classes, r.counts
            if len(chunk):
                bar, cb = _bar(len(chunk), f"{target.label} bulk", progress)
                r = link.bulk(progress=cb)
                bar.close()
                lo = stream + start
                res.scores[lo:lo + len(chunk)] = r.scores
                res.classes[lo:lo + len(chunk)] = r.classes
                res.counts[lo:lo + len(chunk)] = r.counts
            res.info = link.info()  # refreshed: its stack high-water mark now covers the runs
            res.link_stats = link.stats
        start += len(chunk)
        if start >= len(bulk_x):
            return res


@dataclass
class InstructionCounts:
    layers: list  # exact instructions per layer
    tail: int  # argmax and return
    firmware_bench: object  # the firmware's own BenchResult (its counter)
    stack_used: int  # bytes, high-water mark after the run
    firmware: Firmware
    cycles_layers: list = field(default_factory=list)  # estimated cycles per layer (the plugin)
    cycles_tail: int = 0

    @property
    def per_inference(self) -> int:
        return int(sum(self.layers) + self.tail)

    @property
    def cycles_per_inference(self) -> int:
        return int(sum(self.cycles_layers) + self.cycles_tail)


def count_instructions(model, board: str, x: np.ndarray, emulated_memory: bool = False,
                       opt: str = "-O2") -> InstructionCounts:
    """Exact instructions per layer for one input on a QEMU board (the TCG plugin)."""
    from .protocol import bench_marks

    target = Target("qemu", board)
    with device(model, target, count_instructions=True, emulated_memory=emulated_memory,
                timeout=60.0, opt=opt) as (link, proc, fw):
        fw_bench = link.bench(np.ascontiguousarray(x.reshape(-1)), repeats=1, timeout=120.0)
        stack = link.info().stack_used
    per = bench_marks(proc.counts.marks, len(model.ops))
    if not per:
        raise TargetError(f"QEMU {board}: the instruction counter recorded no bench marks")
    counts = per[0]
    cycles = bench_marks(proc.counts.cycle_marks, len(model.ops))[0]
    return InstructionCounts(list(counts[:-1]), int(counts[-1]), fw_bench, stack, fw,
                             [int(c) for c in cycles[:-1]], int(cycles[-1]))
