"""The serial protocol: codec unit tests, and DeviceLink against a misbehaving fake device.

The fake device is a Python thread speaking the protocol behind a local TCP socket (the link
reaches it through pyserial's socket://, like QEMU and the host build); it computes the
stand-in model of tests/fixtures/proto_model, so every accepted result is checked exactly.
"""

from __future__ import annotations

import importlib.util
import random
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from bnn_mcu.errors import TargetError
from bnn_mcu.targets import protocol as P
from bnn_mcu.targets.link import DeviceLink, open_link


def _load_twin():
    path = Path(__file__).parent / "fixtures" / "proto_model" / "twin.py"
    spec = importlib.util.spec_from_file_location("proto_model_twin", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


twin = _load_twin()
RNG = np.random.default_rng(1234)
X = RNG.integers(0, 256, size=(120, twin.INPUT_BYTES), dtype=np.uint8)


# ---- COBS ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data, enc", [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255)) + b"\x01"),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
])
def test_cobs_known_encodings(data, enc):
    assert P.cobs_encode(data) == enc
    assert P.cobs_decode(enc) == data


def test_cobs_accepts_the_short_form_of_a_final_full_block():
    # Canonical COBS ends a 254-byte run without the empty block the encoders here add.
    assert P.cobs_decode(b"\xff" + bytes(range(1, 255))) == bytes(range(1, 255))


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 256, 507, 508, 509, 762, 1000])
@pytest.mark.parametrize("fill", [0x00, 0x01, 0xFF])
def test_cobs_round_trip_at_block_boundaries(n, fill):
    for data in (bytes([fill]) * n, bytes([fill]) * n + b"\x00", b"\x00" + bytes([fill]) * n,
                 bytes([fill]) * n + b"\x00" + bytes([fill]) * n):
        enc = P.cobs_encode(data)
        assert 0 not in enc
        assert len(enc) <= len(data) + len(data) // 254 + 2
        assert P.cobs_decode(enc) == data


def test_cobs_every_byte_value_at_every_position():
    data = bytes(range(256)) * 3 + bytes(reversed(range(256)))
    for shift in range(0, 256, 7):
        d = data[shift:] + data[:shift]
        assert P.cobs_decode(P.cobs_encode(d)) == d


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_cobs_round_trip_any_bytes(data):
    enc = P.cobs_encode(data)
    assert 0 not in enc
    assert P.cobs_decode(enc) == data


@pytest.mark.parametrize("bad", [b"\x05\x11\x22", b"\x03\x11\x00", b"\x00", b"\x02"])
def test_cobs_rejects_cut_or_zero_blocks(bad):
    with pytest.raises(P.ProtocolError):
        P.cobs_decode(bad)


# ---- frames -------------------------------------------------------------------------------

def test_frame_layout():
    enc = P.encode_frame(P.Msg.RUN, 0x1234, b"\x07\x00\x09")
    assert enc[0] == 0 and enc[-1] == 0 and 0 not in enc[1:-1]
    body = P.cobs_decode(enc[1:-1])
    assert body[:4] == bytes([P.VERSION, 0x02, 0x34, 0x12])
    assert body[4:7] == b"\x07\x00\x09"
    assert body[7:] == struct.pack("<I", zlib.crc32(body[:7]))


@pytest.mark.parametrize("size", [0, 1, 253, 254, 255, 600, 4096, 65535, 200_000])
def test_frame_round_trip_sizes(size):
    payload = bytes(RNG.integers(0, 256, size, dtype=np.uint8))
    for t in (P.Msg.RUN, P.Msg.ERROR, P.Msg.READY):
        for seq in (0, 1, 0xFF, 0x100, 0xFFFF):
            enc = P.encode_frame(t, seq, payload)
            assert P.decode_frame(enc[1:-1]) == P.Frame(t, seq, payload)


def test_every_single_bit_error_is_detected():
    body = P.frame_body(P.Msg.RUN | P.REPLY, 77, P.pack_result(3, 99, np.arange(7)))
    for bit in range(8 * len(body)):
        bad = bytearray(body)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(P.ProtocolError):
            P.decode_frame(P.cobs_encode(bytes(bad)))


def test_decode_rejects_short_and_foreign_version():
    with pytest.raises(P.ProtocolError, match="shorter"):
        P.decode_frame(P.cobs_encode(b"\x01\x02\x03"))
    with pytest.raises(P.ProtocolError, match="version 2"):
        P.decode_frame(P.cobs_encode(P.frame_body(P.Msg.INFO, 1, b"", version=2)))


def test_decoder_any_chunking_and_garbage():
    frames = [P.Frame(P.Msg.RUN | P.REPLY, i, bytes([i % 3]) * (i * 37 % 700)) for i in range(40)]
    rnd = random.Random(5)
    stream = bytearray()
    for f in frames:
        stream += P.encode_frame(f.type, f.seq, f.payload)
        stream += bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))  # junk, zeros too
    for chunk in (1, 3, 254, 255, 1000, len(stream)):
        dec = P.FrameDecoder()
        events = []
        for i in range(0, len(stream), chunk):
            events += dec.feed(bytes(stream[i:i + chunk]))
        good = [e for e in events if isinstance(e, P.Frame)]
        assert good == frames  # every frame, in order, none made up from the junk


def test_decoder_truncated_frame_is_reported_and_the_next_one_kept():
    a = P.encode_frame(P.Msg.INFO | P.REPLY, 1, b"abc" * 30)
    b = P.encode_frame(P.Msg.RUN | P.REPLY, 2, b"xyz")
    events = P.FrameDecoder().feed(a[: len(a) // 2] + b)
    assert isinstance(events[0], P.BadFrame)
    assert events[1:] == [P.Frame(P.Msg.RUN | P.REPLY, 2, b"xyz")]


def test_decoder_bounds_memory_on_endless_garbage():
    dec = P.FrameDecoder(max_frame=1000)
    assert dec.feed(b"\x01" * 5000) == []
    events = dec.feed(b"\x00" + P.encode_frame(P.Msg.EXIT | P.REPLY, 3))
    assert isinstance(events[0], P.BadFrame) and "without a delimiter" in events[0].reason
    assert events[1] == P.Frame(P.Msg.EXIT | P.REPLY, 3, b"")


# ---- payloads -----------------------------------------------------------------------------

def test_info_round_trip():
    info = twin.info(board="mps2-an386", core="cortex-m4", stack_used=1234, bulk_bytes=1 << 20)
    assert P.parse_info(P.pack_info(info)) == info
    assert info.bulk_capacity == ((1 << 20) - 16) // 600


def test_info_rejects_cut_and_extra_bytes():
    raw = P.pack_info(twin.info())
    with pytest.raises(P.ProtocolError, match="cut short"):
        P.parse_info(raw[:-1])
    with pytest.raises(P.ProtocolError, match="extra"):
        P.parse_info(raw + b"\x00")


def test_result_parsing_checks_the_length():
    raw = P.pack_result(-2, 0xFFFFFFFF, [-(2**31), 2**31 - 1, 0, 1, -1, 5, 6])
    cls, delta, s = P.parse_result(raw, 7)
    assert (cls, delta) == (-2, 0xFFFFFFFF)
    assert s.tolist() == [-(2**31), 2**31 - 1, 0, 1, -1, 5, 6] and s.dtype == np.int32
    for bad in (raw[:-1], raw + b"\x00"):
        with pytest.raises(P.ProtocolError):
            P.parse_result(bad, 7)


def test_bench_marks_split_into_repeats():
    marks = [100, 110, 130, 160, 165, 200, 210, 230, 260, 265]  # 2 repeats of a 3-layer model
    assert P.bench_marks(marks, 3) == [[10, 20, 30, 5], [10, 20, 30, 5]]
    with pytest.raises(P.ProtocolError, match="whole bench repeats"):
        P.bench_marks(marks[:-1], 3)


def test_bulk_image_layout():
    img = P.bulk_image(X[:5])
    assert img[:4] == b"BNNB"
    assert struct.unpack_from("<3I", img, 4) == (5, 600, zlib.crc32(X[:5].tobytes()))
    assert img[16:] == X[:5].tobytes()
    with pytest.raises(ValueError):
        P.bulk_image(X[:5].astype(np.int16))


# ---- a fake device ------------------------------------------------------------------------

class FakeDevice:
    """The protocol in Python behind 127.0.0.1:<port>. `mangle(k, data)` sees every reply frame
    but READY and INFO's (k counts them) and returns the chunks to really send;
    `drop_request(n, frame)` can make the device ignore request n (INFO requests not counted;
    the link may send them at any time as readiness probes)."""

    def __init__(self, mangle=None, drop_request=None, info=None, ready=True, answer=True,
                 bulk=None):
        self.info = info or twin.info()
        self.mangle, self.drop_request = mangle, drop_request
        self.ready, self.answer, self.bulk = ready, answer, bulk
        self.requests: list = []  # all but INFO
        self.info_requests = 0
        self.bad_requests = 0
        self._k = 0
        self._stop = threading.Event()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._srv.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._srv.close()

    def _serve(self):
        self._srv.settimeout(5)
        try:
            conn, _ = self._srv.accept()
        except OSError:
            return
        conn.settimeout(0.05)
        self.conn = conn
        dec = P.FrameDecoder()
        if self.ready:
            self._send(P.encode_frame(P.Msg.READY, 0, P.pack_info(self.info)))
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for ev in dec.feed(data):
                    if isinstance(ev, P.BadFrame):
                        self.bad_requests += 1
                        self._emit(self.error_for(ev))
                        continue
                    if ev.type == P.Msg.INFO:
                        self.info_requests += 1
                        if self.answer:
                            self._send(self.respond(ev)[0])
                        continue
                    self.requests.append(ev)
                    n = len(self.requests) - 1
                    if self.drop_request and self.drop_request(n, ev):
                        continue
                    if self.answer:
                        for out in self.respond(ev):
                            self._emit(out)
                    if ev.type == P.Msg.EXIT:
                        return

    @staticmethod
    def error_for(bad: P.BadFrame) -> bytes:
        """The firmware's answer to a damaged frame (bnn_frame_reader_push): a CRC error names
        the type and seq of the header it could not check; a cut frame names 0xFFFF."""
        try:
            body = P.cobs_decode(bad.raw)
        except P.ProtocolError:
            body = b""
        if len(body) < P.OVERHEAD:
            return P.encode_frame(P.Msg.ERROR, 0xFFFF, P.pack_error(P.Err.FRAMING, 0))
        seq = body[2] | body[3] << 8
        return P.encode_frame(P.Msg.ERROR, seq, P.pack_error(P.Err.CRC, body[1]))

    def _emit(self, data: bytes):
        chunks = self.mangle(self._k, data) if self.mangle else [data]
        self._k += 1
        for c in chunks:
            self._send(c)

    def _send(self, data: bytes):
        try:
            self.conn.sendall(data)
        except OSError:
            pass

    def respond(self, f: P.Frame) -> list:
        n, seq = twin.INPUT_BYTES, f.seq

        def reply(payload=b"", t=f.type | P.REPLY):
            return P.encode_frame(t, seq, payload)

        if f.type == P.Msg.INFO and not f.payload:
            return [reply(P.pack_info(self.info))]
        if f.type in (P.Msg.RUN, P.Msg.TRACE) and len(f.payload) == n:
            x = np.frombuffer(f.payload, np.uint8)
            s = twin.scores(x)[0]
            out = []
            if f.type == P.Msg.TRACE:
                out = [reply(struct.pack("<HH", i, 3) + b, P.Msg.TRACE_LAYER)
                       for i, b in enumerate(twin.layers(x))]
            return out + [reply(P.pack_result(int(np.argmax(s)), 1000 + int(x[0]), s))]
        if f.type == P.Msg.BENCH and len(f.payload) == n + 4:
            (reps,) = struct.unpack_from("<I", f.payload)
            return [reply(struct.pack("<iII3I", 0, reps, 60, 10, 20, 30))]
        if f.type == P.Msg.BULK and len(f.payload) == 8 and self.bulk is not None:
            first, count = struct.unpack("<II", f.payload)
            count = count or len(self.bulk) - first
            out = []
            for i in range(first, first + count):
                s = twin.scores(self.bulk[i])[0]
                out.append(reply(struct.pack("<I", i) + P.pack_result(int(np.argmax(s)), 7, s),
                                 P.Msg.BULK_RESULT))
            return out + [reply(struct.pack("<II", first, count))]
        if f.type == P.Msg.EXIT:
            return [reply()]
        return [reply(P.pack_error(P.Err.LENGTH, f.type, 600), P.Msg.ERROR)]


@pytest.fixture
def device(request):
    devs = []

    def make(**kw):
        d = FakeDevice(**kw)
        devs.append(d)
        return d

    yield make
    for d in devs:
        d.close()


def connect(dev, timeout=0.5, **kw) -> DeviceLink:
    return open_link(dev.url, timeout=timeout, **kw)


def check_exact(res, x):
    assert np.array_equal(res.scores, twin.scores(x))
    assert np.array_equal(res.classes, twin.classes(x))


def corrupt(data: bytes, where: float = 0.5) -> bytes:
    b = bytearray(data)
    i = max(1, min(len(b) - 2, int(len(b) * where)))
    b[i] = b[i] ^ 0x40 or 0x41  # never 0x00: keep the frame boundaries, break the CRC
    return bytes(b)


def at(ks, fn):
    """A mangler applying fn to the reply frames numbered in ks."""
    ks = set(ks)
    return lambda k, data: fn(data) if k in ks else [data]


class CorruptingSerial:
    """Wraps a real pyserial object; `damage(n, frame)` may change the n-th frame written (the
    link writes one request frame per write). Logs the seq of every request sent."""

    def __init__(self, ser, damage=None):
        self.ser, self.damage, self.n, self.seqs = ser, damage, 0, []

    def __getattr__(self, name):
        return getattr(self.ser, name)

    def __setattr__(self, name, value):
        if name == "timeout":
            self.ser.timeout = value
        else:
            object.__setattr__(self, name, value)

    def write(self, data):
        self.n += 1
        self.seqs.append(P.decode_frame(data[1:-1]).seq)
        return self.ser.write(self.damage(self.n, data) if self.damage else data)


def corrupting_link(dev, **kw):
    ser = CorruptingSerial(serial.serial_for_url(dev.url, timeout=0))
    return ser, DeviceLink(ser, owns_serial=True, **kw)


# ---- DeviceLink: the good path ----------------------------------------------------------

def test_run_clean(device):
    dev = device()
    with connect(dev) as link:
        info = link.wait_ready()
        assert info == twin.info()
        done = []
        res = link.run(X, window=6, progress=lambda i, n: done.append((i, n)))
        check_exact(res, X)
        assert res.counts.tolist() == (1000 + X[:, 0].astype(np.int64)).tolist()
        assert done[-1] == (len(X), len(X)) and len(done) == len(X)
        assert link.stats.retransmits == 0 and link.stats.bad_frames == 0
    assert len(dev.requests) == len(X)


def test_run_accepts_image_shaped_inputs_and_rejects_wrong_ones(device):
    with connect(device()) as link:
        link.wait_ready()
        check_exact(link.run(X[:4].reshape(4, 10, 20, 3)), X[:4])
        with pytest.raises(TargetError, match="600 bytes"):
            link.run(X[:4, :599])
        with pytest.raises(TargetError, match="uint8"):
            link.run(X[:4].astype(np.int32))
        assert link.run(X[:0]).scores.shape == (0, 7)


def test_trace_bench_exit(device):
    dev = device()
    with connect(dev) as link:
        link.wait_ready()
        tr = link.trace(X[3])
        assert tr.layers == twin.layers(X[3])
        assert tr.scores.tolist() == twin.scores(X[3])[0].tolist()
        b = link.bench(X[3], repeats=4)
        assert (b.layers, b.total, b.repeats, b.names) == ([10, 20, 30], 60, 4,
                                                             ["mix", "xor", "scores"])
        assert b.unit == "instructions"
        link.exit()
    assert dev.requests[-1].type == P.Msg.EXIT


def test_info_before_ready_is_fetched_on_demand(device):
    dev = device(ready=False)
    with connect(dev) as link:
        check_exact(link.run(X[:3]), X[:3])
    assert dev.info_requests == 1


def test_missed_ready_frame_is_replaced_by_a_probe(device):
    dev = device(ready=False)
    with connect(dev) as link:
        assert link.wait_ready(timeout=10.0, probe_every=0.1) == twin.info()
    assert dev.info_requests >= 1


# ---- DeviceLink: damaged, lost, repeated and reordered frames -----------------------------

def test_corrupted_replies_are_retried(device):
    dev = device(mangle=at({3, 10, 11, 50}, lambda d: [corrupt(d)]))
    with connect(dev) as link:
        link.wait_ready()
        check_exact(link.run(X, window=4), X)
        assert link.stats.bad_frames == 4
        assert link.stats.retransmits >= 4


def test_truncated_replies_are_retried(device):
    dev = device(mangle=at({2, 40}, lambda d: [d[: len(d) // 2] + b"\x00"]))
    with connect(dev) as link:
        link.wait_ready()
        check_exact(link.run(X, window=4), X)
        assert link.stats.bad_frames == 2


def test_lost_replies_in_the_middle_and_at_the_end(device):
    last = len(X) - 1  # reply k answers request k
    dev = device(mangle=at({5, 6, last}, lambda d: []))
    with connect(dev, timeout=0.3) as link:
        link.wait_ready()
        t0 = time.monotonic()
        check_exact(link.run(X, window=8), X)
        assert link.stats.retransmits >= 3
        assert time.monotonic() - t0 < 5


def test_lost_requests_are_sent_again(device):
    dev = device(drop_request=lambda n, f: n in (0, 7, 8, len(X) + 2))
    with connect(dev, timeout=0.3) as link:
        link.wait_ready()
        check_exact(link.run(X, window=5), X)
        assert link.stats.retransmits >= 4


def test_damaged_requests_are_sent_again(device):
    dev = device()
    ser, link = corrupting_link(dev, timeout=0.3)
    with link:
        # pyserial's open() may flush the READY frame: readiness probes are never damaged
        link.wait_ready(timeout=10.0)
        ser.n, ser.damage = 0, lambda n, d: corrupt(d, 0.3) if n in (1, 2, 9, 30) else d
        check_exact(link.run(X, window=4), X)
        assert link.stats.retransmits >= 4
    assert dev.bad_requests == 4


def test_duplicated_replies_are_dropped(device):
    dev = device(mangle=lambda k, d: [d, d] if k % 3 == 1 else [d])
    with connect(dev) as link:
        link.wait_ready()
        check_exact(link.run(X, window=4), X)
        assert link.stats.stale_frames >= len(X) // 3
        assert link.stats.retransmits == 0


def test_reordered_replies_are_matched_by_sequence_number(device):
    held = []

    def swap(k, d):
        if k >= 1 and k % 2 == 1:
            held.append(d)
            return []
        out = [d] + held
        held.clear()
        return out

    dev = device(mangle=swap)
    with connect(dev) as link:
        link.wait_ready()
        check_exact(link.run(X, window=4), X)


def test_garbage_between_frames(device):
    rnd = random.Random(9)

    def junk(k, d):
        return [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 60))), d]

    dev = device(mangle=junk)
    with connect(dev) as link:
        link.wait_ready()
        check_exact(link.run(X, window=4), X)
        tr = link.trace(X[0])
        assert tr.layers == twin.layers(X[0])


def test_intact_frame_with_a_wrong_payload_is_never_accepted(device):
    # A reply with a good CRC but one byte too many (a firmware bug, not noise): retried, and
    # when it never gets better, an error rather than a result.
    def longer(d):
        f = P.decode_frame(d[1:-1])
        return [P.encode_frame(f.type, f.seq, f.payload + b"\x00")]

    dev = device(mangle=at({4}, longer))
    with connect(dev) as link:
        link.wait_ready()
        check_exact(link.run(X[:10]), X[:10])
        assert link.stats.retransmits == 1
    dev2 = device(mangle=lambda k, d: longer(d))
    with connect(dev2, retries=2) as link:
        link.wait_ready()
        with pytest.raises(TargetError, match="RUN reply failed 3 times"):
            link.run(X[:10])


def test_replies_to_other_requests_are_not_results(device):
    def reseq(d):
        f = P.decode_frame(d[1:-1])
        return [P.encode_frame(f.type, (f.seq + 1000) & 0xFFFF, f.payload)]

    dev = device(mangle=lambda k, d: reseq(d))
    with connect(dev, timeout=0.2, retries=1) as link:
        link.wait_ready(timeout=10.0, probe_every=0.05)  # READY may be flushed by open()
        with pytest.raises(TargetError, match="no reply from the board"):
            link.run(X[:3])
        assert link.stats.stale_frames >= 2


def test_trace_with_a_lost_layer_is_asked_again(device):
    dev = device(mangle=at({0}, lambda d: [corrupt(d)]))  # layer 0 of the trace
    with connect(dev) as link:
        link.wait_ready()
        assert link.trace(X[5]).layers == twin.layers(X[5])
        assert link.stats.retransmits == 1
        assert [r.type for r in dev.requests] == [P.Msg.TRACE, P.Msg.TRACE]


def test_bulk_with_lost_results(device):
    dev = device(bulk=X, mangle=at({3, 4, 59}, lambda d: []))
    with connect(dev) as link:
        link.wait_ready()
        res = link.bulk()
        assert res.first == 0
        check_exact(res, X)
        asked = [struct.unpack("<II", r.payload) for r in dev.requests]
        assert asked == [(0, 0), (3, 1), (4, 1), (59, 1)]
        part = link.bulk(count=10, first=100)
        assert part.first == 100
        check_exact(part, X[100:110])


# ---- DeviceLink: the retry budget (progress, not per request) --------------------------------

def test_a_link_that_damages_most_frames_completes_exactly(device):
    """Half the frames damaged in each direction: one attempt in four gets through, so many
    requests need more than the 4 attempts a per-request budget of retries=3 allowed. The
    budget counts failures since the last completed request: the run completes, exactly."""
    down, up = random.Random(3), random.Random(4)
    dev = device(mangle=lambda k, d: [corrupt(d, down.random())] if down.random() < 0.5 else [d])
    ser, link = corrupting_link(dev, timeout=0.5)
    with link:
        link.wait_ready(timeout=10.0)  # READY may be flushed by open(): probes are not damaged
        ser.seqs.clear()
        ser.damage = lambda n, d: corrupt(d, up.random()) if up.random() < 0.5 else d
        t0 = time.monotonic()
        check_exact(link.run(X, window=4), X)
        assert time.monotonic() - t0 < 20
        attempts = Counter(ser.seqs)
        assert len(attempts) == len(X) and max(attempts.values()) > 4, attempts.most_common(3)
        assert link.stats.retransmits > len(X) > link.stall_attempts
        assert link.stats.hinted > 0 and link.stats.bad_frames > 0 and dev.bad_requests > 0


def test_a_dead_link_fails_within_the_bound_with_a_clear_error(device):
    # Every reply damaged (the board is alive, nothing gets through): 60 retransmissions
    # without progress (20 x retries), detected at once from the damaged frames.
    dev = device(mangle=lambda k, d: [corrupt(d)])
    with connect(dev, timeout=0.5) as link:
        link.wait_ready(timeout=10.0)
        t0 = time.monotonic()
        with pytest.raises(TargetError, match=r"^the board's RUN reply failed 61 times in a row "
                                              r"in \d+\.\d s, no request completing \(last: reply "
                                              r"damaged\): check the cable, baud rate and "
                                              r"firmware version$"):
            link.run(X)
        assert time.monotonic() - t0 < 5.0  # the counts below say it was not the time bound
        assert link.stats.retransmits == 60 and link.stats.hinted == 60
    # Every request damaged: the board reports each (ERROR CRC naming the header's seq).
    dev = device()
    ser, link = corrupting_link(dev, timeout=0.5, retries=1)
    with link:
        link.wait_ready(timeout=10.0)
        ser.damage = lambda n, d: corrupt(d, 0.6)
        t0 = time.monotonic()
        with pytest.raises(TargetError, match=r"RUN reply failed 21 times in a row .*\(last: the "
                                              r"board received RUN with a bad CRC\)"):
            link.run(X)
        assert time.monotonic() - t0 < 5.0
        assert link.stats.retransmits == 20 and dev.bad_requests >= 21
    # A silent board fails as fast as with the per-request budget: (retries + 1) x timeout.
    with connect(device(answer=False), timeout=0.3) as link:
        link.device = twin.info()
        t0 = time.monotonic()
        with pytest.raises(TargetError, match=r"^no reply from the board after 1\.\d s \(4 RUN "
                                              r"attempts\): is the firmware running"):
            link.run(X)
        assert 1.15 < time.monotonic() - t0 < 2.5
        assert link.stats.retransmits == 3 * link.window
    # The bounds can be set: attempts, or seconds without progress.
    with connect(device(mangle=lambda k, d: [corrupt(d)]), stall_attempts=5) as link:
        link.wait_ready(timeout=10.0)
        with pytest.raises(TargetError, match="RUN reply failed 6 times in a row"):
            link.run(X)
        assert link.stats.retransmits == 5
    with connect(device(mangle=lambda k, d: [corrupt(d)]), stall_attempts=10**9,
                 stall_time=0.4) as link:
        link.wait_ready(timeout=10.0)
        t0 = time.monotonic()
        with pytest.raises(TargetError, match=r"RUN reply failed \d+ times in a row in 0\.[45] s"):
            link.run(X)
        assert 0.4 <= time.monotonic() - t0 < 1.5 and link.stats.retransmits > 5


def test_a_crc_error_naming_an_innocent_request_charges_no_request(device):
    """The board names the seq read from the header of a frame whose CRC failed: damage in
    the header blames another request. Here every fifth reply is followed by two such errors
    naming the next request, pending and innocent. A per-request budget (retries=1) gave up
    on it; now it is only sent again (a hint), and the run completes."""
    def blame_next(d):
        f = P.decode_frame(d[1:-1])
        err = P.encode_frame(P.Msg.ERROR, (f.seq + 1) & 0xFFFF, P.pack_error(P.Err.CRC, P.Msg.RUN))
        return [d, err, err]

    dev = device(mangle=lambda k, d: blame_next(d) if k % 5 == 2 else [d])
    with connect(dev, retries=1) as link:
        link.wait_ready(timeout=10.0)
        check_exact(link.run(X, window=4), X)
        assert link.stats.error_frames >= 2 * (len(X) // 5)
        assert 0 < link.stats.hinted == link.stats.retransmits <= link.stats.error_frames
    # A request damaged in its seq field: the error names another one, sent again; the
    # damaged one is found missing (overtaken by later replies) and sent again too.
    dev = device()
    ser, link = corrupting_link(dev, timeout=0.5, retries=1)
    with link:
        link.wait_ready(timeout=10.0)

        def seq_field(n, d):  # the low byte of the seq (COBS byte 4: no zero before it)
            return d[:4] + bytes([d[4] ^ 0x01 or 0x03]) + d[5:] if n % 7 == 3 else d

        ser.n, ser.damage = 0, seq_field
        check_exact(link.run(X, window=4), X)
        assert dev.bad_requests >= len(X) // 7 and link.stats.retransmits >= dev.bad_requests


# ---- DeviceLink: errors -------------------------------------------------------------------

def test_error_frames_from_the_device(device):
    # The board saw a damaged request (it reports the seq it read): sent again.
    def crc_error(d):
        f = P.decode_frame(d[1:-1])
        return [P.encode_frame(P.Msg.ERROR, f.seq, P.pack_error(P.Err.CRC, P.Msg.RUN))]

    dev = device(mangle=at({2}, crc_error))
    with connect(dev) as link:
        link.wait_ready()
        check_exact(link.run(X[:5]), X[:5])
        assert link.stats.error_frames == 1 and link.stats.retransmits == 1
    # A deterministic refusal is reported, not retried.
    dev = device(info=twin.info(input_bytes=600, classes=7))
    with connect(dev) as link:
        link.wait_ready()
        link.device = twin.info(input_bytes=10, input_shape=(1, 10, 1))
        with pytest.raises(TargetError, match="payload length should be 600 bytes"):
            link.run(X[:1, :10])


def test_silent_device_times_out_with_a_clear_message(device):
    dev = device(ready=False, answer=False)
    with connect(dev, timeout=0.3, retries=1) as link:
        t0 = time.monotonic()
        with pytest.raises(TargetError, match=r"no ready frame from the board after 0.3 s: "
                                              r"is the firmware running"):
            link.wait_ready()
        assert time.monotonic() - t0 < 1.0
        link.device = twin.info()
        t0 = time.monotonic()
        with pytest.raises(TargetError, match=r"no reply from the board after 0.\d s \(2 RUN "
                                              r"attempts\): is the firmware running and the "
                                              r"baud rate right\?"):
            link.run(X[:20])
        assert time.monotonic() - t0 < 2.0


def test_wrong_model_hash_is_refused_before_any_result(device):
    dev = device()
    with connect(dev, expected_hash="0123456789abcdef") as link:
        with pytest.raises(TargetError, match="runs model 70726f746f2d6d31, expected "
                                              "0123456789abcdef"):
            link.wait_ready()
        with pytest.raises(TargetError, match="runs model"):
            link.run(X[:2])
    assert dev.requests == [] and dev.info_requests >= 1  # the run never went out
    with connect(device(), expected_hash=twin.HASH) as link:
        check_exact(link.run(X[:2]), X[:2])


def test_other_protocol_or_abi_is_refused(device):
    with connect(device(info=twin.info(abi=2))) as link:
        with pytest.raises(TargetError, match="model ABI is version 2"):
            link.wait_ready()


def test_link_closed_mid_run(device):
    dev = device(drop_request=lambda n, f: n == 5 and dev.conn.close())
    with connect(dev, timeout=2.0) as link:
        link.wait_ready()
        with pytest.raises(TargetError, match="link to the board closed"):
            link.run(X, window=2)
        with pytest.raises(TargetError, match="closed"):
            link.info()


def test_loop_echo_is_not_a_reply():
    # loop:// returns our own requests: same seq, but a request type, never a reply.
    ser = serial.serial_for_url("loop://", timeout=0)
    with DeviceLink(ser, timeout=0.2, retries=1) as link:
        with pytest.raises(TargetError, match="no ready frame"):
            link.wait_ready(timeout=0.3, probe_every=0.1)
        link.device = twin.info()
        with pytest.raises(TargetError, match="no reply from the board"):
            link.run(X[:3])
        assert link.stats.stale_frames >= 3 and link.stats.bad_frames == 0
