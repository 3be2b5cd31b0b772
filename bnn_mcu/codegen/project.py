"""`bnn-mcu generate`: a self-contained folder a firmware engineer drops into any project.

    OUT/bnn_model.h, bnn_model.c     the model (data + schedule)
    OUT/model.bnn                    the integer model they were generated from (hash source)
    OUT/runtime/include/*.h          kernel contract and model API
    OUT/runtime/src/*.c, *.h         the runtime kernels
    OUT/README.md                    API, memory table, build line for the chosen core
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from .. import __version__
from ..errors import BnnError
from ..ir import bnnfile
from ..ir.ops import IntModel
from ..resources import firmware_dir, templates_dir
from ..summary import summary_table, totals
from .generate import MODEL_FILES, generate_model_sources

RUNTIME_HEADERS = ("bnn_kernels.h", "bnn_model_api.h")


def core_flags() -> dict[str, tuple]:
    """gcc flags per core, from the board table (one source of truth), plus the host."""
    from ..targets.boards import BOARDS

    flags = {"host": ()}
    for b in BOARDS.values():
        if not b.is_host:
            flags.setdefault(b.core, b.cflags)
    return flags


def normalize_core(core: str) -> str:
    cores = core_flags()
    name = core if core in cores or core.startswith("cortex-") else f"cortex-{core}"
    if name not in cores:
        raise BnnError(f"unknown core {core!r}; choose one of {', '.join(sorted(cores))}")
    return name


def runtime_sources() -> list[Path]:
    """Every runtime kernel source and private header, sorted (deterministic output)."""
    kdir = firmware_dir() / "src" / "kernels"
    return sorted(p for p in kdir.iterdir() if p.suffix in (".c", ".h"))


def _prepare_outdir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BnnError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BnnError(f"{out}: folder is not empty; pass --force to overwrite the generated files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BnnError(f"{out}: cannot create the output folder ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise BnnError(f"{out}: output folder is not writable")


def _check_targets(out: Path, relpaths: list) -> None:
    """Every file generate writes lands inside `out`: refuse to write through a symbolic link
    (README.md -> ~/.bashrc, runtime -> /etc) or into anything but a regular file (a FIFO
    would block forever) that a previous run or another program left in the folder."""
    root = out.resolve()
    for rel in relpaths:
        p = root
        for part in Path(rel).parts:
            p = p / part
            if p.is_symlink():
                raise BnnError(f"{out / Path(rel)}: {p} is a symbolic link; bnn-mcu does not "
                               "write through links, remove it first")
        if p.exists() and not p.is_file():
            raise BnnError(f"{p}: exists and is not a regular file; remove it first")
        if not p.resolve().is_relative_to(root):  # pragma: no cover - links refused above
            raise BnnError(f"{p}: would be written outside {out}")


def check_budget(model: IntModel, flash_kb: int | None, ram_kb: int | None, what: str = "") -> None:
    """Refuse a model whose constants or RAM exceed a declared budget, with the numbers."""
    t = totals(model)
    where = f" of {what}" if what else ""
    if flash_kb is not None and t["flash_bytes"] > flash_kb * 1024:
        raise BnnError(f"model needs {t['flash_bytes']:,} B of flash for weights and thresholds, "
                       f"more than the {flash_kb} KB{where} ({flash_kb * 1024:,} B)")
    if ram_kb is not None and t["ram_bytes"] > ram_kb * 1024:
        raise BnnError(f"model needs {t['ram_bytes']:,} B of RAM (arena {t['arena_bytes']:,} + "
                       f"input {t['input_bytes']:,} + scores {t['scores_bytes']:,}), more than the "
                       f"{ram_kb} KB{where} ({ram_kb * 1024:,} B)")


def _write(path: Path, data: bytes, written: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    written.append(path)


def generate_project(model: IntModel, out: Path, core: str = "cortex-m4", force: bool = False,
                     flash_kb: int | None = None, ram_kb: int | None = None) -> list[Path]:
    core = normalize_core(core)
    check_budget(model, flash_kb, ram_kb)
    out = Path(out)
    _prepare_outdir(out, force)
    _check_targets(out, list(MODEL_FILES) + ["model.bnn", "README.md"] +
                   [f"runtime/include/{n}" for n in RUNTIME_HEADERS] +
                   [f"runtime/src/{p.name}" for p in runtime_sources()])
    written: list[Path] = []
    written += generate_model_sources(model, out)
    _write(out / "model.bnn", bnnfile.serialize(model), written)
    inc = firmware_dir() / "include"
    for name in RUNTIME_HEADERS:
        _write(out / "runtime" / "include" / name, (inc / name).read_bytes(), written)
    for src in runtime_sources():
        _write(out / "runtime" / "src" / src.name, src.read_bytes(), written)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "project")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    flags = core_flags()[core]
    cc = "cc" if core == "host" else "arm-none-eabi-gcc"
    readme = env.get_template("README.md.j2").render(
        version=__version__, model=model, name=model.meta.get("name", "model"),
        hash=bnnfile.model_hash(model)[:16], core=core, cc=cc, flags=" ".join(flags),
        table=summary_table(model, fmt="github"), totals=totals(model),
        sources=[p.name for p in runtime_sources() if p.suffix == ".c"])
    _write(out / "README.md", readme.encode(), written)
    return written
