"""The serial protocol's bytes, without any I/O (the C twin is firmware/include/bnn_protocol.h).

Frame on the wire: 0x00 | COBS(ver u8 | type u8 | seq u16 | payload | crc32 u32) | 0x00, all
integers little-endian, crc32 = zlib.crc32 over ver..payload. `bnn_protocol.h` documents every
request and reply payload; this module packs and parses them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

VERSION = 1
HEADER_BYTES = 4
CRC_BYTES = 4
OVERHEAD = HEADER_BYTES + CRC_BYTES
REPLY = 0x80
MAX_FRAME_BYTES = 1 << 20  # a host-side bound: longer "frames" are garbage
BULK_MAGIC = b"BNNB"
BULK_HEADER_BYTES = 16
RUN_REPLY_FIXED_BYTES = 8
INFO_FIXED_BYTES = 60


class Msg(IntEnum):
    INFO = 0x01
    RUN = 0x02
    TRACE = 0x03
    BENCH = 0x04
    BULK = 0x05
    EXIT = 0x06
    READY = 0xC0
    TRACE_LAYER = 0xC1
    BULK_RESULT = 0xC2
    ERROR = 0xFF


class Err(IntEnum):
    CRC = 1
    VERSION = 2
    TYPE = 3
    LENGTH = 4
    OVERFLOW = 5
    FRAMING = 6
    BULK = 7
    RANGE = 8


BULK_ERRORS = {
    1: "the target has no bulk region",
    2: "the bulk region has no BNNB header",
    3: "the bulk vectors' input size differs from the model's",
    4: "the bulk header's count does not fit in the region",
    5: "the bulk vectors' CRC does not match the header (corrupted preload)",
}

# Errors a noisy link can cause: the request is sent again. The others are deterministic.
TRANSIENT_ERRORS = (Err.CRC, Err.FRAMING, Err.OVERFLOW, Err.VERSION)


class ProtocolError(ValueError):
    """Bytes that are not a valid frame or payload."""


# ---- COBS -----------------------------------------------------------------------------------

def cobs_encode(data: bytes) -> bytes:
    """COBS: blocks of a code byte c and c-1 non-zero bytes; no 0x00 in the result."""
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        z = data.find(b"\x00", start, min(n, start + 254))
        if z < 0:
            end = min(n, start + 254)
            out.append(end - start + 1)
            out += data[start:end]
            if end - start == 254 and end < n:
                start = end
                continue
            if end - start == 254:  # a full block at the very end: its 0x00 is implied
                out.append(1)
            return bytes(out)
        out.append(z - start + 1)
        out += data[start:z]
        start = z + 1


def cobs_decode(enc: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(enc)
    while i < n:
        code = enc[i]
        if code == 0:
            raise ProtocolError("COBS data contains 0x00")
        end = i + code
        if end > n:
            raise ProtocolError(f"COBS block cut short ({n - i - 1} of {code - 1} bytes)")
        block = enc[i + 1:end]
        if 0 in block:
            raise ProtocolError("COBS data contains 0x00")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ---- frames ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class BadFrame:
    """Bytes between two delimiters that are not a valid frame (reported, never trusted)."""

    reason: str
    raw: bytes


def frame_body(type_: int, seq: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    """Header + payload + CRC, before COBS (tests corrupt this to make bad frames)."""
    body = struct.pack("<BBH", version, type_, seq & 0xFFFF) + bytes(payload)
    return body + struct.pack("<I", zlib.crc32(body))


def encode_frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    return b"\x00" + cobs_encode(frame_body(type_, seq, payload)) + b"\x00"


def decode_frame(enc: bytes) -> Frame:
    """One frame's COBS bytes (no delimiters) -> Frame; ProtocolError when it is not valid."""
    body = cobs_decode(enc)
    if len(body) < OVERHEAD:
        raise ProtocolError(f"frame of {len(body)} bytes is shorter than {OVERHEAD}")
    (crc,) = struct.unpack_from("<I", body, len(body) - CRC_BYTES)
    if zlib.crc32(body[:-CRC_BYTES]) != crc:
        raise ProtocolError("frame CRC mismatch")
    version, type_, seq = struct.unpack_from("<BBH", body)
    if version != VERSION:
        raise ProtocolError(f"frame has protocol version {version}, this host speaks {VERSION}")
    return Frame(type_, seq, bytes(body[HEADER_BYTES:-CRC_BYTES]))


class FrameDecoder:
    """Incremental: feed() any chunk of received bytes, get the frames (and bad frames) it ended."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES):
        self._buf = bytearray()
        self._max = max_frame
        self._overlong = False

    def feed(self, data: bytes) -> list:
        events = []
        start = 0
        while True:
            z = data.find(b"\x00", start)
            if z < 0:
                self._collect(data[start:])
                return events
            self._collect(data[start:z])
            start = z + 1
            if self._overlong:
                events.append(BadFrame(f"more than {self._max} bytes without a delimiter", b""))
            elif self._buf:
                raw = bytes(self._buf)
                try:
                    events.append(decode_frame(raw))
                except ProtocolError as e:
                    events.append(BadFrame(str(e), raw))
            self._buf.clear()
            self._overlong = False

    def _collect(self, chunk: bytes) -> None:
        if self._overlong:
            return
        if len(self._buf) + len(chunk) > self._max:
            self._overlong = True
            self._buf.clear()
            return
        self._buf += chunk


# ---- payloads -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerInfo:
    name: str
    op: str
    out_bytes: int
    macs: int


@dataclass(frozen=True)
class DeviceInfo:
    protocol: int
    abi: int
    model_hash: bytes
    clock_hz: int
    counter_hz: int
    input_bytes: int
    input_shape: tuple  # (H, W, C)
    classes: int
    arena_bytes: int
    param_bytes: int
    macs: int
    stack_used: int
    max_payload: int
    bulk_bytes: int
    board: str
    core: str
    counter_unit: str
    layers: tuple = field(default_factory=tuple)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hash_hex(self) -> str:
        return self.model_hash.hex()

    @property
    def bulk_capacity(self) -> int:
        """How many input vectors fit in the bulk region."""
        if self.bulk_bytes < BULK_HEADER_BYTES or not self.input_bytes:
            return 0
        return (self.bulk_bytes - BULK_HEADER_BYTES) // self.input_bytes


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ProtocolError(f"{self.what} payload is cut short at byte {self.pos}")
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals

    def string(self) -> str:
        (n,) = self.take("<B")
        (raw,) = self.take(f"<{n}s")
        return raw.decode("utf-8", "replace")

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{self.what} payload has {len(self.data) - self.pos} extra bytes")


def parse_info(payload: bytes) -> DeviceInfo:
    r = _Reader(payload, "info")
    proto, _, abi, mhash = r.take("<BBH8s")
    clock, counter_hz, input_bytes, h, w, c, classes, nlayers, _ = r.take("<3I6H")
    arena, params, macs, stack, max_payload, bulk = r.take("<6I")
    board, core, unit = r.string(), r.string(), r.string()
    layers = []
    for _ in range(nlayers):
        out_bytes, lmacs = r.take("<2I")
        layers.append(LayerInfo(r.string(), r.string(), out_bytes, lmacs))
    r.done()
    return DeviceInfo(proto, abi, bytes(mhash), clock, counter_hz, input_bytes, (h, w, c), classes,
                      arena, params, macs, stack, max_payload, bulk, board, core, unit,
                      tuple(layers))


def pack_info(info: DeviceInfo) -> bytes:
    """The device's side (used by test doubles of a device)."""
    h, w, c = info.input_shape

    def s(text: str) -> bytes:
        raw = text.encode()[:255]
        return bytes([len(raw)]) + raw

    out = struct.pack("<BBH8s3I6H6I", info.protocol, 0, info.abi, info.model_hash, info.clock_hz,
                      info.counter_hz, info.input_bytes, h, w, c, info.classes, len(info.layers), 0,
                      info.arena_bytes, info.param_bytes, info.macs, info.stack_used,
                      info.max_payload, info.bulk_bytes)
    out += s(info.board) + s(info.core) + s(info.counter_unit)
    for layer in info.layers:
        out += struct.pack("<2I", layer.out_bytes, layer.macs) + s(layer.name) + s(layer.op)
    return out


def parse_result(payload: bytes, classes: int, what: str = "run") -> tuple[int, int, np.ndarray]:
    """RUN / TRACE reply: (class, counter delta, scores int32 [classes])."""
    if len(payload) != RUN_REPLY_FIXED_BYTES + 4 * classes:
        raise ProtocolError(f"{what} reply has {len(payload)} bytes, expected "
                            f"{RUN_REPLY_FIXED_BYTES + 4 * classes}")
    cls, delta = struct.unpack_from("<iI", payload)
    return cls, delta, np.frombuffer(payload, "<i4", classes, RUN_REPLY_FIXED_BYTES).astype(np.int32)


def pack_result(cls: int, delta: int, scores) -> bytes:
    return struct.pack("<iI", cls, delta) + np.asarray(scores, "<i4").tobytes()


def parse_bulk_result(payload: bytes, classes: int) -> tuple[int, int, int, np.ndarray]:
    """BULK_RESULT: (index, class, counter delta, scores)."""
    if len(payload) < 4:
        raise ProtocolError("bulk result payload is cut short")
    (index,) = struct.unpack_from("<I", payload)
    cls, delta, scores = parse_result(payload[4:], classes, "bulk result")
    return index, cls, delta, scores


def parse_trace_layer(payload: bytes) -> tuple[int, int, bytes]:
    """TRACE_LAYER: (layer, number of layers, output bytes)."""
    if len(payload) < 4:
        raise ProtocolError("trace layer payload is cut short")
    layer, nlayers = struct.unpack_from("<HH", payload)
    return layer, nlayers, payload[4:]


def parse_bench(payload: bytes, nlayers: int) -> tuple[int, int, int, list]:
    """BENCH reply: (class, repeats, total counter delta, per-layer deltas)."""
    if len(payload) != 12 + 4 * nlayers:
        raise ProtocolError(f"bench reply has {len(payload)} bytes, expected {12 + 4 * nlayers}")
    cls, repeats, total = struct.unpack_from("<iII", payload)
    return cls, repeats, total, list(struct.unpack_from(f"<{nlayers}I", payload, 12))


def parse_error(payload: bytes) -> tuple[int, int, int]:
    """ERROR: (code, request type, detail)."""
    if len(payload) != 8:
        raise ProtocolError(f"error payload has {len(payload)} bytes, expected 8")
    code, req, _, detail = struct.unpack("<BBHI", payload)
    return code, req, detail


def pack_error(code: int, req_type: int, detail: int = 0) -> bytes:
    return struct.pack("<BBHI", code, req_type, 0, detail)


_ERROR_TEXT = {
    Err.LENGTH: "the board rejected {req}: payload length should be {detail} bytes",
    Err.TYPE: "the board does not know request {req}: host and firmware protocol differ",
    Err.OVERFLOW: "the board's receive buffer holds {detail} payload bytes, the {req} frame is "
                  "longer",
    Err.BULK: "bulk run refused: {bulk}",
    Err.RANGE: "bulk run refused: the bulk region holds {detail} vectors",
    Err.VERSION: "the board saw protocol version {detail}, it speaks {version}",
    Err.CRC: "the board received {req} with a bad CRC",
    Err.FRAMING: "the board received a malformed frame",
}


def describe_error(code: int, req_type: int, detail: int) -> str:
    """An ERROR frame as one sentence."""
    try:
        req = Msg(req_type).name
    except ValueError:
        req = f"type 0x{req_type:02x}"
    text = _ERROR_TEXT.get(code, "the board reported error {code} for {req} (detail {detail})")
    return text.format(req=req, detail=detail, code=code, version=VERSION,
                       bulk=BULK_ERRORS.get(detail, f"reason {detail}"))


def bench_marks(marks, num_layers: int) -> list:
    """Split the running instruction counts an instruction-counting plugin recorded at each
    bnn_port_mark() during BENCH requests into per-repeat lists: the count of every layer,
    then the tail (argmax and return). Per repeat the runner marks BNN_MARK_BEGIN, one mark
    after each layer, BNN_MARK_END: num_layers + 2 marks."""
    per = num_layers + 2
    if len(marks) % per:
        raise ProtocolError(f"{len(marks)} marks are not whole bench repeats of {per} marks")
    return [[marks[i + j + 1] - marks[i + j] for j in range(per - 1)]
            for i in range(0, len(marks), per)]


def bulk_image(inputs: np.ndarray) -> bytes:
    """The bulk region's contents for uint8 vectors [N, input_bytes] (or [N, H, W(, C)])."""
    x = np.asarray(inputs)
    if x.dtype != np.uint8 or x.ndim < 2:
        raise ValueError(f"bulk inputs must be a uint8 array [N, ...], got {x.dtype} {x.shape}")
    x = np.ascontiguousarray(x.reshape(len(x), -1))
    data = x.tobytes()
    return BULK_MAGIC + struct.pack("<3I", len(x), x.shape[1], zlib.crc32(data)) + data
