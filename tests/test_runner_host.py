"""The real vector runner (firmware/app/main.c + the protocol + kernels + the host port), built
for the host and driven through DeviceLink: every command, every bad frame, exact parity with
the numpy twin of the stand-in model and with the emulator on generated models.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

from bnn_mcu.codegen import generate_model_sources
from bnn_mcu.emulator import run as emulate
from bnn_mcu.errors import TargetError
from bnn_mcu.ir.synthetic import random_model
from bnn_mcu.targets import protocol as P
from bnn_mcu.targets.build import build_firmware
from bnn_mcu.targets.host import HostProcess
from bnn_mcu.targets.link import DeviceLink
from bnn_mcu.targets.qemu import QemuProcess, qemu_available

FIXTURES = Path(__file__).parent / "fixtures"
PROTO_MODEL = FIXTURES / "proto_model"


try:  # the numpy twin of the stand-in model, and the exact check, live with the codec tests
    from .test_protocol import check_exact, twin
except ImportError:
    from test_protocol import check_exact, twin

RNG = np.random.default_rng(99)
X = RNG.integers(0, 256, size=(400, twin.INPUT_BYTES), dtype=np.uint8)
# inputs that stress COBS on the way in (and the trace on the way out): runs of 0x00 and of
# non-zero bytes across block boundaries, every byte value
SPECIAL = np.stack([np.zeros(600, np.uint8), np.full(600, 0xFF, np.uint8),
                    np.arange(600) % 256, (np.arange(600) % 2) * 255,
                    np.where(np.arange(600) % 254 == 0, 0, 7),
                    np.concatenate([np.full(300, 0x5A), np.full(300, 0x5A)])]).astype(np.uint8)


@pytest.fixture(scope="module")
def proto_exe(tmp_path_factory):
    return build_firmware("host", PROTO_MODEL, tmp_path_factory.mktemp("proto-host"))


class Runner:
    """The host firmware process and a DeviceLink to it."""

    def __init__(self, exe, bulk=None, expected_hash=None, timeout=5.0):
        self.proc = HostProcess(exe, bulk=bulk)
        self.expected_hash, self.timeout = expected_hash, timeout

    def __enter__(self) -> DeviceLink:
        self.ser = self.proc.__enter__()
        self.link = DeviceLink(self.ser, timeout=self.timeout, expected_hash=self.expected_hash)
        return self.link

    def __exit__(self, *exc):
        self.link.close()
        return self.proc.__exit__(*exc)


# ---- commands -----------------------------------------------------------------------------

def test_info(proto_exe):
    with Runner(proto_exe, expected_hash=twin.HASH) as link:
        info = link.wait_ready()
        assert (info.protocol, info.abi, info.model_hash) == (1, 1, twin.HASH)
        assert (info.input_bytes, info.input_shape, info.classes) == (600, (10, 20, 3), 7)
        assert (info.arena_bytes, info.param_bytes, info.macs) == (316, 0, 4200)
        assert info.layers == twin.LAYERS
        assert (info.board, info.counter_unit, info.bulk_bytes) == ("host", "ticks", 0)
        assert info.max_payload >= 604
        assert 0 < info.stack_used < 64 * 1024
        assert link.info() == link.device


def test_run_matches_the_model_exactly(proto_exe):
    with Runner(proto_exe) as link:
        link.wait_ready()
        x = np.concatenate([SPECIAL, X])
        calls = []
        res = link.run(x, window=8, progress=lambda i, n: calls.append(i))
        check_exact(res, x)
        assert calls == list(range(1, len(x) + 1))
        assert link.stats.retransmits == 0 and link.stats.bad_frames == 0
        check_exact(link.run(x[:50], window=1), x[:50])


def test_trace_matches_the_model_exactly(proto_exe):
    with Runner(proto_exe) as link:
        link.wait_ready()
        for x in list(SPECIAL) + list(X[:10]):
            tr = link.trace(x)
            assert tr.layers == twin.layers(x)
            assert tr.scores.tolist() == twin.scores(x)[0].tolist()
            assert tr.cls == twin.classes(x)[0]


def test_bench(proto_exe):
    with Runner(proto_exe) as link:
        link.wait_ready()
        b = link.bench(X[0], repeats=5)
        assert (b.repeats, b.cls, b.unit, b.names) == (5, twin.classes(X[0])[0], "ticks",
                                                        ["mix", "xor", "scores"])
        assert len(b.layers) == 3 and sum(b.layers) <= b.total
        assert link.bench(X[0]).repeats == 1


def test_bulk(proto_exe):
    x = np.concatenate([SPECIAL, X])
    with Runner(proto_exe, bulk=P.bulk_image(x)) as link:
        info = link.wait_ready()
        assert info.bulk_bytes == 16 + x.size
        seen = []
        res = link.bulk(progress=lambda i, n: seen.append(i))
        check_exact(res, x)
        assert seen[-1] == len(x)
        part = link.bulk(count=7, first=100)
        assert part.first == 100
        check_exact(part, x[100:107])
        assert link.bulk(count=0, first=len(x)).scores.shape == (0, 7)
        with pytest.raises(TargetError, match=f"bulk region holds {len(x)} vectors"):
            link.bulk(count=2, first=len(x) - 1)
        check_exact(link.run(x[:3]), x[:3])  # still serving


@pytest.mark.parametrize("image, message", [
    (None, "the target has no bulk region"),
    (b"XXXX" + bytes(100), "no BNNB header"),
    ("crc", "CRC does not match"),
    ("input", "input size differs"),
    ("count", "count does not fit"),
])
def test_bulk_region_problems_are_reported(proto_exe, image, message):
    good = bytearray(P.bulk_image(X[:4]))
    if image == "crc":
        good[-1] ^= 1
        image = bytes(good)
    elif image == "input":
        image = P.bulk_image(X[:4, :599])
    elif image == "count":
        struct.pack_into("<I", good, 4, 5)
        image = bytes(good)
    with Runner(proto_exe, bulk=image) as link:
        link.wait_ready()
        with pytest.raises(TargetError, match=message):
            link.bulk()
        check_exact(link.run(X[:2]), X[:2])


def test_exit_answers_then_ends_the_program(proto_exe):
    runner = Runner(proto_exe)
    with runner as link:
        link.wait_ready()
        link.exit()
        assert runner.proc.wait(timeout=5) == 0


def test_wrong_model_is_refused(proto_exe):
    with Runner(proto_exe, expected_hash=bytes(8)) as link:
        with pytest.raises(TargetError, match="runs model 70726f746f2d6d31, expected "
                                              "0000000000000000"):
            link.wait_ready()
        with pytest.raises(TargetError, match="runs model"):
            link.run(X[:1])


# ---- bad frames: an ERROR frame each, never a crash ----------------------------------------

def _raw_exchange(ser, data: bytes, want, timeout=3.0) -> P.Frame:
    """Write raw bytes, return the first decoded frame for which want(frame) holds. Reads do
    not wait (timeout 0): pyserial's socket:// drops what a waiting read collected when the
    peer closes, and the firmware closes right after its EXIT reply."""
    ser.timeout = 0
    ser.write(data)
    dec = P.FrameDecoder()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        chunk = ser.read(1 << 16)
        if not chunk:
            time.sleep(0.001)
        for ev in dec.feed(chunk):
            if isinstance(ev, P.Frame) and want(ev):
                return ev
    raise AssertionError("no such frame from the firmware")


def _error(seq):
    return lambda f: f.type == P.Msg.ERROR and f.seq == seq


def _frame(body: bytes) -> bytes:
    return b"\x00" + P.cobs_encode(body) + b"\x00"


def _body(type_, seq, payload=b"", version=1):
    return P.frame_body(type_, seq, payload, version)


def _flip_last(body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 0xFF])


@pytest.mark.parametrize("name, data, seq, code, detail", [
    ("bad CRC", _frame(_flip_last(_body(P.Msg.RUN, 11, bytes(600)))), 11, P.Err.CRC, None),
    ("unknown type", _frame(_body(0x42, 12)), 12, P.Err.TYPE, 0),
    ("a reply type", _frame(_body(P.Msg.RUN | P.REPLY, 13, bytes(36))), 13, P.Err.TYPE, 0),
    ("short RUN", _frame(_body(P.Msg.RUN, 14, bytes(599))), 14, P.Err.LENGTH, 600),
    ("long RUN", _frame(_body(P.Msg.RUN, 15, bytes(601))), 15, P.Err.LENGTH, 600),
    ("INFO with payload", _frame(_body(P.Msg.INFO, 16, b"\x01")), 16, P.Err.LENGTH, 0),
    ("BULK cut", _frame(_body(P.Msg.BULK, 17, bytes(7))), 17, P.Err.LENGTH, 8),
    ("BENCH without input", _frame(_body(P.Msg.BENCH, 18, bytes(4))), 18, P.Err.LENGTH, 604),
    ("oversized", _frame(_body(P.Msg.RUN, 19, bytes(range(256)) * 40)), 19, P.Err.OVERFLOW,
     None),
    ("version 2", _frame(_body(P.Msg.INFO, 20, version=2)), 20, P.Err.VERSION, 2),
    ("cut COBS block", b"\x00\x09\x01\x02\x03\x00", 0xFFFF, P.Err.FRAMING, 0),
    ("too short", _frame(b"\x01\x02\x03"), 0xFFFF, P.Err.FRAMING, 0),
])
def test_bad_frames_get_an_error_frame(proto_exe, name, data, seq, code, detail):
    runner = Runner(proto_exe)
    with runner as link:
        info = link.wait_ready()
        link.close()  # talk raw bytes from here on
        ser = runner.ser
        err = _raw_exchange(ser, data, _error(seq))
        got_code, _, got_detail = P.parse_error(err.payload)
        assert got_code == code
        if code == P.Err.OVERFLOW:
            assert got_detail == info.max_payload
        elif detail is not None:
            assert got_detail == detail
        # still serving, with a right answer
        reply = _raw_exchange(ser, P.encode_frame(P.Msg.RUN, 77, X[0].tobytes()),
                              lambda f: f.seq == 77)
        assert reply.type == P.Msg.RUN | P.REPLY
        cls, _, scores = P.parse_result(reply.payload, 7)
        assert scores.tolist() == twin.scores(X[0])[0].tolist() and cls == twin.classes(X[0])[0]


def test_garbage_never_crashes_the_firmware(proto_exe):
    rng = np.random.default_rng(3)
    runner = Runner(proto_exe)
    with runner as link:
        link.wait_ready()
        link.close()
        ser = runner.ser
        ser.timeout = 0
        junk = rng.integers(0, 256, 200_000, dtype=np.uint8)
        junk[rng.integers(0, len(junk), 300)] = 0  # frame ends at random places
        for i in range(0, len(junk), 8192):  # keep reading while writing (the error frames)
            ser.write(junk[i:i + 8192].tobytes())
            ser.read(1 << 16)
        reply = _raw_exchange(ser, P.encode_frame(P.Msg.INFO, 5), lambda f: f.seq == 5)
        assert reply.type == P.Msg.INFO | P.REPLY
        reply = _raw_exchange(ser, P.encode_frame(P.Msg.EXIT, 6), lambda f: f.seq == 6)
        assert reply.type == P.Msg.EXIT | P.REPLY
        assert runner.proc.wait(timeout=5) == 0
    assert runner.proc.fault is None


# ---- generated models against the emulator ------------------------------------------------

MODELS = {
    "conv": dict(seed=1),
    "dense-tails": dict(seed=2, input_shape=(8, 8, 1),
                        layers=[("dense", dict(out=37)), ("dense", dict(out=70)),
                                ("dense", dict(out=10))]),
    "conv-rgb": dict(seed=3, input_shape=(12, 12, 3),
                     layers=[("conv", dict(out=33, k=3, pad=1)), ("pool", dict(k=2)),
                             ("conv", dict(out=20, k=3, stride=2, pad=1, pad_value=-1)),
                             ("dense", dict(out=5))]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_model_matches_the_emulator(name, tmp_path):
    model = random_model(**MODELS[name])
    generate_model_sources(model, tmp_path / "model")
    exe = build_firmware("host", tmp_path / "model", tmp_path / "build")
    h, w, c = model.input_shape
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(300, h, w, c), dtype=np.uint8)
    x[0], x[1] = 0, 255
    ref = emulate(model, x, trace=True)
    with Runner(exe, bulk=P.bulk_image(x[:100])) as link:
        info = link.wait_ready()
        assert [layer.name for layer in info.layers] == [op.name for op in model.ops]
        assert [layer.out_bytes for layer in info.layers] == [op.out_bytes for op in model.ops]
        res = link.run(x)
        assert np.array_equal(res.scores, ref.scores)
        assert np.array_equal(res.classes, ref.predictions)
        bulk = link.bulk()
        assert np.array_equal(bulk.scores, ref.scores[:100])
        for i in (0, 1, 2, 3):
            tr = link.trace(x[i])
            for j, layer in enumerate(ref.layers):
                expect = np.ascontiguousarray(layer[i])
                assert expect.dtype.itemsize == 4
                assert tr.layers[j] == expect.astype(expect.dtype.newbyteorder("<")).tobytes(), \
                    f"layer {j} ({model.ops[j].name}) differs on vector {i}"
        link.exit()


# ---- the same runner on QEMU boards ---------------------------------------------------------

@pytest.mark.qemu
@pytest.mark.skipif(not qemu_available(), reason="qemu-system-arm not installed")
@pytest.mark.parametrize("board", ["microbit", "mps2-an386"])
def test_runner_on_qemu(board, tmp_path):
    elf = build_firmware(board, PROTO_MODEL, tmp_path)
    x = np.concatenate([SPECIAL, X[:200]])
    q = QemuProcess(board, elf, bulk=P.bulk_image(x), count_instructions=True)
    with q as ser:
        link = DeviceLink(ser, timeout=5.0, expected_hash=twin.HASH)
        info = link.wait_ready()
        assert info.board == board
        check_exact(link.run(x[:20], window=4), x[:20])
        check_exact(link.bulk(), x)
        assert link.trace(x[0]).layers == twin.layers(x[0])
        b = link.bench(x[0], repeats=3)
        link.exit()
        assert q.wait(timeout=10) == 0
    # per repeat: BEGIN, one mark per layer, END; the plugin's counts repeat exactly
    runs = P.bench_marks(q.counts.marks, len(info.layers))
    assert len(runs) == 3 and len(runs[0]) == len(info.layers) + 1
    assert runs[0] == runs[1] == runs[2] and min(runs[0]) > 0
    assert b.repeats == 3 and len(b.layers) == 3
