"""The `.bnn` file: a versioned, hashed integer model, readable with numpy alone.

Layout (little-endian):
    8 bytes   magic b"BNNMODEL"
    u32       format version
    u32       header length H
    u64       blob length L
    H bytes   header: canonical JSON (model fields, ops, tensor table)
    L bytes   blob: the tensors, each at an 8-byte aligned offset
    32 bytes  SHA-256 of everything above: the file's checksum (damage is detected)
The model hash (`model_hash`) is another SHA-256: of the integer model's content only (shapes,
layer names, packed weights, thresholds, scores), without `meta` (the source file name, the
PyTorch node names verify traces), so the same model gives the same hash from a .pt, the .ckpt
of the same run, a .bnn, under any file name. The firmware reports its first 8 bytes; the host
refuses a board that differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .ops import OP_TYPES, IntModel, Scores, Threshold

MAGIC = b"BNNMODEL"
#: Version 1: every op field is written. Version 2 adds optional fields (an op's
#: `LATER_FIELDS`, e.g. a max-pool's padding): written only when they differ from their default,
#: and then the file says version 2, so a model that uses none keeps its version-1 bytes and hash.
VERSION = 1
LATER_VERSION = 2
_READ_VERSIONS = (VERSION, LATER_VERSION)
_PREFIX = struct.Struct("<8sIIQ")
_HASH_BYTES = 32
_MAX_HEADER = 16 << 20
#: Largest .bnn file read (checked with stat before reading): an integer model for a
#: microcontroller is kilobytes to a few megabytes.
MAX_BNN_BYTES = 256 << 20
_DTYPES = {"<u4": np.dtype("<u4"), "<i4": np.dtype("<i4")}
_STAGE_KINDS = {"threshold": Threshold, "scores": Scores}
# Limits of what a file may declare, checked before anything is built from the header: the
# serial protocol carries shapes, classes and layer counts as u16; tuples have fixed lengths.
_MAX_U16 = 0xFFFF
_MAX_DIMS = 8
_MAX_NAME = 1024
_TUPLE_LEN = {"in_shape": 3, "kernel": 2, "stride": 2, "padding": 4}
_TUPLE_MIN = {"in_shape": 1, "kernel": 1, "stride": 1}  # padding may be 0
_TENSOR_KEYS = {"tensor", "shape", "offset", "nbytes"}


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _op_to_json(op, blob: bytearray) -> dict:
    d = {"kind": op.kind}
    later = type(op).LATER_FIELDS
    for k, v in vars(op).items():
        if k in later and v == later[k]:
            continue  # a default later field is not written: version-1 bytes stay as they were
        if isinstance(v, np.ndarray):
            d[k] = _add_tensor(v, blob)
        elif isinstance(v, (Threshold, Scores)):
            stage = {"kind": "threshold" if isinstance(v, Threshold) else "scores"}
            for sk, sv in vars(v).items():
                stage[sk] = _add_tensor(sv, blob)
            d[k] = stage
        elif isinstance(v, tuple):
            d[k] = list(v)
        else:
            d[k] = v
    return d


def _add_tensor(a: np.ndarray, blob: bytearray) -> dict:
    dt = {np.dtype(np.uint32): "<u4", np.dtype(np.int32): "<i4"}.get(a.dtype)
    if dt is None:
        raise ModelError(f"cannot store a {a.dtype} tensor in a .bnn file")
    blob.extend(b"\0" * (_align8(len(blob)) - len(blob)))
    off = len(blob)
    data = np.ascontiguousarray(a, dtype=dt).tobytes()
    blob.extend(data)
    return {"tensor": dt, "shape": list(a.shape), "offset": off, "nbytes": len(data)}


def serialize(model: IntModel, with_meta: bool = True) -> bytes:
    """The file's bytes, deterministic for a given model (without meta: the bytes the model
    hash covers)."""
    blob = bytearray()
    header = {
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "ops": [_op_to_json(op, blob) for op in model.ops],
    }
    if with_meta:
        header["meta"] = model.meta
    version = LATER_VERSION if any(set(d) & set(type(op).LATER_FIELDS)
                                   for op, d in zip(model.ops, header["ops"])) else VERSION
    hbytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, version, len(hbytes), len(blob)) + hbytes + bytes(blob)
    return body + hashlib.sha256(body).digest()


def model_hash(model: IntModel) -> str:
    """Hex SHA-256 of the integer model's content (no meta: file names do not count)."""
    return serialize(model, with_meta=False)[-_HASH_BYTES:].hex()


def save(model: IntModel, path: str | Path) -> str:
    """Write the .bnn file; returns the model hash."""
    from ..outputs import write_file_atomic

    data = serialize(model)
    path = Path(path)
    try:
        write_file_atomic(path, data)  # the old .bnn or the new one, never half a file
    except OSError as e:
        raise ModelError(f"{path}: cannot write ({e.strerror})") from None
    return model_hash(model)


def _tensor(spec, blob: memoryview, where: str) -> np.ndarray:
    if not isinstance(spec, dict) or not isinstance(spec.get("tensor"), str) \
            or spec["tensor"] not in _DTYPES:
        raise ModelError(f"{where}: bad tensor entry")
    dt = _DTYPES[spec["tensor"]]
    shape = spec.get("shape")
    off, nbytes = spec.get("offset"), spec.get("nbytes")
    if (not isinstance(shape, list) or len(shape) > _MAX_DIMS
            or not all(_is_int(s) and 0 <= s < 2**31 for s in shape)
            or not _is_int(off) or not _is_int(nbytes) or set(spec) != _TENSOR_KEYS):
        raise ModelError(f"{where}: bad tensor shape or offset")
    count = math.prod(shape)  # Python ints: no wrap-around, unlike an int64 product
    if count * dt.itemsize != nbytes or off < 0 or off + nbytes > len(blob):
        raise ModelError(f"{where}: tensor lies outside the file")
    return np.frombuffer(blob, dtype=dt, count=count, offset=off).reshape(shape).astype(dt.newbyteorder("="))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_text(v, where: str) -> str:
    if not isinstance(v, str) or len(v) > _MAX_NAME or not v.isprintable():
        raise ModelError(f"{where}: must be printable text of at most {_MAX_NAME} characters")
    return v


def _field_kinds(cls) -> dict:
    """Field name -> its annotation ("str", "tuple", "int", "np.ndarray", "OutputStage")."""
    return {f.name: f.type for f in dataclasses.fields(cls)}


def _op_from_json(d: dict, blob: memoryview, i: int, version: int = VERSION, name: str = "model"):
    """One op, every field type-checked against the op's dataclass before it is built (a file
    whose hash is right can still hold any JSON)."""
    where = f"{name}: op {i}"
    if not isinstance(d, dict) or not isinstance(d.get("kind"), str) or d["kind"] not in OP_TYPES:
        kind = d.get("kind") if isinstance(d, dict) else d
        raise ModelError(f"{where}: unknown op kind {str(kind)[:40]!r}")
    cls = OP_TYPES[d["kind"]]
    kinds = _field_kinds(cls)
    missing = sorted(set(kinds) - set(d) - set(cls.LATER_FIELDS))
    if version < LATER_VERSION and set(d) & set(cls.LATER_FIELDS):
        field = sorted(set(d) & set(cls.LATER_FIELDS))[0]
        raise ModelError(f"{where}: {d['kind']} field {field!r} in a version {version} file")
    if missing:
        raise ModelError(f"{where}: {d['kind']} op without {missing[0]!r}")
    kwargs = {}
    for k, v in d.items():
        if k == "kind":
            continue
        ftype = kinds.get(k)
        fwhere = f"{where}.{str(k)[:40]}"
        if ftype is None:
            raise ModelError(f"{where}: unknown field {str(k)[:40]!r} for a {d['kind']} op")
        if ftype == "np.ndarray":
            kwargs[k] = _tensor(v, blob, fwhere)
        elif ftype == "OutputStage":
            if not isinstance(v, dict) or not isinstance(v.get("kind"), str) \
                    or v["kind"] not in _STAGE_KINDS:
                raise ModelError(f"{fwhere}: bad output stage")
            stage_cls = _STAGE_KINDS[v["kind"]]
            parts = {sk: _tensor(sv, blob, f"{fwhere}.{sk}") for sk, sv in v.items() if sk != "kind"}
            if set(parts) != set(_field_kinds(stage_cls)):
                raise ModelError(f"{fwhere}: bad output stage")
            kwargs[k] = stage_cls(**parts)
        elif ftype == "tuple":
            low = _TUPLE_MIN.get(k, 0)
            if (not isinstance(v, list) or len(v) != _TUPLE_LEN.get(k, len(v))
                    or not all(_is_int(x) and low <= x <= _MAX_U16 for x in v)):
                raise ModelError(f"{fwhere}: expected {_TUPLE_LEN.get(k, 'a list of')} integers "
                                 f"in {low}..{_MAX_U16}")
            kwargs[k] = tuple(v)
        elif ftype == "bool":
            if not isinstance(v, bool):
                raise ModelError(f"{fwhere}: expected true or false")
            kwargs[k] = v
        elif ftype == "int":
            if not _is_int(v) or not -2**31 <= v < 2**31:
                raise ModelError(f"{fwhere}: expected a 32-bit integer")
            kwargs[k] = v
        elif ftype == "str":
            kwargs[k] = _check_text(v, fwhere)
        else:  # pragma: no cover - a field type this reader does not know yet
            raise ModelError(f"{fwhere}: cannot read a field of type {ftype}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ModelError(f"{where}: bad {d['kind']} op ({e})") from None


def _check_meta(meta, name: str) -> dict:
    """meta: text keys; values are text, numbers, booleans, null, or flat lists of those."""
    def scalar(v) -> bool:
        return v is None or isinstance(v, (bool, int, float)) or (
            isinstance(v, str) and len(v) <= _MAX_NAME and v.isprintable())
    if not isinstance(meta, dict) or not all(
            isinstance(k, str) and k.isprintable() and len(k) <= 64 and
            (scalar(v) or (isinstance(v, list) and len(v) <= _MAX_U16 and all(map(scalar, v))))
            for k, v in meta.items()):
        raise ModelError(f"{name}: malformed .bnn header (meta must map names to text, numbers "
                         "or flat lists of them)")
    for key in ("name", "source"):
        if key in meta:
            _check_text(meta[key], f"{name}: meta.{key}")
    return dict(meta)


def parse(data: bytes, name: str = "model") -> IntModel:
    """Parse .bnn bytes; every inconsistency is a ModelError naming the file."""
    if data[:8] != MAGIC:
        raise ModelError(f"{name}: not a .bnn model file (bad magic)")
    if len(data) < _PREFIX.size + _HASH_BYTES:
        raise ModelError(f"{name}: truncated or corrupt .bnn file ({len(data)} bytes)")
    _, version, hlen, blen = _PREFIX.unpack_from(data)
    if version not in _READ_VERSIONS:
        raise ModelError(f"{name}: .bnn format version {version} is not supported "
                         f"(this bnn-mcu reads versions {VERSION} and {LATER_VERSION}); "
                         "re-convert the model")
    # Check the claimed sizes against the real file before trusting them.
    if hlen > _MAX_HEADER or _PREFIX.size + hlen + blen + _HASH_BYTES != len(data):
        raise ModelError(f"{name}: truncated or corrupt .bnn file (sizes in the header do not "
                         f"match the file's {len(data)} bytes)")
    body, digest = data[:-_HASH_BYTES], data[-_HASH_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise ModelError(f"{name}: corrupt .bnn file (content hash mismatch)")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + hlen])
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: JSON, huge integers
        raise ModelError(f"{name}: corrupt .bnn header") from None
    blob = memoryview(data)[_PREFIX.size + hlen:_PREFIX.size + hlen + blen]
    if not isinstance(header, dict) or not {"input_shape", "num_classes", "ops"} <= set(header) \
            or not set(header) <= {"input_shape", "num_classes", "ops", "meta"}:
        raise ModelError(f"{name}: malformed .bnn header (expected input_shape, num_classes, ops "
                         "and meta)")
    shape, classes, ops = header["input_shape"], header["num_classes"], header["ops"]
    if not (isinstance(shape, list) and len(shape) == 3
            and all(_is_int(v) and 1 <= v <= _MAX_U16 for v in shape)):
        raise ModelError(f"{name}: bad input shape {str(shape)[:60]} (three sizes in 1..{_MAX_U16})")
    if not _is_int(classes) or not 1 <= classes <= _MAX_U16:
        raise ModelError(f"{name}: bad class count {str(classes)[:40]} (1..{_MAX_U16})")
    if not isinstance(ops, list) or not 1 <= len(ops) <= _MAX_U16:
        raise ModelError(f"{name}: malformed .bnn header (ops must list 1..{_MAX_U16} layers)")
    meta = _check_meta(header.get("meta", {}), name)
    ops = [_op_from_json(d, blob, i, version, name) for i, d in enumerate(ops)]
    model = IntModel(tuple(shape), ops, classes, meta)
    from .validate import validate
    validate(model, name)
    return model


def load(path: str | Path) -> IntModel:
    from ..inputs import read_regular_file

    path = Path(path)
    return parse(read_regular_file(path, MAX_BNN_BYTES, ".bnn model file"), str(path))
