"""Python fuzz targets: the .bnn reader and the PyTorch model loader/importer against hostile files.

Each target takes one byte string (what atheris or hypothesis hands it), turns it into a file
and loads it the way the CLI does. The contract under test: every outcome is either a model
or a clean bnn_mcu.errors.BnnError; never another exception, never a hang, never code run
from the file. A model the .bnn reader accepts must also go through everything downstream
(hash, summary, emulator, C generation), so "accepted" is checked, not assumed.

    python fuzz/fuzz_bnnfile.py  -atheris_runs=200000     coverage-guided (atheris)
    python fuzz/fuzz_importer.py -atheris_runs=3000
    tests/test_fuzz_smoke.py                               the same targets under hypothesis

The first byte of an input picks a mode; the rest drives the mode's choices (ByteReader), so a
coverage-guided fuzzer steers the mutations of valid files, not only raw bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import tempfile
import zipfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from bnn_mcu.errors import BnnError

#: Seconds one input may take before it counts as a hang.
INPUT_TIMEOUT = 20.0


class Hang(Exception):
    pass


class Finding(AssertionError):
    """An outcome that breaks the contract (the fuzzers report these as crashes)."""


@contextmanager
def time_limit(seconds: float):
    """SIGALRM-based limit (main thread only), so a hang becomes a Finding, not a stuck run."""
    def on_alarm(signum, frame):
        raise Hang(f"input took more than {seconds:g} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class ByteReader:
    """Choices taken from the fuzz input; zeros once it runs out (deterministic)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return self.u8() | (self.u8() << 8)

    def u32(self) -> int:
        return self.u16() | (self.u16() << 16)

    def pick(self, seq):
        return seq[(self.u16() if len(seq) > 256 else self.u8()) % len(seq)]

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


# ---- hostile JSON values ----------------------------------------------------------------------

_DEEP = "\ue000deep"  # placeholder, replaced by deeply nested brackets in the JSON text

HOSTILE_VALUES = [
    None, True, False, 0, 1, -1, 2, 3, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -2**31,
    -2**31 - 1, 2**32, 2**53 + 1, 2**63, 2**64 + 1, -(2**70), 10**30, 0.5, -0.0, 1e308,
    float("inf"), float("-inf"), float("nan"), "", "x", "conv0", "dense_u8", "maxpool2d",
    "bconv2d", "bdense", "conv2d_u8", "threshold", "scores", "<u4", "<i4", "<f8", "|O",
    "x" * 5000, "\x00", "a\nb", "*/ int evil; /*", '"; int evil; "', "??/", "\\", "../../x",
    "\u202e", [], [0], [1, 1], [3, 3], [0, 0, 0, 0], [1, 1, 1, 1], [28, 28, 1], [-1, 2, 3],
    [2**31, 1, 1], [65535, 65535, 65535], [1.5, 2], ["a"], [None], [[1]], {}, {"kind": "x"},
    {"tensor": "<u4"}, {"tensor": "<u4", "shape": [2**30, 2**30], "offset": 0, "nbytes": 0},
    {"tensor": "<u4", "shape": [], "offset": 0, "nbytes": 4},
    {"tensor": "<u4", "shape": [1], "offset": -4, "nbytes": 4},
    {"tensor": "<u4", "shape": [1] * 40, "offset": 0, "nbytes": 4},
    {"tensor": ["<u4"], "shape": [1], "offset": 0, "nbytes": 4},
    {"kind": "scores", "mult": {}, "bias": {}}, {"kind": ["threshold"]},
    {"kind": "threshold", "thresholds": {"tensor": "<i4", "shape": [1], "offset": 0, "nbytes": 4}},
    _DEEP,
]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _set(obj, path, value):
    if not path:
        return value
    _get(obj, path[:-1])[path[-1]] = value
    return obj


def mutate_json(obj, r: ByteReader, steps: int):
    """Up to `steps` structural mutations of a JSON tree, chosen by r."""
    for _ in range(steps):
        if r.left == 0:
            break
        paths = list(_paths(obj))
        path = r.pick(paths)
        node = _get(obj, path)
        op = r.u8() % 8
        if op <= 2:  # replace with a hostile value
            obj = _set(obj, path, json.loads(json.dumps(r.pick(HOSTILE_VALUES))))
        elif op == 3 and isinstance(node, (int, float)) and not isinstance(node, bool):
            delta = r.pick([1, -1, 2, -2, 7, 255, 256, 2**16, 2**31, -(2**31), 2**32])
            obj = _set(obj, path, node * r.pick([1, 1, 2, -1, 0]) + delta)
        elif op == 4 and path:  # delete
            parent = _get(obj, path[:-1])
            del parent[path[-1]]
        elif op == 5 and isinstance(node, dict):  # add a key
            node[r.pick(["kind", "name", "shape", "extra", "meta", "out", "weights", "kernel",
                         "stride", "padding", "zero_point", "half_zero_point", "pad_value",
                         "in_shape", "or_mask", "tensor", "offset", "nbytes", ""])] = json.loads(
                json.dumps(r.pick(HOSTILE_VALUES)))
        elif op == 6 and isinstance(node, list) and node:  # duplicate or drop an element
            i = r.u8() % len(node)
            if r.u8() & 1:
                node.insert(i, json.loads(json.dumps(node[i])))
            else:
                del node[i]
        elif op == 7 and isinstance(node, list) and len(node) > 1:  # swap two elements
            i, j = r.u8() % len(node), r.u8() % len(node)
            node[i], node[j] = node[j], node[i]
    return obj


def dump_json(obj, r: ByteReader) -> bytes:
    text = json.dumps(obj, sort_keys=bool(r.u8() & 1), allow_nan=True)
    depth = r.pick([10, 100, 1000, 100_000])
    return text.replace(json.dumps(_DEEP), "[" * depth + "]" * depth).encode()


# ---- the .bnn reader --------------------------------------------------------------------------

@lru_cache(maxsize=None)
def seed_models() -> tuple:
    """Small valid models covering every op kind."""
    from bnn_mcu.ir import bnnfile
    from bnn_mcu.ir.synthetic import random_model

    conv = random_model(1, input_shape=(8, 8, 1), layers=[
        ("conv", dict(out=5, k=3, pad=1)), ("pool", dict(k=2)),
        ("conv", dict(out=33, k=3, pad=1, pad_value=0)), ("dense", dict(out=4))])
    dense = random_model(2, input_shape=(5, 3, 2), layers=[
        ("dense", dict(out=40)), ("dense", dict(out=3))])
    half = random_model(3, input_shape=(7, 6, 2), layers=[  # a version 2 file
        ("conv", dict(out=9, k=3, pad=1, zero_point=127, half_zero_point=True)),
        ("dense", dict(out=3))])
    return tuple(bnnfile.serialize(m) for m in (conv, dense, half))


def bnn_file(header: bytes, blob: bytes, version: int = 1, rehash: bool = True,
             sizes: tuple | None = None) -> bytes:
    from bnn_mcu.ir import bnnfile
    hlen, blen = sizes if sizes is not None else (len(header), len(blob))
    body = bnnfile._PREFIX.pack(bnnfile.MAGIC, version, hlen, blen) + header + blob
    return body + (hashlib.sha256(body).digest() if rehash else bytes(32))


def split_bnn(data: bytes) -> tuple:
    from bnn_mcu.ir import bnnfile
    _, _, hlen, blen = bnnfile._PREFIX.unpack_from(data)
    start = bnnfile._PREFIX.size
    return data[start:start + hlen], data[start + hlen:start + hlen + blen]


def make_bnn_input(data: bytes) -> bytes:
    """A fuzz input -> the bytes of a .bnn file (valid hash in most modes)."""
    from bnn_mcu.ir import bnnfile
    r = ByteReader(data)
    mode = r.u8() % 6
    seed = seed_models()[r.u8() % len(seed_models())]
    header, blob = split_bnn(seed)
    seed_version = bnnfile._PREFIX.unpack_from(seed)[1]  # rehashed files keep it
    if mode == 0:  # raw bytes, with or without the magic
        raw = r.rest()
        return (bnnfile.MAGIC + raw) if raw[:1] != b"\xff" else raw[1:]
    if mode == 1:  # a structurally mutated header, rehashed
        obj = mutate_json(json.loads(header), r, 1 + r.u8() % 6)
        return bnn_file(dump_json(obj, r), blob, seed_version)
    if mode == 2:  # blob bytes overwritten (weights, tails, thresholds), rehashed
        b = bytearray(blob)
        for _ in range(1 + r.u8() % 8):
            if b:
                b[r.u16() % len(b)] = r.u8()
        return bnn_file(header, bytes(b), seed_version)
    if mode == 3:  # lying sizes and versions in the prefix
        hlen = r.pick([len(header), 0, 1, len(header) + 1, 2**31, 2**32 - 1, r.u32()])
        blen = r.pick([len(blob), 0, len(blob) - 1, 2**63, 2**64 - 1, r.u32() | (r.u32() << 32)])
        version = r.pick([1, 0, 2, 2**32 - 1])
        body = bnn_file(header, blob, version, rehash=bool(r.u8() & 1), sizes=(hlen, blen))
        return body[:max(0, len(body) - r.u8() % 4)]
    if mode == 4:  # arbitrary header text, rehashed
        return bnn_file(r.rest(), blob, seed_version)
    # a byte-level mutation of the header text, rehashed
    h = bytearray(header)
    for _ in range(1 + r.u8() % 8):
        h[r.u16() % len(h)] = r.u8()
    return bnn_file(bytes(h), blob, seed_version)


def exercise_model(model) -> None:
    """What the tools do with a loaded model: each must work on anything the reader accepts."""
    from bnn_mcu import emulator
    from bnn_mcu.codegen.generate import _env, model_context
    from bnn_mcu.ir import bnnfile
    from bnn_mcu.summary import summary_table, totals

    bnnfile.model_hash(model)
    totals(model)
    summary_table(model)
    if model.input_bytes <= 1 << 16:
        x = np.random.default_rng(0).integers(0, 256, (2,) + tuple(model.input_shape), np.uint8)
        emulator.run(model, x)
    ctx = model_context(model)
    env = _env()
    for name in ("bnn_model.h", "bnn_model.c"):
        env.get_template(name + ".j2").render(**ctx)


def check_bnn(data: bytes, timeout: float = INPUT_TIMEOUT) -> str:
    """Parse one .bnn file's bytes. Returns "model" or "error"; raises Finding otherwise."""
    from bnn_mcu.ir import bnnfile
    try:
        with time_limit(timeout):
            try:
                model = bnnfile.parse(data, "fuzz.bnn")
            except BnnError:
                return "error"
            exercise_model(model)
            return "model"
    except Hang as e:
        raise Finding(f"hang: {e}") from None
    except BnnError as e:
        raise Finding(f"the reader accepted a model that a later step refused: {e}") from e
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
        raise Finding(f"{type(e).__name__}: {e}"[:500]) from e


def bnn_one_input(data: bytes) -> str:
    return check_bnn(make_bnn_input(data))


# ---- PyTorch model files: the loader and the importer ----------------------------------------

#: Created by the payload of every malicious pickle here: must never exist unless trust_pickle.
PICKLE_MARKER = Path(tempfile.gettempdir()) / f"bnn-fuzz-pickle-ran-{os.getpid()}"


class Payload:
    """Unpickling this runs code: builtins.open(PICKLE_MARKER, "w") creates the marker file."""

    def __init__(self, marker: Path = PICKLE_MARKER):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_pickle(protocol: int = 2, marker: Path = PICKLE_MARKER) -> bytes:
    import pickle
    return pickle.dumps({"weight": Payload(marker)}, protocol=protocol)


def malicious_torch_save(marker: Path = PICKLE_MARKER) -> bytes:
    import torch
    buf = io.BytesIO()
    torch.save({"state": Payload(marker)}, buf)
    return buf.getvalue()


@lru_cache(maxsize=None)
def seed_program_bytes(kind: str = "mlp") -> bytes:
    """A small BNN ("mlp": 4x4 input, two binary dense layers; "cnn": 6x6 input, binary conv
    with padding, max-pool, dense) exported with torch.export and saved (a .pt2 archive)."""
    import torch

    from bnn_mcu.nn.export import export_module

    torch.manual_seed(0)
    ep = export_module(_tiny_bnn(kind), (4, 4, 1) if kind == "mlp" else (6, 6, 1))
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return buf.getvalue()


def _tiny_bnn(kind: str):
    """A plain-PyTorch BNN (the importer reads the graph, not our classes)."""
    import torch
    from torch import nn

    def binary(w):
        return torch.where(w >= 0, 1.0, -1.0)

    class Sign(nn.Module):
        def forward(self, x):
            return torch.where(x >= 0, 1.0, -1.0)

    class BinLinear(nn.Linear):
        def forward(self, x):
            return nn.functional.linear(x, binary(self.weight), self.bias)

    class BinConv(nn.Conv2d):
        def forward(self, x):
            return nn.functional.conv2d(x, binary(self.weight), self.bias, padding=1)

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            if kind == "mlp":
                self.body = nn.Sequential(nn.Flatten(1), BinLinear(16, 8), nn.BatchNorm1d(8),
                                          Sign())
                self.fc = BinLinear(8, 3)
            else:
                self.body = nn.Sequential(BinConv(1, 4, 3), nn.BatchNorm2d(4), Sign(),
                                          nn.MaxPool2d(2), nn.Flatten(1))
                self.fc = BinLinear(36, 3)
            self.bn = nn.BatchNorm1d(3)

        def forward(self, x):
            x = (x.float() - 128.0) / 128.0
            if kind != "mlp":
                x = x.unsqueeze(1)
            return self.bn(self.fc(self.body(x)))

    m = Tiny()
    with torch.no_grad():
        for bn in m.modules():
            if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
                bn.running_mean.uniform_(-2, 2)
                bn.running_var.uniform_(0.5, 2)
    return m.eval()


def rezip(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def zip_members(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def zip_bomb(name_like: str, size: int = 0xF0000000) -> bytes:
    """A zip whose one member (64 MiB of zeros, 65 KB deflated) declares `size` bytes (at most
    2**32 - 1) in its local and central headers: a reader that trusts the header allocates it,
    and a real bomb of that size declares the same."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(name_like, "w") as f:
            chunk = bytes(1 << 20)
            for _ in range(64):
                f.write(chunk)
    raw = bytearray(buf.getvalue())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = raw.find(sig)
        raw[i + at:i + at + 4] = struct.pack("<I", size)
    return bytes(raw)


def make_model_input(data: bytes) -> tuple[bytes, str]:
    """A fuzz input -> (file bytes, suffix) of a PyTorch model file."""
    r = ByteReader(data)
    mode = r.u8() % 7
    seed = seed_program_bytes(r.pick(["mlp", "cnn"]))
    if mode == 0:  # raw bytes
        return r.rest(), ".pt"
    members = zip_members(seed)
    names = sorted(members)
    if mode == 1:  # one JSON member of the archive mutated structurally
        jnames = [n for n in names if n.endswith(".json")]
        name = r.pick(jnames)
        try:
            obj = json.loads(members[name])
        except ValueError:
            obj = {}
        members[name] = dump_json(mutate_json(obj, r, 1 + r.u8() % 4), r)
        return rezip(members), ".pt2"
    if mode == 2:  # bytes of one member overwritten
        name = r.pick(names)
        b = bytearray(members[name])
        for _ in range(1 + r.u8() % 8):
            if b:
                b[r.u16() % len(b)] = r.u8()
        members[name] = bytes(b)
        return rezip(members), ".pt2"
    if mode == 3:  # a member replaced by a malicious pickle (plain or torch.save)
        name = r.pick(names)
        members[name] = malicious_pickle() if r.u8() & 1 else malicious_torch_save()
        return rezip(members), ".pt2"
    if mode == 4:  # members dropped, renamed or added
        out = {}
        for n in names:
            op = r.u8() % 4
            if op == 0:
                continue
            out[n if op != 1 else r.pick(["../evil", "/abs/path", n + "/x", "version",
                                          n.replace("models", "weights")])] = members[n]
        out[r.pick(["extra/x.json", "archive/version", "data/x.pkl", "x"])] = r.take(64)
        return rezip(out), ".pt2"
    if mode == 5:  # plain pickles and torch.save files
        kind = r.u8() % 3
        if kind == 0:
            return malicious_pickle(r.pick([0, 2, 4, 5])), ".pt"
        if kind == 1:
            return malicious_torch_save(), ".pt"
        return rezip({"archive/data.pkl": malicious_pickle(), "archive/version": b"3\n"}), ".pt"
    # a zip bomb shaped like an export archive or a torch.save file
    return zip_bomb(r.pick(["model/models/model.json", "archive/data.pkl", "archive/data/0"]),
                    r.pick([1 << 31, 0xF0000000, 0xFFFFFFFF, 1 << 29])), ".pt2"


def check_model_file(data: bytes, suffix: str = ".pt2", timeout: float = INPUT_TIMEOUT,
                     trust_pickle: bool = False) -> str:
    """Load one PyTorch model file the way the CLI does: "model" or "error", else Finding."""
    from bnn_mcu.models import load_model

    PICKLE_MARKER.unlink(missing_ok=True)
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="bnn-fuzz-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            with time_limit(timeout):
                try:
                    load_model(path, trust_pickle=trust_pickle)
                    outcome = "model"
                except BnnError:
                    outcome = "error"
        except Hang as e:
            raise Finding(f"hang: {e}") from None
        except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
            raise Finding(f"{type(e).__name__}: {e}"[:500]) from e
        if PICKLE_MARKER.exists() and not trust_pickle:
            raise Finding("a pickle in the file was executed without --trust-pickle")
        return outcome
    finally:
        os.unlink(path)
        PICKLE_MARKER.unlink(missing_ok=True)


def model_one_input(data: bytes) -> str:
    return check_model_file(*make_model_input(data))


# ---- hand-made hostile archives: each one ran code through torch.export.load or the importer
#      before bnn_mcu/nn/export.py vetted archives (tests/test_safety.py keeps them refused) ----

def _graph_nodes(doc: dict) -> list:
    return doc["graph_module"]["graph"]["nodes"]


def hostile_programs(marker: Path = PICKLE_MARKER) -> dict:
    """name -> .pt2 bytes; loading any of them without the vetting creates `marker`."""
    m = zip_members(seed_program_bytes())
    root = next(iter(m)).split("/", 1)[0]
    model_json = f"{root}/models/model.json"
    wcfg_name = f"{root}/data/weights/model_weights_config.json"
    ccfg_name = f"{root}/data/constants/model_constants_config.json"
    out = {}

    a = dict(m)  # 1. torch.export.load retries a failed weights-only load with full unpickling
    a[f"{root}/data/sample_inputs/model.pt"] = malicious_torch_save(marker)
    out["sample_inputs_pickle"] = rezip(a)

    b = dict(m)  # 2. a weight flagged use_pickle is unpickled with weights_only=False
    cfg = json.loads(m[wcfg_name])
    fqn = sorted(cfg["config"])[0]
    cfg["config"][fqn]["use_pickle"] = True
    b[wcfg_name] = json.dumps(cfg).encode()
    b[f"{root}/data/weights/{cfg['config'][fqn]['path_name']}"] = malicious_torch_save(marker)
    out["weight_use_pickle"] = rezip(b)

    c = dict(m)  # 3. an "opaque object" constant goes through pickle.loads
    cfg = json.loads(m[ccfg_name])
    cfg.setdefault("config", {})["evil"] = {"path_name": "opaque_obj_0", "is_param": False,
                                            "use_pickle": True, "tensor_meta": None}
    c[ccfg_name] = json.dumps(cfg).encode()
    c[f"{root}/data/constants/opaque_obj_0"] = malicious_pickle(marker=marker)
    out["opaque_constant"] = rezip(c)

    d = dict(m)  # 4. symbolic shapes are parsed by sympify, which evaluates Python
    text = m[model_json].decode()
    expr = json.loads(text)["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0]["as_expr"][
        "expr_str"]
    evil = f"(__import__('builtins').open('{marker}', 'w').close() or 1)*{expr}"
    d[model_json] = text.replace(json.dumps(expr), json.dumps(evil), 1).encode()
    out["sympy_expression"] = rezip(d)

    e = dict(m)  # 5. node targets are resolved by name on the torch module and run on constants
    doc = json.loads(m[model_json])
    for node in _graph_nodes(doc):
        if node["target"] == "torch.ops.aten.ge.Scalar":
            node["target"] = "torch.os.system"
            node["inputs"] = [{"name": "command", "arg": {"as_string": f"touch '{marker}'"},
                               "kind": 1}]
            break
    e[model_json] = json.dumps(doc).encode()
    out["node_target"] = rezip(e)

    f = dict(m)  # 6. guard code is exec'd when the program is turned into a module
    doc = json.loads(m[model_json])
    doc["guards_code"] = [f"open('{marker}', 'w').close() is None"]
    f[model_json] = json.dumps(doc).encode()
    out["guards_code"] = rezip(f)

    g = dict(m)  # 7. AOTInductor members: compiled libraries the loader would dlopen
    g[f"{root}/data/aotinductor/model/model.so"] = b"\x7fELF" + bytes(60)
    out["aoti_library"] = rezip(g)
    return out


def memory_bomb_program(elements: int = 1 << 34) -> bytes:
    """A weight whose record is empty: torch.export.load makes torch.zeros(sizes) of the sizes
    the JSON claims (2**34 float32 = 64 GiB)."""
    m = zip_members(seed_program_bytes())
    root = next(iter(m)).split("/", 1)[0]
    wcfg_name = f"{root}/data/weights/model_weights_config.json"
    cfg = json.loads(m[wcfg_name])
    fqn = sorted(cfg["config"])[0]
    meta = cfg["config"][fqn]["tensor_meta"]
    meta["sizes"] = [{"as_int": elements >> 16}, {"as_int": 1 << 16}]
    meta["strides"] = [{"as_int": 1 << 16}, {"as_int": 1}]
    m[wcfg_name] = json.dumps(cfg).encode()
    m[f"{root}/data/weights/{cfg['config'][fqn]['path_name']}"] = b""
    return rezip(m)


# ---- issue 14: archives that two zip readers see differently, and budgets that were per-tensor
#      (tests/test_archive_vetting.py keeps every one refused) --------------------------------

def _seed_parts() -> tuple[dict, str]:
    m = zip_members(seed_program_bytes())
    return m, next(iter(m)).split("/", 1)[0]


def opaque_constant_members(marker: Path, config_name: str | None = None) -> dict:
    """The seed's members plus a constants config (at `config_name`, the real one by default)
    listing an opaque constant whose pickle creates `marker` when torch.export.load reads it."""
    m, root = _seed_parts()
    real = f"{root}/data/constants/model_constants_config.json"
    cfg = json.loads(m[real])
    cfg.setdefault("config", {})["evil"] = {"path_name": "opaque_obj_0", "is_param": False,
                                            "use_pickle": True, "tensor_meta": None}
    m[config_name or real] = json.dumps(cfg).encode()
    m[f"{root}/data/constants/opaque_obj_0"] = malicious_pickle(marker=marker)
    return m


def front_zip_differential(marker: Path) -> bytes:
    """A malicious archive in front of a harmless one of the same layout (same names and
    sizes). zipfile finds the harmless one's end record and shifts its offsets by the bytes in
    front; torch's reader takes the offsets as written and reads the malicious one."""
    evil = opaque_constant_members(marker)
    _, root = _seed_parts()
    cfg = f"{root}/data/constants/model_constants_config.json"
    opaque = f"{root}/data/constants/opaque_obj_0"
    harmless = dict(evil)
    harmless[cfg] = json.dumps({"config": {}}).encode().ljust(len(evil[cfg]), b" ")
    harmless[opaque] = bytes(len(evil[opaque]))
    return rezip(evil) + rezip(harmless)


def casefold_config(marker: Path) -> bytes:
    """A second constants config whose name differs only in case (torch's reader looks names
    up without regard to case and may take it), listing the opaque constant."""
    _, root = _seed_parts()
    return rezip(opaque_constant_members(
        marker, f"{root}/data/constants/model_constants_config.JSON"))


def duplicate_member() -> bytes:
    """Two members of one name: readers may take either."""
    m, root = _seed_parts()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in m.items():
            z.writestr(name, data)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr(f"{root}/models/model.json", b"{}")
    return buf.getvalue()


def edited_program(edit) -> bytes:
    """The seed program with edit(members, root) applied to its JSON documents and members."""
    m, root = _seed_parts()
    edit(m, root)
    return rezip(m)


def pow_expression_program() -> bytes:
    """A shape expression sympy would compute for ever: Max(s77, 10**10**10)."""
    def edit(m, root):
        name = f"{root}/models/model.json"
        doc = json.loads(m[name])
        size = doc["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0]["as_expr"]
        size["expr_str"] = "Max(s77, 10**10**10)"
        m[name] = json.dumps(doc).encode()
    return edited_program(edit)


def json_bomb_program(mib: int = 1000) -> bytes:
    """models/model.json replaced by `mib` MiB of [{},{},...], deflated (about 1 MB per GB)."""
    m, root = _seed_parts()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in m.items():
            if name != f"{root}/models/model.json":
                z.writestr(name, data)
        with z.open(f"{root}/models/model.json", "w") as f:
            chunk = b"{}," * (1 << 20)
            f.write(b"[")
            for _ in range(mib // 3):
                f.write(chunk)
            f.write(b"{}]")
    return buf.getvalue()


def zeros_weights_program(count: int = 2, elements: int = 1 << 27, dtype: int = 11) -> bytes:
    """`count` weights with empty records declaring `elements` elements of complex128 (schema
    dtype 11) each: torch.export.load makes torch.zeros of each (2 x 2 GiB)."""
    def edit(m, root):
        name = f"{root}/data/weights/model_weights_config.json"
        cfg = json.loads(m[name])
        for fqn in sorted(cfg["config"])[:count]:
            entry = cfg["config"][fqn]
            entry["tensor_meta"].update(dtype=dtype, sizes=[{"as_int": elements}],
                                        strides=[{"as_int": 1}])
            m[f"{root}/data/weights/{entry['path_name']}"] = b""
        m[name] = json.dumps(cfg).encode()
    return edited_program(edit)


def checkpoint_file(**config) -> bytes:
    """A bnn-mcu checkpoint (torch.save of a dict) whose model config is edited by `config`;
    its state dict is empty, so only the config can make it allocate."""
    import torch

    from bnn_mcu.nn.export import CHECKPOINT_FORMAT
    cfg = {"preset": "mlp", "input_shape": [28, 28, 1], "num_classes": 10, "width": 64,
           "depth": 1, "dropout_in": None, "dropout_hidden": None, "stochastic": False, **config}
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": cfg, "state_dict": {}}, buf)
    return buf.getvalue()


# ---- the two zip readers (zipfile and torch's miniz): a zip the vetting accepts must look the
#      same to both, member by member --------------------------------------------------------

@lru_cache(maxsize=None)
def _small_zips() -> tuple:
    """Small zips of the shapes the loader meets: a torch.save file and two tiny archives."""
    import torch
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6, dtype=torch.float32)}, buf)
    plain = rezip({"archive/data.pkl": b"\x80\x02}q\x00.", "archive/version": b"3\n",
                   "archive/data/0": bytes(range(64))})
    deflated = rezip({"a/x.json": b'{"config": {}}' * 20, "a/y": b"y" * 300},
                     zipfile.ZIP_DEFLATED)
    return buf.getvalue(), plain, deflated


# Offsets of the fields of the zip structures (local header, central header, end records)
# that a reader uses to find members: the differential mutations edit these.
_FIELDS = {b"PK\x03\x04": (6, 8, 14, 18, 22, 26, 28), b"PK\x01\x02": (8, 10, 16, 20, 24, 28, 30,
                                                                       42),
           b"PK\x05\x06": (8, 10, 12, 16, 20), b"PK\x06\x06": (24, 32, 40, 48),
           b"PK\x06\x07": (8,)}


def make_zip_pair_input(data: bytes) -> bytes:
    """A fuzz input -> the bytes of a zip built to make zipfile and torch's reader disagree."""
    r = ByteReader(data)
    zips = _small_zips()
    base = bytearray(r.pick(zips))
    mode = r.u8() % 7
    if mode == 0:  # raw bytes
        return r.rest()
    if mode == 1:  # something in front: junk, or a whole other zip (the reported attack)
        front = r.pick([bytes(r.u8()), r.pick(zips), r.take(r.u8())])
        return front + bytes(base)
    if mode == 2:  # something after: junk, a zip, a comment
        tail = r.pick([b"x" * r.u8(), r.pick(zips), r.take(r.u8())])
        if r.u8() & 1:  # as the end record's comment (the length field says so)
            base[-2:] = struct.pack("<H", len(tail))
        return bytes(base) + tail
    if mode == 3:  # a member's name changed in case or duplicated
        members = zip_members(bytes(base))
        names = sorted(members)
        name = r.pick(names)
        other = r.pick([name.upper(), name[:-1] + name[-1].swapcase(), name])
        buf = io.BytesIO()
        import warnings
        with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
            warnings.simplefilter("ignore")
            for n in names:
                z.writestr(n, members[n])
            z.writestr(other, r.take(r.u8() % 64))
        return buf.getvalue()
    if mode == 4:  # a structural field rewritten (offsets, sizes, name lengths, counts)
        for _ in range(1 + r.u8() % 3):
            sig = r.pick(list(_FIELDS))
            spots = [i for i in range(len(base)) if base.startswith(sig, i)]
            if not spots:
                continue
            at = r.pick(spots) + r.pick(_FIELDS[sig])
            width = 2 if sig == b"PK\x05\x06" and at - spots[0] < 12 else 4
            value = r.pick([0, 1, 2, 0xFFFF, 0xFFFFFFFF, r.u32(), r.u16()])
            base[at:at + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
        return bytes(base)
    if mode == 5:  # two zips, the second one's central directory rebased onto the first
        front = bytearray(r.pick(zips))
        shift = len(front) if r.u8() & 1 else r.u16()
        tail = bytearray(base)
        end = len(tail) - 22
        cd_off = struct.unpack_from("<L", tail, end + 16)[0]
        struct.pack_into("<L", tail, end + 16, (cd_off + shift) & 0xFFFFFFFF)
        return bytes(front) + bytes(tail)
    # a few bytes overwritten anywhere
    for _ in range(1 + r.u8() % 8):
        if base:
            base[r.u16() % len(base)] = r.u8()
    return bytes(base)


def _views(data: bytes):
    """(names, sizes, bytes) as zipfile and as torch's reader see them; None where a reader
    refuses the archive; a member a reader cannot read is None."""
    import torch
    out = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            root = infos[0].filename.split("/", 1)[0] + "/" if infos else ""
            view = {}
            for i in infos:
                try:
                    body = z.read(i)
                except Exception:  # noqa: BLE001 - a damaged member
                    body = None
                view[i.filename[len(root):] if i.filename.startswith(root) else i.filename] = \
                    (i.file_size, body)
            out.append(view)
    except Exception:  # noqa: BLE001
        out.append(None)
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        view = {}
        for n in reader.get_all_records():
            try:
                body = bytes(reader.get_record(n))
            except Exception:  # noqa: BLE001
                body = None
            view[n] = (reader.get_record_size(n), body)
        out.append(view)
    except Exception:  # noqa: BLE001
        out.append(None)
    return out


def check_zip_pair(data: bytes, timeout: float = INPUT_TIMEOUT) -> str:
    """The differential oracle: "refused" (a clean ModelError) or "same" (accepted, and both
    readers list the same members with the same sizes and, where both can read a member, the
    same bytes); anything else is a Finding."""
    from bnn_mcu.errors import ModelError
    from bnn_mcu.nn.archive import open_archive

    try:
        with time_limit(timeout):
            try:
                archive = open_archive(Path("fuzz.zip"), data)
            except ModelError:
                return "refused"
            if sum(archive.sizes.values()) > 16 << 20:
                return "same"  # accepted by declared sizes; too big to read both views here
            py, pt = _views(data)
    except Hang as e:
        raise Finding(f"hang: {e}") from None
    except Finding:
        raise
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
        raise Finding(f"{type(e).__name__}: {e}"[:500]) from e
    if py is None or pt is None or list(py) != list(pt) or list(pt) != archive.names:
        raise Finding(f"accepted, but the readers list different members: {py and list(py)} / "
                      f"{pt and list(pt)}"[:500])
    for name in pt:
        (size_a, body_a), (size_b, body_b) = py[name], pt[name]
        if size_a != size_b or (body_a is not None and body_b is not None and body_a != body_b):
            raise Finding(f"accepted, but {name!r} differs between the readers")
    return "same"


def zip_pair_one_input(data: bytes) -> str:
    return check_zip_pair(make_zip_pair_input(data))
