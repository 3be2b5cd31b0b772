"""The runtime files a generated folder carries: only the kernels the model calls, the private
headers those include, and the public headers, all side by side (one flat folder, so
`cc -c *.c` builds it without any -I).

With a symbol prefix every file name and every external symbol of the folder starts with it
(`kws_bnn_bdense_b1.c` defines `kws_bnn_bdense_b1`): two folders generated with different
prefixes never clash, neither at link time nor as object or archive member names, even copied
into one directory. Each then carries its own copy of the kernels it uses.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..ir.ops import IntModel
from ..resources import firmware_dir

#: Always in the folder: the kernels' contract and the types the model header uses.
PUBLIC_HEADERS = ("bnn_kernels.h", "bnn_model_types.h")
#: Every schedule ends with it (the predicted class).
ALWAYS_KERNELS = ("bnn_argmax_s32",)

_INCLUDE = re.compile(r'^(\s*#\s*include\s*")([^"]+)(")', re.M)


def _dirs() -> tuple[Path, Path]:
    fw = firmware_dir()
    return fw / "src" / "kernels", fw / "include"


def kernel_functions() -> list[str]:
    """The public kernel functions, as bnn_kernels.h declares them (one per kernel file)."""
    text = (_dirs()[1] / "bnn_kernels.h").read_text()
    return sorted(set(re.findall(r"^[A-Za-z_][\w ]*?\b(bnn_\w+)\(", text, re.M)))


def runtime_files(model: IntModel) -> list[tuple[str, Path]]:
    """(file name, source) of the runtime the model needs, sorted: its kernels' .c files and the
    closure of their quoted #includes, plus PUBLIC_HEADERS."""
    kdir, idir = _dirs()
    used = sorted({op.c_function for op in model.ops} | set(ALWAYS_KERNELS))
    todo = [kdir / f"{k}.c" for k in used] + [idir / h for h in PUBLIC_HEADERS]
    found: dict[str, Path] = {}
    while todo:
        src = todo.pop()
        if src.name in found:
            continue
        if not src.is_file():  # pragma: no cover - a kernel without its file is a packaging bug
            raise FileNotFoundError(f"runtime file {src} is missing from this bnn-mcu install")
        found[src.name] = src
        for m in _INCLUDE.finditer(src.read_text()):
            name = m.group(2)
            for d in (kdir, idir):
                if (d / name).is_file():
                    todo.append(d / name)
                    break
    return sorted(found.items())


def prefixed_text(text: str, prefix: str, files: set[str], functions: list[str]) -> str:
    """A runtime file's text with the prefix on the folder's own #includes and on the public
    kernel functions (whole identifiers only)."""
    if not prefix:
        return text
    text = _INCLUDE.sub(lambda m: m.group(1) + (prefix if m.group(2) in files else "")
                        + m.group(2) + m.group(3), text)
    if functions:
        text = re.sub(r"\b(" + "|".join(map(re.escape, functions)) + r")\b", prefix + r"\1", text)
    return text


def runtime_contents(model: IntModel, prefix: str = "") -> list[tuple[str, bytes]]:
    """(file name in the folder, bytes) for every runtime file of the model."""
    files = runtime_files(model)
    names = {name for name, _ in files}
    functions = kernel_functions()
    return [(prefix + name, prefixed_text(src.read_text(), prefix, names, functions).encode())
            for name, src in files]
