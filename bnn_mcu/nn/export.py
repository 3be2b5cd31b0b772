"""Export to and load from disk: ExportedPrograms, our checkpoints, pickled modules (opt-in).

Loading is safe by default: no file runs code unless --trust-pickle. torch.export.load alone
is not (its docs: "uses pickle under the hood... never load data from an untrusted source"):
it falls back to full unpickling when a weights-only load fails, unpickles weights flagged
use_pickle and "opaque" constants, loads compiled AOTInductor libraries from the archive,
feeds the graph's symbolic-shape strings to sympy (which evaluates them), and resolves node
targets by name on the torch module (`torch.os.system` is a name). So an archive is vetted
first (_vet_program_archive: sizes, member paths, no pickled or compiled members, node
targets and shape expressions from allow-lists), then loaded with every torch.load forced to
weights_only. Any zip (a torch.save file is one too) is checked for size before torch opens
it, so a zip bomb is refused with its numbers instead of filling the memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import zipfile
import zlib
from pathlib import Path

import torch

from ..errors import ModelError
from ..models import MODEL_KINDS

CHECKPOINT_FORMAT = "bnn-mcu-checkpoint-1"
#: Largest total of uncompressed member sizes a model archive may declare.
MAX_ARCHIVE_BYTES = 1 << 30
MAX_ARCHIVE_MEMBERS = 10_000
# Members of a torch.export archive (below its root folder) that hold no code.
_SAFE_MEMBER = re.compile(r"archive_format|archive_version|byteorder|version|\.data/[\w.]+|"
                          r"models/[\w.-]+\.json|data/(weights|constants)/[\w.-]+|"
                          r"data/sample_inputs/[\w.-]+\.pt|extra/[\w.-]+|"
                          r"serialized_[\w]+\.(json|pt)|extra_files/[\w.-]+")
# Node targets an untrusted graph may name: ATen operators and the symbolic-shape helpers.
_SAFE_TARGET = re.compile(r"torch\.ops\.aten\.\w+\.\w+|_operator\.(getitem|add|sub|mul|truediv|"
                          r"floordiv|mod|pow|neg|pos|eq|ne|lt|le|gt|ge|and_|or_|lshift|rshift)|"
                          r"torch\.(sym_max|sym_min|sym_ite|sym_not|sym_float|sym_int|_sym_sqrt)|"
                          r"math\.trunc")
# Symbolic-shape expressions (sympy syntax, evaluated by sympify): names, integers, 'symbol'
# strings, arithmetic; no attributes, no subscripts, no dunders, no unknown calls.
_EXPR_TOKEN = re.compile(r"\s*(?:([A-Za-z][A-Za-z0-9_]*)|(\d+)|'([a-z]+\d+)'|([-+*/%(),=]))")
_EXPR_NAMES = {"Symbol", "Integer", "True", "False", "positive", "integer", "real", "nonnegative",
               "Max", "Min", "Mod", "FloorDiv", "CeilDiv", "CleanDiv", "PythonMod", "ModularIndexing",
               "Where", "FloorToInt", "CeilToInt", "IntTrueDiv", "PowByNatural", "TruncToInt",
               "RoundToInt", "ToFloat", "Identity"}
_SYMBOL = re.compile(r"[a-z]+\d+")


def export_module(module: torch.nn.Module, input_shape: tuple) -> torch.export.ExportedProgram:
    """torch.export with a dynamic batch; input is uint8 N x H x W (C = 1) or N x H x W x C."""
    h, w, c = input_shape
    shape = (2, h, w) if c == 1 else (2, h, w, c)
    example = torch.zeros(shape, dtype=torch.uint8)
    module = module.eval()
    try:
        return torch.export.export(module, (example,),
                                   dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    except Exception as e:  # torch's own message says which line could not be traced
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"torch.export failed on the model: {first}") from None


def save_program(ep: torch.export.ExportedProgram, path: str | Path) -> None:
    path = Path(path)
    try:
        with open(path, "wb") as f:  # a file object: torch.export warns about non-.pt2 names
            torch.export.save(ep, f)
    except OSError as e:
        raise ModelError(f"{path}: cannot write ({e.strerror or e})") from None


def _refuse(path: Path, why: str) -> ModelError:
    return ModelError(f"{path}: {why}; it is not loaded without --trust-pickle (only for files "
                      "you trust: loading it could run code)")


def _check_zip(path: Path, z: zipfile.ZipFile) -> list:
    """Sizes and names a zip declares, checked before torch reads any member."""
    infos = z.infolist()
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ModelError(f"{path}: the archive holds {len(infos):,} members (at most "
                         f"{MAX_ARCHIVE_MEMBERS:,})")
    total = sum(i.file_size for i in infos)
    if total > MAX_ARCHIVE_BYTES:
        raise ModelError(f"{path}: the archive unpacks to {total:,} bytes, more than the "
                         f"{MAX_ARCHIVE_BYTES:,} a model file may hold (a zip bomb?)")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ModelError(f"{path}: the archive holds two members of one name (two readers "
                         "would see different files)")
    return names


def _expr_is_safe(expr: str) -> bool:
    pos = 0
    while pos < len(expr):
        m = _EXPR_TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            return expr[pos:].strip() == ""
        name = m.group(1)
        if name is not None and name not in _EXPR_NAMES and not _SYMBOL.fullmatch(name):
            return False
        pos = m.end()
    return True


def _vet_graph_json(path: Path, doc) -> None:
    """Every node target and shape expression of a serialized graph from the allow-lists."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key == "target" and isinstance(value, str) and not _SAFE_TARGET.fullmatch(value):
                raise _refuse(path, f"its graph calls {value[:80]!r}, which is not an ATen "
                                    "operator")
            if key == "expr_str" and (not isinstance(value, str) or not _expr_is_safe(value)):
                raise _refuse(path, f"its graph holds the shape expression {str(value)[:80]!r}")
            if key == "guards_code" and value:
                raise _refuse(path, "its program carries guard code (Python source)")
            if key == "range_constraints" and isinstance(value, dict) and not all(
                    _SYMBOL.fullmatch(str(k)) for k in value):
                raise _refuse(path, "its range constraints name odd symbols")
            stack.append(value)


def _check_tensor_meta(path: Path, fqn: str, meta) -> None:
    """A weight's claimed sizes: torch allocates them (zeros, for an empty record) as given."""
    sizes = meta.get("sizes") if isinstance(meta, dict) else None
    if not isinstance(sizes, list) or not all(
            isinstance(d, dict) and isinstance(d.get("as_int"), int) and d["as_int"] >= 0
            for d in sizes):
        raise ModelError(f"{path}: the weight {fqn[:60]!r} has no plain sizes")
    n = 1
    for d in sizes:
        n *= d["as_int"]
    if n > MAX_ARCHIVE_BYTES:
        raise ModelError(f"{path}: the weight {fqn[:60]!r} claims {n:,} elements (at most "
                         f"{MAX_ARCHIVE_BYTES:,})")


def _vet_program_archive(path: Path, z: zipfile.ZipFile, names: list) -> None:
    roots = {n.split("/", 1)[0] if "/" in n else "" for n in names}
    flat = roots == {""} or not all("/" in n for n in names)
    for n in names:
        inner = n if flat else n.split("/", 1)[1]
        if not _SAFE_MEMBER.fullmatch(inner) or ".." in inner.split("/"):
            raise _refuse(path, f"the archive holds {n[:80]!r}, which is not part of a plain "
                                "torch.export program (compiled code or pickled objects)")
    if not flat and len(roots) != 1:
        raise _refuse(path, "the archive has more than one root folder")
    for n in names:
        if not n.endswith(".json"):
            continue
        try:
            doc = json.loads(z.read(n))
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise _refuse(path, f"{n[:80]!r} is not readable JSON") from None
        if n.endswith(("_weights_config.json", "_constants_config.json")):
            entries = doc.get("config", {}) if isinstance(doc, dict) else None
            if not isinstance(entries, dict):
                raise _refuse(path, f"{n[:80]!r} is not a payload table")
            for fqn, entry in entries.items():
                if not isinstance(entry, dict) or entry.get("use_pickle") or (
                        "constants" in n and not str(entry.get("path_name", "")).startswith("tensor_")):
                    raise _refuse(path, f"{str(fqn)[:60]!r} is stored as a pickled object")
                _check_tensor_meta(path, str(fqn), entry.get("tensor_meta"))
        else:
            _vet_graph_json(path, doc)


@contextlib.contextmanager
def _weights_only_loads():
    """Every torch.load inside is weights_only (even where torch asks for full unpickling), and
    torch's tracebacks about bad archives stay out of the user's terminal."""
    saved = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = saved
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _is_exported_program(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("serialized_exported_program.json") or n.endswith("models/model.json")
                       or "/models/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _looks_pickled(path: Path) -> bool:
    """Legacy torch.save files and pickles of protocol 2+ start with the PROTO opcode 0x80."""
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load_program(path: str | Path, trust_pickle: bool = False,
                 input_shape: tuple | None = None) -> torch.export.ExportedProgram:
    """An ExportedProgram from a .pt/.pt2 export, our checkpoint, or (opt-in) a pickled module."""
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; give a model file ({MODEL_KINDS})")
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and not _looks_pickled(path):
        raise ModelError(f"{path}: not a model file; expected {MODEL_KINDS}")
    if is_zip:
        try:
            with zipfile.ZipFile(path) as z:
                names = _check_zip(path, z)
                if _is_exported_program(path) and not trust_pickle:
                    _vet_program_archive(path, z, names)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
                NotImplementedError, RuntimeError) as e:  # damaged, or compressed oddly
            raise ModelError(f"{path}: not a readable model archive ({str(e)[:200]})") from None
    if _is_exported_program(path):
        guard = contextlib.nullcontext() if trust_pickle else _weights_only_loads()
        try:
            with guard, open(path, "rb") as f:
                return torch.export.load(f)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: cannot load the exported program ({first[:200]})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        msg = str(e)
        if "weights_only" in msg or "Unsupported global" in msg or "GLOBAL" in msg:
            if not trust_pickle:
                raise ModelError(f"{path}: is a pickled Python object; loading it runs code from the "
                                 "file. Export it with torch.export.save instead, or pass "
                                 "--trust-pickle if you trust it") from None
            return _load_pickled_module(path, input_shape)
        raise ModelError(f"{path}: not a PyTorch model file ({msg.splitlines()[0] if msg else type(e).__name__})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        from .train import model_from_checkpoint
        model = model_from_checkpoint(obj, str(path))
        return export_module(model, model.config.input_shape)
    raise ModelError(f"{path}: holds a {type(obj).__name__}, not a model (expected a torch.export "
                     "program, a bnn-mcu checkpoint, or a pickled nn.Module with --trust-pickle)")


def _load_pickled_module(path: Path, input_shape: tuple | None) -> torch.export.ExportedProgram:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelError(f"{path}: cannot unpickle ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, torch.nn.Module):
        raise ModelError(f"{path}: the pickle holds a {type(obj).__name__}, not an nn.Module")
    shape = input_shape or getattr(getattr(obj, "config", None), "input_shape", None)
    if shape is None:
        raise ModelError(f"{path}: a pickled module does not say its input shape; pass "
                         "--input-shape HxWxC (e.g. 28x28x1)")
    return export_module(obj, tuple(shape))


def program_input_shape(ep: torch.export.ExportedProgram) -> tuple | None:
    """(H, W, C) of the image an exported program takes; None when it does not take one image
    batch (the importer says why)."""
    from .program_input import program_input

    try:
        return program_input(ep).hwc
    except ModelError:
        return None
