"""`bnn-mcu generate`: one flat folder a firmware engineer drops into any project.

    OUT/[P]bnn_model.h, [P]bnn_model.c   the model (data + schedule); the header carries the
                                         model hash, the source refuses another model's header
    OUT/[P]bnn_<kernel>.c, [P]bnn_*.h    only the runtime kernels the model calls, the private
                                         headers they include, the kernel contract and API types
    OUT/model.bnn                        the integer model they were generated from
    OUT/README.md                        API, build line, memory measured for --core

`cc -c *.c` builds it, with no -I. [P] is the optional symbol prefix (`--prefix kws_`): it
starts every file name and every external symbol, so two folders link into one firmware
(bnn_mcu/codegen/runtime.py). Stack and flash come from compiling and linking the folder for
the core at generation time (bnn_mcu/codegen/footprint.py).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import jinja2

from .. import __version__
from ..errors import BnnError
from ..escape import markdown_text
from ..ir import bnnfile
from ..ir.ops import IntModel
from ..outputs import replacing_folder
from ..resources import templates_dir
from ..summary import summary_table, totals
from .cores import CLANG_BUILDS_KERNELS, Core, cores, get_core
from .footprint import BUILD_FLAGS, OPTS, Footprint, chain_text, measure
from .generate import check_prefix, render_model_sources
from .runtime import runtime_contents


def core_flags() -> dict[str, tuple]:
    """gcc flags per core name (bnn_mcu/codegen/cores.py)."""
    return {name: c.gcc_flags for name, c in cores().items()}


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
    (README.md -> ~/.bashrc, bnn_kernels.h -> /etc/x) or into anything but a regular file (a FIFO
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


def check_budget(model: IntModel, flash_kb: int | None, ram_kb: int | None, what: str = "",
                 core: str | None = None) -> None:
    """Refuse a model whose constants or RAM exceed a declared budget, with the numbers (RAM
    for `core`, or the largest over the Arm cores)."""
    t = totals(model, core)
    where = f" of {what}" if what else ""
    if flash_kb is not None and t["flash_bytes"] > flash_kb * 1024:
        raise BnnError(f"model needs {t['flash_bytes']:,} B of flash for weights and thresholds, "
                       f"more than the {flash_kb} KB{where} ({flash_kb * 1024:,} B)")
    if ram_kb is not None and t["ram_bytes"] > ram_kb * 1024:
        scratch = f"uint8 dense scratch {t['scratch_bytes']:,} + " if t["scratch_bytes"] else ""
        raise BnnError(f"model needs {t['ram_bytes']:,} B of RAM (arena {t['arena_bytes']:,} + "
                       f"{scratch}input {t['input_bytes']:,} + scores {t['scores_bytes']:,}), more than the "
                       f"{ram_kb} KB{where} ({ram_kb * 1024:,} B)")


def _write(path: Path, data: bytes, written: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    written.append(path)


def _measured(model: IntModel, core: Core, prefix: str, runtime: list) -> Footprint | None:
    """Compile and link the folder's C in a scratch folder for the core (footprint.py)."""
    with tempfile.TemporaryDirectory(prefix="bnn-generate-") as tmp:
        for name, text in render_model_sources(model, prefix):
            (Path(tmp) / name).write_text(text)
        for name, data in runtime:
            (Path(tmp) / name).write_bytes(data)
        return measure(Path(tmp), core, prefix)


class Written(list):
    """The paths generate_project wrote, and the figures it measured (None: not measured)."""

    footprint: Footprint | None = None


def folder_files(model: IntModel, core: Core, prefix: str = "",
                 with_figures: bool = True) -> tuple[list[tuple[str, bytes]], Footprint | None]:
    """(name, bytes) of every file of the generated folder, in writing order; the figures."""
    runtime = runtime_contents(model, prefix)
    footprint = _measured(model, core, prefix, runtime) if with_figures else None
    files = [(name, text.encode()) for name, text in render_model_sources(model, prefix, footprint)]
    files += runtime
    files.append(("model.bnn", bnnfile.serialize(model)))
    files.append(("README.md", _readme(model, core, prefix, footprint, files).encode()))
    return files, footprint


def footprint_table(footprint: Footprint) -> str:
    """The measured figures as a plain table (what `generate` prints)."""
    rows = [("build", "stack", "code", "constants", "C library", "flash total", "static RAM")]
    for b in footprint.builds:
        rows.append((b.opt, *(f"{n:,} B" for n in (b.stack, b.text, b.rodata + b.data,
                                                  b.lib_flash, b.flash, b.data + b.bss))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def _readme(model: IntModel, core: Core, prefix: str, footprint: Footprint | None,
            files: list) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "project")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("README.md.j2").render(
        version=__version__, model=model, name=markdown_text(model.meta.get("name", "model")),
        hash=bnnfile.model_hash(model)[:16], core=core, p=prefix, P=prefix.upper(),
        build_flags=" ".join(BUILD_FLAGS), opts=OPTS, clang_ok=CLANG_BUILDS_KERNELS, footprint=footprint, chain_text=chain_text,
        table=summary_table(model, fmt="github", core=core.name), totals=totals(model, core.name),
        sources=[n for n, _ in files if n.endswith(".c")],
        headers=[n for n, _ in files if n.endswith(".h")])


def generate_project(model: IntModel, out: Path, core: str = "cortex-m4", force: bool = False,
                     flash_kb: int | None = None, ram_kb: int | None = None, prefix: str = "",
                     with_figures: bool = True) -> Written:
    """Write the folder; with_figures=False skips compiling it for the README's stack and
    flash figures (they are then not stated)."""
    core_ = get_core(core)
    check_prefix(prefix)
    check_budget(model, flash_kb, ram_kb, core=core_.name)
    out = Path(out)
    _prepare_outdir(out, force)
    files, footprint = folder_files(model, core_, prefix, with_figures)
    _check_targets(out, [name for name, _ in files])
    written = Written()
    with replacing_folder(out, _owned(prefix, files)) as new:  # old files or new, never a mix
        for name, data in files:
            _write(new / name, data, written)
    written[:] = [out / p.relative_to(new) for p in written]
    written.footprint = footprint
    return written


def _owned(prefix: str, files: list):
    """Which entries of an earlier output folder `generate` owns (left behind when the new
    folder replaces it): the files it writes now, and kernels of the same prefix an earlier
    model called (`cc -c *.c` would build them). Anything else is the user's and is kept."""
    names = {name for name, _ in files}
    kernel = re.compile(re.escape(prefix) + r"bnn_\w+\.[ch]")
    return lambda rel: rel in names or kernel.fullmatch(rel) is not None
