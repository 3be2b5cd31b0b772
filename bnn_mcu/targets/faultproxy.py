"""A serial-link fault injector: a TCP proxy that drops, corrupts, duplicates, delays and
truncates bytes between the host and a device (QEMU, the host build, or anything a pyserial
object reaches), at configurable rates in each direction.

    with QemuProcess("mps2-an386", elf) as ser:                  # or HostProcess(exe)
        with FaultProxy(ser, to_device=Faults(corrupt=0.01), to_host=Faults(corrupt=0.01)) as px:
            link = open_link(px.url)                            # socket://127.0.0.1:PORT
            ...
        px.stats["to_host"].undetected                          # must be 0

The proxy also keeps score, independently of the receiver: it decodes the stream it was given
and the stream it delivered (protocol.FrameDecoder), so it knows how many frames it damaged,
how many of those the receiver's decoder rejected, and whether any frame that passed the CRC
differs from every frame the sender sent (`undetected`: an undetected corruption).

Faults, per byte unless noted (rates are probabilities; `seed` makes a run repeatable):
  drop       the byte is lost
  corrupt    the byte is replaced by another value (0x00 included: frames split too)
  duplicate  the byte is sent twice
  truncate   per frame: the frame is cut at a random point (the rest up to its delimiter lost)
  repeat     per frame: the whole frame is sent again (a duplicate that passes the CRC)
  delay      per chunk read: the chunk (and everything after it) waits `delay_s` seconds
A fault that hits a delimiter damages the frames on both sides of it.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from ..errors import TargetError
from .protocol import BadFrame, FrameDecoder

_CHUNK = 4096
_POLL = 0.02


@dataclass(frozen=True)
class Faults:
    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    truncate: float = 0.0
    repeat: float = 0.0
    delay: float = 0.0
    delay_s: float = 0.02

    def __post_init__(self):
        for name in ("drop", "corrupt", "duplicate", "truncate", "repeat", "delay"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"fault rate {name}={v} is not a probability")
        if self.delay_s < 0:
            raise ValueError("delay_s must be >= 0")


@dataclass
class DirectionStats:
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    corrupted: int = 0
    duplicated: int = 0
    truncated: int = 0  # frames cut
    repeated: int = 0  # frames sent twice
    delays: int = 0
    frames_sent: int = 0  # frames in the sender's stream
    frames_damaged: int = 0  # of those, frames at least one fault touched
    valid_delivered: int = 0  # frames the delivered stream decodes to (CRC and version good)
    rejected_delivered: int = 0  # bad frames in the delivered stream (what a receiver drops)
    undetected: int = 0  # valid delivered frames the sender never sent: must stay 0
    undetected_examples: list = field(default_factory=list)


class _Faulter:
    """Applies Faults to one direction's byte stream and keeps its score."""

    def __init__(self, faults: Faults, rng: random.Random, stats: DirectionStats):
        self.f, self.rng, self.s = faults, rng, stats
        self.frame = bytearray()  # the current frame of the sender's stream, as sent
        self.damaged = False
        self.damage_next = False
        self.cutting = False
        self.cut_at = -1
        self.sent = FrameDecoder()
        self.delivered = FrameDecoder()
        self.sent_frames: Counter = Counter()

    def _damage(self, byte: int) -> None:
        self.damaged = True
        if byte == 0:
            self.damage_next = True

    def apply(self, chunk: bytes) -> bytes:
        f, rng, s = self.f, self.rng, self.s
        s.bytes_in += len(chunk)
        for ev in self.sent.feed(chunk):
            if not isinstance(ev, BadFrame):
                self.sent_frames[ev] += 1
        out = bytearray()
        for b in chunk:
            if not self.frame and b != 0 and self.cut_at < 0 and f.truncate \
                    and rng.random() < f.truncate:
                self.cut_at = rng.randrange(0, 64)  # cut this frame after this many bytes
            if b != 0:
                self.frame.append(b)
            if self.cut_at >= 0 and b != 0 and len(self.frame) > self.cut_at:
                if not self.cutting:
                    s.truncated += 1
                    self.cutting = True
                self.damaged = True
                continue
            if f.drop and rng.random() < f.drop:
                s.dropped += 1
                self._damage(b)
                continue
            v = b
            if f.corrupt and rng.random() < f.corrupt:
                v = b ^ rng.randrange(1, 256)
                s.corrupted += 1
                self._damage(b)
            out.append(v)
            if f.duplicate and rng.random() < f.duplicate:
                out.append(v)
                s.duplicated += 1
                if v != 0:  # a doubled delimiter is only an empty frame
                    self._damage(b)
            if b == 0:
                if self.frame:
                    s.frames_sent += 1
                    s.frames_damaged += self.damaged
                    if not self.damaged and f.repeat and rng.random() < f.repeat:
                        out += bytes([0]) + bytes(self.frame) + bytes([0])
                        s.repeated += 1
                self.frame = bytearray()
                self.damaged, self.damage_next = self.damage_next, False
                self.cutting, self.cut_at = False, -1
        for ev in self.delivered.feed(bytes(out)):
            if isinstance(ev, BadFrame):
                s.rejected_delivered += 1
            else:
                s.valid_delivered += 1
                if ev not in self.sent_frames:
                    s.undetected += 1
                    if len(s.undetected_examples) < 5:
                        s.undetected_examples.append(ev)
        s.bytes_out += len(out)
        return bytes(out)


class FaultProxy:
    """Listens on 127.0.0.1 (url: socket://127.0.0.1:PORT) for one client and relays its bytes
    to `upstream` and back through the faults. upstream: a connected pyserial-like object
    (read/write/timeout, e.g. what QemuProcess or HostProcess yield; the proxy reads it from
    its own thread until closed, and does not close it) or a (host, port) to connect to."""

    def __init__(self, upstream, to_device: Faults = Faults(), to_host: Faults = Faults(),
                 seed: int = 0, accept_timeout: float = 10.0):
        self.upstream = upstream
        self.faults = {"to_device": to_device, "to_host": to_host}
        self.stats = {"to_device": DirectionStats(), "to_host": DirectionStats()}
        rng = random.Random(seed)
        self._faulters = {k: _Faulter(self.faults[k], random.Random(rng.random()), self.stats[k])
                          for k in self.faults}
        self.accept_timeout = accept_timeout
        self._stop = threading.Event()
        self._threads: list = []
        self._srv: socket.socket | None = None
        self._client: socket.socket | None = None
        self._up_sock: socket.socket | None = None
        self.error: str | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    # ---- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> "FaultProxy":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if isinstance(self.upstream, tuple):
            try:
                self._up_sock = socket.create_connection(self.upstream, timeout=5.0)
            except OSError as e:
                raise TargetError(f"fault proxy: cannot reach {self.upstream} ({e})") from None
            self._up_sock.settimeout(_POLL)
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(1)
        self._srv.settimeout(_POLL)
        self.port = self._srv.getsockname()[1]
        t = threading.Thread(target=self._serve, name="bnn-faultproxy", daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        for s in (self._client, self._srv, self._up_sock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    def summary(self) -> str:
        lines = []
        for k, s in self.stats.items():
            lines.append(f"{k}: {s.bytes_in:,} B in, {s.dropped} dropped, {s.corrupted} corrupted, "
                         f"{s.duplicated} duplicated, {s.truncated} frames cut, {s.repeated} "
                         f"repeated, {s.delays} delays; frames {s.frames_sent:,} sent, "
                         f"{s.frames_damaged:,} damaged, {s.rejected_delivered:,} rejected, "
                         f"{s.undetected} undetected")
        return "\n".join(lines)

    # ---- relaying -------------------------------------------------------------------------------
    def _serve(self) -> None:
        deadline = time.monotonic() + self.accept_timeout
        while not self._stop.is_set():
            try:
                self._client, _ = self._srv.accept()
                break
            except socket.timeout:
                if time.monotonic() > deadline:
                    self.error = "nobody connected to the fault proxy"
                    return
        else:
            return
        self._client.settimeout(_POLL)
        self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        down = threading.Thread(target=self._pump, args=("to_host",), daemon=True)
        down.start()
        self._threads.append(down)
        self._pump("to_device")

    def _read(self, direction: str) -> bytes | None:
        """Up to _CHUNK bytes from the direction's source; b"" on timeout, None at the end."""
        try:
            if direction == "to_device":
                data = self._client.recv(_CHUNK)
                return data if data else None
            if self._up_sock is not None:
                data = self._up_sock.recv(_CHUNK)
                return data if data else None
            self.upstream.timeout = _POLL
            return self.upstream.read(_CHUNK)
        except socket.timeout:
            return b""
        except Exception:  # noqa: BLE001 - the far end closed or failed: this direction ends
            return None

    def _write(self, direction: str, data: bytes) -> bool:
        try:
            if direction == "to_host":
                self._client.sendall(data)
            elif self._up_sock is not None:
                self._up_sock.sendall(data)
            else:
                self.upstream.write(data)
            return True
        except Exception:  # noqa: BLE001 - the far end went away
            return False

    def _pump(self, direction: str) -> None:
        faulter = self._faulters[direction]
        f = self.faults[direction]
        while not self._stop.is_set():
            data = self._read(direction)
            if data is None:
                break
            if not data:
                continue
            if f.delay and faulter.rng.random() < f.delay:
                self.stats[direction].delays += 1
                time.sleep(f.delay_s)
            out = faulter.apply(data)
            if out and not self._write(direction, out):
                break
        # one side ended: end the other, so the peer sees the close
        if direction == "to_host" and self._client is not None:
            try:
                self._client.shutdown(socket.SHUT_WR)
            except OSError:
                pass


@dataclass
class FaultRun:
    """What faulty_run saw: "exact" or the TargetError's message, and the scores."""

    outcome: str
    proxy: FaultProxy
    link_stats: object
    streamed: int = 0
    bulk: int = 0
    seconds: float = 0.0

    @property
    def undetected(self) -> int:
        return sum(s.undetected for s in self.proxy.stats.values())


class WrongResult(AssertionError):
    """A result differing from the emulator's was reported: what must never happen."""


def faulty_run(proc, model, stream, bulk, to_device: Faults, to_host: Faults, seed: int = 1,
               timeout: float = 0.3, retries: int = 30, ready_timeout: float = 20.0) -> FaultRun:
    """Start `proc` (a HostProcess or QemuProcess whose bulk region holds `bulk`), stream the
    vectors `stream` and then run the bulk region, all through a FaultProxy. Every result that
    comes back is compared with the emulator's: a difference raises WrongResult; a TargetError
    (the link gave up) becomes the outcome."""
    import numpy as np

    from .. import emulator
    from .link import open_link

    t0 = time.monotonic()
    with proc as ser:
        with FaultProxy(ser, to_device, to_host, seed=seed) as px:
            link = open_link(px.url, timeout=timeout, retries=retries)
            try:
                link.wait_ready(timeout=ready_timeout)
                for name, x, call in (("RUN", stream, lambda: link.run(stream)),
                                      ("BULK", bulk, lambda: link.bulk())):
                    if x is None or not len(x):
                        continue
                    r = call()
                    want = emulator.run(model, x)
                    if not (np.array_equal(r.scores, want.scores)
                            and np.array_equal(r.classes, want.predictions)):
                        bad = int(np.flatnonzero((r.scores != want.scores).any(axis=1))[0])
                        raise WrongResult(f"a wrong {name} result was reported (vector {bad})")
                outcome = "exact"
            except TargetError as e:
                outcome = str(e)
            finally:
                link.close()
    return FaultRun(outcome, px, link.stats, 0 if stream is None else len(stream),
                    0 if bulk is None else len(bulk), time.monotonic() - t0)
