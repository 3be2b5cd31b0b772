"""What a torch.export archive may hold before torch.export.load sees it.

torch.export.load is documented as unsafe for untrusted files, and is: it unpickles weights and
constants flagged `use_pickle` (weights_only=False), "opaque" constants (pickle.loads) and
custom objects, retries a failed weights-only load of the sample inputs with full unpickling,
loads compiled AOTInductor libraries, feeds symbolic-shape strings to sympy (which evaluates
them), resolves node targets by name on the torch module (`torch.os.system` is a name), and
allocates the sizes a weight's record claims (zeros for an empty record). So an archive (read
through torch's own reader: nn/archive.py) is held to a plain program: an exact list of member
names, no pickled payload named in any JSON member, every tensor's declared bytes counted
against one budget, node targets and shape expressions from allow-lists, no guard code, and
every JSON member small. Anything else is refused before torch runs.
"""

from __future__ import annotations

import json
import re

from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

from ..errors import ModelError
from .archive import Archive, open_archive

#: Largest total of bytes the weights and constants of a program may declare (the records'
#: sizes, and the zeros torch makes for an empty record). BinaryNet's 784-4096x3 MLP in
#: float32 is 146 MB.
MAX_TENSOR_BYTES = 512 << 20
#: Largest JSON member (a program's graph is tens to hundreds of KB; parsing takes ~30x its size).
MAX_JSON_BYTES = 8 << 20
#: Largest small text member (archive_format, version, byteorder...).
MAX_TEXT_BYTES = 64
MAX_EXPR_CHARS = 400

# Members of a plain torch.export program (below the root folder), exactly as torch.export.save
# writes them for the one program "model" that torch.export.load returns.
_MEMBER = re.compile(r"archive_format|archive_version|byteorder|\.data/version|"
                     r"\.data/serialization_id|models/model\.json|data/sample_inputs/model\.pt|"
                     r"data/weights/model_weights_config\.json|data/weights/weight_\d{1,6}|"
                     r"data/constants/model_constants_config\.json|data/constants/tensor_\d{1,6}|"
                     r"extra/[A-Za-z0-9_.-]+", re.ASCII)
_CONFIGS = {"data/weights/model_weights_config.json": ("data/weights/", "weight_"),
            "data/constants/model_constants_config.json": ("data/constants/", "tensor_")}
_PAYLOAD = re.compile(r"(weight|tensor)_\d{1,6}", re.ASCII)
# Node targets an untrusted graph may name: ATen operators and the symbolic-shape helpers.
_SAFE_TARGET = re.compile(r"torch\.ops\.aten\.\w+\.\w+|_operator\.(getitem|add|sub|mul|truediv|"
                          r"floordiv|mod|neg|pos|eq|ne|lt|le|gt|ge|and_|or_)|"
                          r"torch\.(sym_max|sym_min|sym_ite|sym_not|sym_float|sym_int|_sym_sqrt)|"
                          r"math\.trunc", re.ASCII)
# Symbolic-shape expressions (sympy syntax, evaluated by sympify): names, integers of at most
# 19 digits, 'symbol' strings, + - * / % and parentheses; no `**` (10**10**10 is a number
# sympy would compute for ever), no attributes, subscripts, dunders or unknown calls.
_EXPR_TOKEN = re.compile(r"\s*(?:([A-Za-z][A-Za-z0-9_]*)|(\d{1,19})(?!\d)|'([a-z]+\d+)'|"
                         r"(\*\*|[-+*/%(),=]))", re.ASCII)
_EXPR_NAMES = {"Symbol", "Integer", "True", "False", "positive", "integer", "real", "nonnegative",
               "Max", "Min", "Mod", "FloorDiv", "CeilDiv", "CleanDiv", "PythonMod", "ModularIndexing",
               "Where", "FloorToInt", "CeilToInt", "IntTrueDiv", "TruncToInt", "RoundToInt",
               "ToFloat", "Identity"}
_SYMBOL = re.compile(r"[a-z]+\d+", re.ASCII)


def refuse(path, why: str) -> ModelError:
    return ModelError(f"{path}: {why}; it is not loaded without --trust-pickle (only for files "
                      "you trust: loading it could run code)")


def is_program(archive: Archive) -> bool:
    """An archive torch.export wrote (else a torch.save file, read by torch.load)."""
    return any(n == "archive_format" or n.startswith("models/") for n in archive.names)


def expr_is_safe(expr: str) -> bool:
    if len(expr) > MAX_EXPR_CHARS:
        return False
    pos = 0
    while pos < len(expr):
        m = _EXPR_TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            return expr[pos:].strip() == ""
        name, op = m.group(1), m.group(4)
        if name is not None and name not in _EXPR_NAMES and not _SYMBOL.fullmatch(name):
            return False
        if op == "**":
            return False
        pos = m.end()
    return True


def _walk(doc):
    """Every dict inside a JSON document (iterative: depth is bounded by the parser only)."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            yield node
            stack.extend(node.values())


def _vet_payload_refs(path, name: str, doc) -> None:
    """Whatever a JSON member is called: nothing in it may ask torch for a pickled payload."""
    for node in _walk(doc):
        if node.get("use_pickle"):
            raise refuse(path, f"{name!r} asks for a pickled object")
        ref = node.get("path_name")
        if ref is not None and not (isinstance(ref, str) and _PAYLOAD.fullmatch(ref)):
            raise refuse(path, f"{name!r} names the payload {str(ref)[:60]!r}, which is not a "
                               "plain tensor (pickled, custom or opaque objects are refused)")


def _vet_graph(path, doc) -> None:
    """Every node target and shape expression of a serialized graph from the allow-lists."""
    for node in _walk(doc):
        for key, value in node.items():
            if key == "target" and isinstance(value, str) and not _SAFE_TARGET.fullmatch(value):
                raise refuse(path, f"its graph calls {value[:80]!r}, which is not an ATen "
                                   "operator")
            if key == "expr_str" and (not isinstance(value, str) or not expr_is_safe(value)):
                raise refuse(path, f"its graph holds the shape expression {str(value)[:80]!r}")
            if key == "guards_code" and value:
                raise refuse(path, "its program carries guard code (Python source)")
            if key == "range_constraints" and isinstance(value, dict) and not all(
                    _SYMBOL.fullmatch(str(k)) for k in value):
                raise refuse(path, "its range constraints name odd symbols")


def _ints(items, key="as_int") -> list | None:
    if not isinstance(items, list) or not all(
            isinstance(d, dict) and type(d.get(key)) is int and d[key] >= 0 for d in items):
        return None
    return [d[key] for d in items]


def _payload_bytes(archive: Archive, folder: str, fqn: str, entry: dict) -> tuple[str, int]:
    """(record, bytes torch allocates for it): the record's size, or for an empty record the
    zeros of the declared sizes. The declared view must fit in the storage."""
    path = archive.path
    record = folder + entry["path_name"]
    if record not in archive.sizes:
        raise ModelError(f"{path}: the weight {fqn[:60]!r} has no record {record!r}")
    meta = entry.get("tensor_meta")
    sizes = _ints(meta.get("sizes")) if isinstance(meta, dict) else None
    strides = _ints(meta.get("strides")) if isinstance(meta, dict) else None
    offset = _ints([meta.get("storage_offset")]) if isinstance(meta, dict) else None
    dtype = _SERIALIZE_TO_TORCH_DTYPE.get(meta.get("dtype")) if isinstance(meta, dict) else None
    if sizes is None or strides is None or offset is None or len(sizes) != len(strides) \
            or dtype is None or len(sizes) > 16:
        raise ModelError(f"{path}: the weight {fqn[:60]!r} has no plain sizes, strides and dtype")
    elem = dtype.itemsize
    numel = 1
    for s in sizes:
        numel *= s
    nbytes = archive.sizes[record]
    if nbytes == 0:  # torch makes torch.zeros(sizes): a contiguous tensor
        return record, numel * elem
    extent = 0 if numel == 0 else offset[0] + sum((s - 1) * st for s, st in zip(sizes, strides)) + 1
    if nbytes % elem or extent * elem > nbytes:
        raise ModelError(f"{path}: the weight {fqn[:60]!r} claims {extent:,} elements of "
                         f"{elem} bytes; its record holds {nbytes:,} bytes")
    return record, nbytes


def _read_json(archive: Archive, name: str):
    try:
        return json.loads(archive.read(name, MAX_JSON_BYTES))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise refuse(archive.path, f"{name!r} is not readable JSON") from None


def vet_program(archive: Archive) -> None:
    """Raise a one-line ModelError unless the archive is a plain torch.export program."""
    path = archive.path
    for name in archive.names:
        if not _MEMBER.fullmatch(name):
            raise refuse(path, f"the archive holds {name[:80]!r}, which is not part of a plain "
                               "torch.export program (compiled code, pickled objects or a "
                               "second program)")
    for name in ("archive_format", "models/model.json", *_CONFIGS):
        if name not in archive.sizes:
            raise ModelError(f"{path}: not a torch.export program ({name!r} is missing); "
                             "re-save it with torch.export.save")
    if archive.read("archive_format", MAX_TEXT_BYTES) != b"pt2":
        raise ModelError(f"{path}: not a torch.export program of a format this torch reads")
    for name in archive.names:
        if name.startswith(("archive_", "byteorder", ".data/")):
            archive.read(name, MAX_TEXT_BYTES)  # small text, checked by size
    docs = {n: _read_json(archive, n) for n in archive.names if n.endswith(".json")}
    for name, doc in docs.items():
        _vet_payload_refs(path, name, doc)
    _vet_graph(path, docs["models/model.json"])
    allocated: dict[str, int] = {}
    for name, (folder, prefix) in _CONFIGS.items():
        entries = docs[name].get("config") if isinstance(docs[name], dict) else None
        if not isinstance(entries, dict):
            raise refuse(path, f"{name!r} is not a payload table")
        for fqn, entry in entries.items():
            if not isinstance(entry, dict) or not str(entry.get("path_name")).startswith(prefix):
                raise refuse(path, f"{name!r} stores {str(fqn)[:60]!r} oddly")
            record, nbytes = _payload_bytes(archive, folder, str(fqn), entry)
            allocated[record] = max(allocated.get(record, 0), nbytes)
    total = sum(allocated.values())
    if total > MAX_TENSOR_BYTES:
        raise ModelError(f"{path}: its weights and constants take {total:,} bytes in all, more "
                         f"than the {MAX_TENSOR_BYTES:,} a model may have")
    for name in archive.names:
        if name.startswith("data/sample_inputs/"):  # a torch.save zip inside: same checks
            inner = archive.read(name, MAX_JSON_BYTES)
            open_archive(f"{path}:{name}", inner)
        elif name.startswith("extra/"):
            archive.read(name, MAX_JSON_BYTES)
