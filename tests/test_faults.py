"""Serial fault injection: the real runner (host build, QEMU) behind bnn_mcu/targets/faultproxy.py.

The contract (DESIGN.md §4): every damaged frame is detected (the proxy decodes what it
delivered: no frame that passes the CRC differs from what was sent), and a run either
completes with results identical to the emulator's (retries) or stops with a clear
TargetError; a wrong result is never reported. Every run here is bounded in time.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import numpy as np
import pytest

from bnn_mcu.ir.synthetic import random_model
from bnn_mcu.targets import protocol as P
from bnn_mcu.targets.faultproxy import FaultProxy, Faults, faulty_run
from bnn_mcu.targets.host import HostProcess
from bnn_mcu.targets.qemu import QemuProcess, qemu_available
from bnn_mcu.targets.session import build_runner

from conftest import have

# A digits-sized model (8x8 input: 64-byte vectors) and an MNIST-sized one (784 bytes).
SMALL = random_model(21, input_shape=(8, 8, 1), layers=[
    ("conv", dict(out=8, k=3, pad=1)), ("pool", dict(k=2)), ("dense", dict(out=16)),
    ("dense", dict(out=10))])
MNIST = random_model(22, input_shape=(28, 28, 1), layers=[("dense", dict(out=64)),
                                                         ("dense", dict(out=10))])
RNG = np.random.default_rng(7)
ERROR = re.compile(r"reply failed \d+ times|no reply from the board|no ready frame|link to the "
                   r"board closed|never arrived intact")


def vectors(model, n):
    return RNG.integers(0, 256, (n,) + tuple(model.input_shape), dtype=np.uint8)


@pytest.fixture(scope="module")
def small_exe():
    if not have("gcc"):
        pytest.skip("needs gcc for the host build")
    return build_runner(SMALL, "host", quiet=True).elf


@pytest.fixture(scope="module")
def mnist_exe():
    if not have("gcc"):
        pytest.skip("needs gcc for the host build")
    return build_runner(MNIST, "host", quiet=True).elf


def run_through(proc, model, stream, bulk_n, to_device, to_host, **kw):
    """faulty_run, plus the proxy's verdict: no damaged frame ever passed the CRC."""
    r = faulty_run(proc, model, stream, proc.bulk_inputs if bulk_n else None, to_device,
                   to_host, **kw)
    for s in r.proxy.stats.values():
        assert s.undetected == 0, f"a damaged frame passed the CRC: {s.undetected_examples}"
    return r.outcome, r.proxy, r.link_stats


def host(exe, bulk=None):
    proc = HostProcess(exe, bulk=P.bulk_image(bulk) if bulk is not None else None)
    proc.bulk_inputs = bulk
    return proc


# ---- the proxy itself ---------------------------------------------------------------------

class Echo:
    """A TCP server that echoes what it receives: the proxy's faults seen from both ends."""

    def __init__(self):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.addr = self.srv.getsockname()
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        self.srv.settimeout(5)
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def close(self):
        self.srv.close()


def echo_through(faults: Faults, data: bytes, seed=0, idle=0.3) -> tuple:
    echo = Echo()
    try:
        with FaultProxy(echo.addr, to_device=faults, seed=seed) as px:
            c = socket.create_connection(("127.0.0.1", px.port), timeout=5)
            c.sendall(data)
            got = bytearray()
            c.settimeout(idle)  # done once the echo has been quiet for `idle` seconds
            while True:
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                got += chunk
            c.close()
        return bytes(got), px.stats["to_device"]
    finally:
        echo.close()


FRAMES = b"".join(P.encode_frame(P.Msg.RUN, i, bytes(range(1, 100))) for i in range(200))


def test_proxy_passes_a_clean_stream_unchanged():
    got, s = echo_through(Faults(), FRAMES)
    assert got == FRAMES and s.frames_sent == 200 and s.frames_damaged == 0
    assert s.valid_delivered == 200 and s.undetected == 0


@pytest.mark.parametrize("faults, field", [
    (Faults(drop=0.01), "dropped"), (Faults(corrupt=0.01), "corrupted"),
    (Faults(duplicate=0.01), "duplicated"), (Faults(truncate=0.2), "truncated")])
def test_proxy_faults_damage_frames_and_the_crc_sees_all_of_them(faults, field):
    got, s = echo_through(faults, FRAMES, seed=5)
    assert getattr(s, field) > 0 and s.frames_damaged > 0 and got != FRAMES
    good = [e for e in P.FrameDecoder().feed(got) if isinstance(e, P.Frame)]
    # every undamaged frame arrives, and nothing else passes the CRC
    assert 200 - s.frames_damaged <= len(good) <= 200 and len(set(good)) == len(good)
    assert s.undetected == 0 and s.rejected_delivered > 0


def test_proxy_repeats_and_delays():
    t0 = time.monotonic()
    got, s = echo_through(Faults(repeat=0.1, delay=1.0, delay_s=0.05), FRAMES[:len(FRAMES) // 4],
                          seed=2)
    assert s.repeated > 0 and s.delays >= 1 and s.frames_damaged == 0
    good = [e for e in P.FrameDecoder().feed(got) if isinstance(e, P.Frame)]
    assert len(good) == 50 + s.repeated
    assert time.monotonic() - t0 >= 0.05


def test_fault_rates_are_checked():
    with pytest.raises(ValueError, match="not a probability"):
        Faults(corrupt=1.5)


# ---- the host build behind the proxy --------------------------------------------------------

def test_one_percent_corruption_small_frames_complete_exactly(small_exe):
    x, b = vectors(SMALL, 120), vectors(SMALL, 600)
    outcome, px, stats = run_through(host(small_exe, b), SMALL, x, len(b),
                                     Faults(corrupt=0.01), Faults(corrupt=0.01), seed=11)
    assert outcome == "exact", outcome
    assert px.stats["to_device"].frames_damaged > 20 and px.stats["to_host"].frames_damaged > 20
    assert stats.retransmits > 0 and stats.bad_frames > 0


def test_one_percent_corruption_completes_with_the_default_retry_budget(small_exe):
    """One attempt in four gets through at 1% corruption (76-byte requests, 58-byte replies):
    the per-request budget of retries=3 stopped such runs within ~40 frames; counted since the
    last completed request, the same default completes them exactly."""
    x, b = vectors(SMALL, 300), vectors(SMALL, 300)
    outcome, px, stats = run_through(host(small_exe, b), SMALL, x, len(b), Faults(corrupt=0.01),
                                     Faults(corrupt=0.01), seed=31, retries=3)
    assert outcome == "exact", outcome
    assert px.stats["to_device"].frames_damaged > 100 and px.stats["to_host"].frames_damaged > 100
    assert stats.retransmits > 100 and stats.hinted > 0


def test_one_percent_corruption_mnist_frames(mnist_exe):
    """A 784-byte request frame survives 1% byte corruption with probability 0.99**800 = 0.03%:
    streaming aborts with a clear error (no result at all); the bulk path (small requests,
    56-byte results) completes exactly."""
    x, b = vectors(MNIST, 20), vectors(MNIST, 400)
    outcome, px, _ = run_through(host(mnist_exe, b), MNIST, x, len(b), Faults(corrupt=0.01),
                                 Faults(corrupt=0.01), seed=12, retries=3)
    assert ERROR.search(outcome), outcome
    outcome, px, stats = run_through(host(mnist_exe, b), MNIST, x[:0], len(b),
                                     Faults(corrupt=0.01), Faults(corrupt=0.01), seed=13)
    assert outcome == "exact", outcome
    assert px.stats["to_host"].frames_damaged > 20 and stats.retransmits > 0


def test_mixed_faults_exact_or_a_clear_error(small_exe):
    faults = Faults(drop=0.003, corrupt=0.003, duplicate=0.003, truncate=0.01, repeat=0.02,
                    delay=0.01, delay_s=0.01)
    x, b = vectors(SMALL, 100), vectors(SMALL, 400)
    outcome, px, _ = run_through(host(small_exe, b), SMALL, x, len(b), faults, faults, seed=4)
    assert outcome == "exact" or ERROR.search(outcome), outcome
    assert sum(s.frames_damaged for s in px.stats.values()) > 0


def test_a_hopeless_link_stops_with_a_clear_error_in_bounded_time(small_exe):
    t0 = time.monotonic()
    outcome, _, _ = run_through(host(small_exe, vectors(SMALL, 10)), SMALL, vectors(SMALL, 50), 10,
                                Faults(corrupt=0.2), Faults(corrupt=0.2), seed=3, retries=3,
                                ready_timeout=3.0)
    assert ERROR.search(outcome), outcome
    assert time.monotonic() - t0 < 20


# ---- QEMU behind the proxy ----------------------------------------------------------------

@pytest.mark.qemu
@pytest.mark.skipif(not (qemu_available() and have("arm-none-eabi-gcc")),
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_qemu_one_percent_corruption_completes_exactly():
    elf = build_runner(SMALL, "mps2-an385", quiet=True).elf
    b = vectors(SMALL, 300)
    proc = QemuProcess("mps2-an385", elf, bulk=P.bulk_image(b))
    proc.bulk_inputs = b
    outcome, px, stats = run_through(proc, SMALL, vectors(SMALL, 30), len(b), Faults(corrupt=0.01),
                                     Faults(corrupt=0.01), seed=21, timeout=1.0)
    assert outcome == "exact", outcome
    assert px.stats["to_host"].frames_damaged > 0 and stats.retransmits > 0
