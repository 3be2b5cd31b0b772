"""The `.bnn` file: a versioned, hashed integer model, readable with numpy alone.

Layout (little-endian):
    8 bytes   magic b"BNNMODEL"
    u32       format version
    u32       header length H
    u64       blob length L
    H bytes   header: canonical JSON (model fields, ops, tensor table)
    L bytes   blob: the tensors, each at an 8-byte aligned offset
    32 bytes  SHA-256 of everything above = the model's content hash
The firmware reports the first 8 bytes of that hash; the host refuses a board that differs.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .ops import OP_TYPES, IntModel, Scores, Threshold

MAGIC = b"BNNMODEL"
VERSION = 1
_PREFIX = struct.Struct("<8sIIQ")
_HASH_BYTES = 32
_MAX_HEADER = 16 << 20
_DTYPES = {"<u4": np.dtype("<u4"), "<i4": np.dtype("<i4")}
_STAGE_KINDS = {"threshold": Threshold, "scores": Scores}


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _op_to_json(op, blob: bytearray) -> dict:
    d = {"kind": op.kind}
    for k, v in vars(op).items():
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


def serialize(model: IntModel) -> bytes:
    """The file's bytes, deterministic for a given model."""
    blob = bytearray()
    header = {
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "meta": model.meta,
        "ops": [_op_to_json(op, blob) for op in model.ops],
    }
    hbytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = _PREFIX.pack(MAGIC, VERSION, len(hbytes), len(blob)) + hbytes + bytes(blob)
    return body + hashlib.sha256(body).digest()


def model_hash(model: IntModel) -> str:
    """Hex SHA-256 content hash (the last 32 bytes of the model's .bnn file)."""
    return serialize(model)[-_HASH_BYTES:].hex()


def save(model: IntModel, path: str | Path) -> str:
    data = serialize(model)
    path = Path(path)
    try:
        path.write_bytes(data)
    except OSError as e:
        raise ModelError(f"{path}: cannot write ({e.strerror})") from None
    return data[-_HASH_BYTES:].hex()


def _tensor(spec, blob: memoryview, where: str) -> np.ndarray:
    if not isinstance(spec, dict) or spec.get("tensor") not in _DTYPES:
        raise ModelError(f"{where}: bad tensor entry")
    dt = _DTYPES[spec["tensor"]]
    shape = spec.get("shape")
    off, nbytes = spec.get("offset"), spec.get("nbytes")
    if (not isinstance(shape, list) or not all(isinstance(s, int) and 0 <= s < 2**31 for s in shape)
            or not isinstance(off, int) or not isinstance(nbytes, int)):
        raise ModelError(f"{where}: bad tensor shape or offset")
    count = int(np.prod(shape, dtype=np.int64))
    if count * dt.itemsize != nbytes or off < 0 or off + nbytes > len(blob):
        raise ModelError(f"{where}: tensor lies outside the file")
    return np.frombuffer(blob, dtype=dt, count=count, offset=off).reshape(shape).astype(dt.newbyteorder("="))


def _op_from_json(d: dict, blob: memoryview, i: int):
    where = f"op {i}"
    if not isinstance(d, dict) or d.get("kind") not in OP_TYPES:
        raise ModelError(f"{where}: unknown op kind {d.get('kind') if isinstance(d, dict) else d!r}")
    cls = OP_TYPES[d["kind"]]
    kwargs = {}
    for k, v in d.items():
        if k == "kind":
            continue
        if isinstance(v, dict) and "tensor" in v:
            kwargs[k] = _tensor(v, blob, f"{where}.{k}")
        elif isinstance(v, dict) and v.get("kind") in _STAGE_KINDS:
            stage_cls = _STAGE_KINDS[v["kind"]]
            parts = {sk: _tensor(sv, blob, f"{where}.{k}.{sk}") for sk, sv in v.items() if sk != "kind"}
            try:
                kwargs[k] = stage_cls(**parts)
            except TypeError:
                raise ModelError(f"{where}: bad output stage") from None
        elif isinstance(v, list):
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ModelError(f"{where}: bad {d['kind']} op ({e})") from None


def parse(data: bytes, name: str = "model") -> IntModel:
    """Parse .bnn bytes; every inconsistency is a ModelError naming the file."""
    if data[:8] != MAGIC:
        raise ModelError(f"{name}: not a .bnn model file (bad magic)")
    if len(data) < _PREFIX.size + _HASH_BYTES:
        raise ModelError(f"{name}: truncated or corrupt .bnn file ({len(data)} bytes)")
    _, version, hlen, blen = _PREFIX.unpack_from(data)
    if version != VERSION:
        raise ModelError(f"{name}: .bnn format version {version} is not supported "
                         f"(this bnn-mcu reads version {VERSION}); re-convert the model")
    # Check the claimed sizes against the real file before trusting them.
    if hlen > _MAX_HEADER or _PREFIX.size + hlen + blen + _HASH_BYTES != len(data):
        raise ModelError(f"{name}: truncated or corrupt .bnn file (sizes in the header do not "
                         f"match the file's {len(data)} bytes)")
    body, digest = data[:-_HASH_BYTES], data[-_HASH_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise ModelError(f"{name}: corrupt .bnn file (content hash mismatch)")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{name}: corrupt .bnn header") from None
    blob = memoryview(data)[_PREFIX.size + hlen:_PREFIX.size + hlen + blen]
    try:
        ops = [_op_from_json(d, blob, i) for i, d in enumerate(header["ops"])]
        model = IntModel(tuple(header["input_shape"]), ops, int(header["num_classes"]),
                         dict(header.get("meta", {})))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{name}: malformed .bnn header ({e})") from None
    from .validate import validate
    validate(model, name)
    return model


def load(path: str | Path) -> IntModel:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    return parse(data, str(path))
