"""DeviceLink: the host side of the serial protocol, over any pyserial-like object.

A reader thread drains the link all the time and decodes frames; requests are pipelined with a
bounded window. A request is sent again (same sequence number: every command is idempotent)
when its reply is damaged, reported damaged by the board, or missing (a later request was
answered first, or nothing arrived for `timeout` seconds). Only replies that arrived intact
(CRC, exact length) become results; every wait is bounded and every failure is a one-line
TargetError. A board whose model hash differs from `expected_hash` is refused before any
result is taken from it.

The retry budget counts progress, not attempts per request (docs/robustness.md, serial fault
injection). A failure that noise explains (a damaged or missing reply, an ERROR frame for a
damaged request, a streamed item lost) is charged to the link, never to one request: the
link gives up when no request has completed (and no new streamed item arrived) for more than
`stall_attempts` failed attempts in a row (default 20 x `retries`) or for `stall_time`
seconds (default (`retries` + 1) x the request timeout: when a silent board failed before).
So a slow link that still gets some attempts through completes, and a dead one fails fast.
A reply that arrived intact but cannot be used (wrong length: a firmware or version mismatch,
not noise) is charged to its request: at most `retries` retransmissions.
Hints make the retries prompt: the ERROR frame a damaged request draws names the seq the
board read from a header it could not check, so it only says which request to send again (the
named one if pending, else the oldest); a damaged frame from the board says that the reply to
the oldest unanswered request was probably lost. A hint read before the request's last
transmission is ignored: a burst of garbage resends one request, not one per piece.
"""

from __future__ import annotations

import queue
import select
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from ..errors import TargetError
from .protocol import (REPLY, TRANSIENT_ERRORS, VERSION, BadFrame, DeviceInfo, Frame, FrameDecoder,
                       Msg, ProtocolError, describe_error, encode_frame, parse_bench,
                       parse_bulk_result, parse_error, parse_info, parse_result, parse_trace_layer)

MODEL_ABI_VERSION = 1  # BNN_MODEL_ABI_VERSION in firmware/include/bnn_model_types.h
NO_REPLY_HINT = "is the firmware running and the baud rate right?"
LINK_HINT = "check the cable, baud rate and firmware version"
# Failed attempts in a row, per retry, before a link that completes nothing is given up: a link
# that gets one attempt in four through fails 60 times in a row with probability 0.75**60, 3e-8.
STALL_ATTEMPTS_PER_RETRY = 20
DEFAULT_RETRIES = 3

Progress = Optional[Callable[[int, int], None]]


@dataclass
class RunResult:
    scores: np.ndarray  # int32 [N, classes]
    classes: np.ndarray  # int64 [N], the board's predicted class
    counts: np.ndarray  # int64 [N], counter delta of each inference (DeviceInfo.counter_unit)
    first: int = 0  # index of the first vector (bulk runs)


@dataclass
class TraceResult:
    layers: list  # per layer: its output buffer, bytes (packed words or int32 scores, LE)
    scores: np.ndarray  # int32 [classes]
    cls: int


@dataclass
class BenchResult:
    layers: list  # per layer: counter delta (minimum over the repeats)
    total: int  # whole inference, argmax included (minimum over the repeats)
    repeats: int
    cls: int
    unit: str  # DeviceInfo.counter_unit: "cycles", "instructions" or "ticks"
    names: list  # layer names


@dataclass
class LinkStats:
    frames_in: int = 0
    bad_frames: int = 0  # damaged frames received (dropped)
    stale_frames: int = 0  # intact frames no request was waiting for (duplicates, late replies)
    error_frames: int = 0  # ERROR frames from the board
    retransmits: int = 0
    hinted: int = 0  # of those, sent again on a hint (damaged frame, ERROR for a damaged request)
    bytes_in: int = 0
    bytes_out: int = 0


class _Closed:
    def __init__(self, reason: str):
        self.reason = reason


class _Incomplete(Exception):
    """A streamed reply ended with items missing."""


@dataclass(eq=False)
class _Request:
    kind: Msg
    payload: bytes
    finish: Callable  # (request, reply payload) -> result; raises ProtocolError / _Incomplete
    key: object = None
    timeout: float = 5.0
    # (request, frame) -> True: took a new streamed item, False: one it had, None: not its own
    part: Optional[Callable] = None
    parts: dict = field(default_factory=dict)
    seq: int = 0
    attempts: int = 0
    order: int = 0  # of its last transmission among all the link sent
    first_order: int = 0  # of its first
    first_sent: float = 0.0
    sent_at: float = 0.0
    overtaken: int = 0  # replies to requests sent after this one's last transmission
    unusable: int = 0  # intact replies that could not be used (charged to this request)
    why: str = ""


def _as_hash(h) -> Optional[bytes]:
    if h is None:
        return None
    if isinstance(h, str):
        h = bytes.fromhex(h)
    h = bytes(h)
    if len(h) != 8:
        raise ValueError(f"expected_hash must be 8 bytes (16 hex digits), got {len(h)} bytes")
    return h


class DeviceLink:
    """The board (or QEMU, or the host build) behind a pyserial-like object `ser`.

    The link owns `ser` until close(): it sets `ser.timeout = 0` and reads in its own thread.
    retries, stall_attempts, stall_time: the retry budget (module docstring). The defaults
    allow 60 retransmissions, and 4 x timeout seconds, with no request completing.
    """

    def __init__(self, ser, timeout: float = 5.0, expected_hash=None,
                 retries: int = DEFAULT_RETRIES,
                 window: int = 8, owns_serial: bool = False, stall_attempts: Optional[int] = None,
                 stall_time: Optional[float] = None):
        self.ser = ser
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        # Budgets (module docstring): failed attempts in a row and seconds without progress.
        self.stall_attempts = (STALL_ATTEMPTS_PER_RETRY * self.retries if stall_attempts is None
                               else max(0, int(stall_attempts)))
        self.stall_time = None if stall_time is None else float(stall_time)
        self.window = max(1, int(window))
        self.expected_hash = _as_hash(expected_hash)
        self.device: Optional[DeviceInfo] = None
        self.stats = LinkStats()
        self._owns_serial = owns_serial
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._seq = 0
        self._order = 0
        self._closed: Optional[str] = None
        self._stall_since = time.monotonic()
        self._stalled = 0
        self._stall_why = ""
        self._event_at = 0.0  # when the last event _next_event returned was read
        self._saved_timeout = getattr(ser, "timeout", None)
        ser.timeout = 0
        self._reader = threading.Thread(target=self._read_loop, name="bnn-link-reader",
                                        daemon=True)
        self._reader.start()

    # ---- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._reader.join(timeout=2.0)
        try:
            if self._owns_serial:
                self.ser.close()
            else:
                self.ser.timeout = self._saved_timeout
        except Exception:  # noqa: BLE001 - the port may be gone already; nothing to restore
            pass

    def __enter__(self) -> "DeviceLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the reader thread ------------------------------------------------------------------
    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        try:
            fd = self.ser.fileno()
        except Exception:  # noqa: BLE001 - loop:// and test doubles have no file descriptor
            fd = None
        while not self._stop.is_set():
            try:
                if fd is not None:
                    ready, _, _ = select.select([fd], [], [], 0.05)
                    if not ready:
                        continue
                data = self.ser.read(1 << 16)
            except Exception as e:  # noqa: BLE001 - any read failure means the link is gone
                if not self._stop.is_set():
                    self._events.put((time.monotonic(), _Closed(str(e) or type(e).__name__)))
                return
            if not data:
                if fd is None:
                    time.sleep(0.001)
                continue
            self.stats.bytes_in += len(data)
            now = time.monotonic()
            for ev in decoder.feed(data):
                self._events.put((now, ev))

    def _next_event(self, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            self._event_at, ev = self._events.get(timeout=remaining)
        except queue.Empty:
            return None
        if isinstance(ev, _Closed):
            self._closed = ev.reason
            raise TargetError(f"the link to the board closed ({ev.reason}): "
                              "did the firmware crash or exit?")
        if isinstance(ev, BadFrame):
            self.stats.bad_frames += 1
            return ev  # the request engine takes it as a hint; the others drop it
        self.stats.frames_in += 1
        return ev

    def _check_open(self) -> None:
        if self._closed is not None:
            raise TargetError(f"the link to the board is closed ({self._closed}): "
                              "restart the board or emulator")
        if self._stop.is_set():
            raise TargetError("this DeviceLink was closed: open a new one")

    # ---- sending ------------------------------------------------------------------------
    def _new_seq(self, busy) -> int:
        while True:
            self._seq = (self._seq + 1) & 0xFFFF
            if self._seq != 0 and self._seq not in busy:  # 0 is the READY frame's
                return self._seq

    def _send(self, req: _Request) -> None:
        data = encode_frame(req.kind, req.seq, req.payload)
        now = time.monotonic()
        self._order += 1
        req.order = self._order
        req.overtaken = 0
        req.attempts += 1
        req.sent_at = now
        if req.attempts == 1:
            req.first_sent = now
            req.first_order = self._order
        try:
            self.ser.write(data)
        except Exception as e:  # noqa: BLE001 - pyserial raises several types here
            raise TargetError(f"cannot write to the board ({e}): is the port still open?") from e
        self.stats.bytes_out += len(data)

    # ---- the retry budget ------------------------------------------------------------------
    def _progress(self) -> None:
        """A request completed or a new streamed item arrived: the link works."""
        self._stall_since = time.monotonic()
        self._stalled = 0
        self._stall_why = ""

    def _stall_limit(self, pending: dict) -> float:
        if self.stall_time is not None:
            return self.stall_time
        return (self.retries + 1) * max(r.timeout for r in pending.values())

    def _retry(self, req: _Request, why: str, unusable: bool = False, hint: bool = False) -> None:
        """Send req again after a failed attempt, or give up when the budget is spent.

        unusable: its reply arrived intact but cannot be used (charged to req, at most
        `retries` times); otherwise noise (charged to the link). hint: not seen failing, only
        suspected (a damaged frame or an ERROR frame arrived)."""
        req.why = why
        self._stalled += 1
        self._stall_why = why
        if unusable:
            req.unusable += 1
            if req.unusable > self.retries:
                raise TargetError(f"the board's {req.kind.name} reply failed {req.attempts} "
                                  f"times (last: {why}): {LINK_HINT}")
        if self._stalled > self.stall_attempts:
            raise self._stalled_error(req)
        self.stats.retransmits += 1
        self.stats.hinted += hint
        self._send(req)

    def _stalled_error(self, req: _Request) -> TargetError:
        waited = time.monotonic() - self._stall_since
        kind = req.kind.name
        if self._stall_why in ("", "timeout"):
            return TargetError(f"no reply from the board after {waited:.1f} s ({req.attempts} "
                               f"{kind} attempts): {NO_REPLY_HINT}")
        return TargetError(f"the board's {kind} reply failed {self._stalled} times in a row in "
                           f"{waited:.1f} s, no request completing (last: {self._stall_why}): "
                           f"{LINK_HINT}")

    # ---- the request engine -----------------------------------------------------------------
    def _exchange(self, requests: Iterable[_Request], window: int,
                  on_done: Callable[[_Request, object], None]) -> None:
        self._check_open()
        it = iter(requests)
        pending: dict = {}
        more = True
        # Timeouts count from the later of a request's transmission and the last frame that
        # served a request: a slow link with many requests in flight is not a dead board, and
        # a board that babbles without answering is.
        progress_at = time.monotonic()
        # The budget: attempts and time since the last progress. Bounded: progress events are
        # finite (completions, new streamed items), and between two of them at most
        # stall_attempts retransmissions and stall-limit seconds pass.
        self._progress()
        while True:
            while more and len(pending) < window:
                req = next(it, None)
                if req is None:
                    more = False
                    break
                req.seq = self._new_seq(pending)
                pending[req.seq] = req
                self._send(req)
            if not pending:
                return
            now = time.monotonic()
            by_age = sorted(pending.values(), key=lambda r: r.order)
            stall_end = self._stall_since + self._stall_limit(pending)
            if now >= stall_end:  # before the timeouts: a silent board fails as it used to
                raise self._stalled_error(by_age[0])
            ref = progress_at
            for req in by_age:
                if now >= max(req.sent_at, ref) + req.timeout:
                    self._retry(req, "timeout")
            deadline = min(min(max(r.sent_at, ref) + r.timeout for r in pending.values()),
                           stall_end)
            ev = self._next_event(deadline)
            if ev is None:
                continue
            if isinstance(ev, BadFrame):
                # Damaged on the way: most likely the reply to the request that has waited
                # longest (the board answers in order). Streamed requests are checked whole.
                oldest = self._hinted(r for r in pending.values() if r.part is None)
                if oldest is not None:
                    self._retry(oldest, "reply damaged", hint=True)
                continue
            req = pending.get(ev.seq)
            if ev.type == Msg.ERROR:
                self._on_error(req, ev, pending)
                continue
            if req is None:
                self.stats.stale_frames += 1
                continue
            if req.part is not None and ev.type in (Msg.TRACE_LAYER, Msg.BULK_RESULT):
                took = req.part(req, ev)
                if took is not None:  # an item of this request: the board is working on it
                    progress_at = time.monotonic()
                if took:  # and a new one (re-sent items do not renew the budget)
                    self._progress()
                continue
            if ev.type != req.kind | REPLY:
                self.stats.stale_frames += 1
                continue
            try:
                result = req.finish(req, ev.payload)
            except ProtocolError as e:  # intact but unusable: not noise
                self._retry(req, str(e), unusable=True)
                continue
            except _Incomplete as e:  # streamed items lost on the way
                self._retry(req, str(e))
                continue
            del pending[req.seq]
            progress_at = time.monotonic()
            self._progress()
            # The board answers in order: a request overtaken by the replies to two requests
            # sent after it was lost on the way (one is tolerated: frames may be reordered).
            # A request sent more than once may be answered for its first transmission.
            for other in sorted(pending.values(), key=lambda r: r.order):
                if other.order < req.first_order:
                    other.overtaken += 1
                    if other.overtaken >= 2:
                        self._retry(other, "reply missing")
            on_done(req, result)

    def _on_error(self, req: Optional[_Request], ev: Frame, pending: dict) -> None:
        """An ERROR frame; req: the pending request it names (None: none)."""
        self.stats.error_frames += 1
        try:
            code, req_type, detail = parse_error(ev.payload)
        except ProtocolError as e:  # intact but unreadable: a firmware mismatch, not noise
            if req is None:
                self.stats.stale_frames += 1
            else:
                self._retry(req, str(e), unusable=True)
            return
        if code in TRANSIENT_ERRORS:
            # The board saw a damaged frame; the seq it names comes from a header the CRC did
            # not check. A pending request it names is the best guess, else the oldest (not
            # a streamed one: it may be streaming, and sending it again restarts the stream).
            req = self._hinted([req] if req is not None else
                               (r for r in pending.values() if r.part is None))
            if req is not None:
                self._retry(req, describe_error(code, req_type, detail), hint=True)
            return
        if req is None:  # a deterministic refusal of a request no longer pending (a duplicate)
            self.stats.stale_frames += 1
            return
        raise TargetError(describe_error(code, req_type, detail))

    def _hinted(self, candidates) -> Optional[_Request]:
        """The request a damage hint points at: the oldest candidate sent before the hint was
        read (a hint read earlier is about a transmission already repeated; one burst of
        garbage makes many damaged frames, and resends only one request)."""
        return min((r for r in candidates if r.sent_at < self._event_at), key=lambda r: r.order,
                   default=None)

    def _one(self, req: _Request):
        out = []
        self._exchange([req], 1, lambda r, res: out.append(res))
        return out[0]

    # ---- info and readiness -----------------------------------------------------------------
    def _accept_info(self, payload: bytes) -> DeviceInfo:
        info = parse_info(payload)
        if info.protocol != VERSION:
            raise TargetError(f"the board speaks protocol version {info.protocol}, this host "
                              f"{VERSION}: rebuild the firmware with this bnn-mcu")
        if info.abi != MODEL_ABI_VERSION:
            raise TargetError(f"the board's model ABI is version {info.abi}, this host expects "
                              f"{MODEL_ABI_VERSION}: regenerate and rebuild the firmware")
        if self.expected_hash is not None and info.model_hash != self.expected_hash:
            self.device = None
            raise TargetError(f"the board runs model {info.hash_hex}, expected "
                              f"{self.expected_hash.hex()}: build and flash the firmware for "
                              "this model")
        self.device = info
        return info

    def wait_ready(self, timeout: Optional[float] = None, probe_every: float = 0.25) -> DeviceInfo:
        """Wait for the board's READY frame (sent once after its init). It can be missed (the
        port opened late; pyserial's open() flushes input), so an INFO request every
        `probe_every` seconds serves as well: the firmware drops a probe that arrives before
        its receiver runs, and answers the next one."""
        self._check_open()
        limit = self.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        probe_at = start + probe_every
        probes: set = set()
        while True:
            now = time.monotonic()
            if now >= start + limit:
                raise TargetError(f"no ready frame from the board after {limit:.1f} s: "
                                  f"{NO_REPLY_HINT}")
            if now >= probe_at:
                seq = self._new_seq(probes)
                probes.add(seq)
                self._send(_Request(Msg.INFO, b"", finish=None, seq=seq))
                probe_at = now + probe_every
            ev = self._next_event(min(start + limit, probe_at))
            if ev is None or isinstance(ev, BadFrame):
                continue
            if ev.type == Msg.READY or (ev.type == Msg.INFO | REPLY and ev.seq in probes):
                try:
                    return self._accept_info(ev.payload)
                except ProtocolError as e:
                    raise TargetError(f"the board's info block is not readable ({e}): "
                                      "host and firmware versions differ") from e
            self.stats.stale_frames += 1

    def info(self) -> DeviceInfo:
        """Ask the board what it runs (also refreshes stack_used)."""
        return self._one(_Request(Msg.INFO, b"", lambda r, p: self._accept_info(p),
                                  timeout=self.timeout))

    def _require_info(self) -> DeviceInfo:
        return self.device if self.device is not None else self.info()

    # ---- inputs -------------------------------------------------------------------------
    @staticmethod
    def _vectors(inputs, info: DeviceInfo) -> np.ndarray:
        x = np.asarray(inputs)
        if x.dtype != np.uint8:
            raise TargetError(f"inputs must be uint8 raw pixels, got {x.dtype}: convert them "
                              "with the model's input quantization first")
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != info.input_bytes:
            raise TargetError(f"inputs must be N vectors of {info.input_bytes} bytes "
                              f"({'x'.join(map(str, info.input_shape))}), got shape {x.shape}")
        if info.input_bytes + 4 > info.max_payload:
            raise TargetError(f"the board accepts {info.max_payload} payload bytes, a vector "
                              f"needs {info.input_bytes + 4}: rebuild the firmware")
        return np.ascontiguousarray(x.reshape(len(x), info.input_bytes))

    def _vector(self, x, info: DeviceInfo) -> bytes:
        return self._vectors(np.asarray(x)[None], info)[0].tobytes()

    # ---- commands -----------------------------------------------------------------------
    def run(self, inputs, window: Optional[int] = None, progress: Progress = None) -> RunResult:
        """Every vector of inputs [N, input_bytes] (or [N, H, W(, C)]) through the board."""
        info = self._require_info()
        x = self._vectors(inputs, info)
        n = len(x)
        res = RunResult(np.zeros((n, info.classes), np.int32), np.zeros(n, np.int64),
                        np.zeros(n, np.int64))
        done = [0]

        def finish(req, payload):
            return parse_result(payload, info.classes)

        def requests():
            for i in range(n):
                yield _Request(Msg.RUN, x[i].tobytes(), finish, key=i, timeout=self.timeout)

        def on_done(req, result):
            res.classes[req.key], res.counts[req.key], res.scores[req.key] = result
            done[0] += 1
            if progress is not None:
                progress(done[0], n)

        self._exchange(requests(), window or self.window, on_done)
        return res

    def trace(self, x) -> TraceResult:
        """One input; every layer's output buffer as the board computed it."""
        info = self._require_info()
        nl = info.num_layers

        def part(req, frame):
            try:
                layer, count, data = parse_trace_layer(frame.payload)
            except ProtocolError:
                self.stats.bad_frames += 1
                return
            if count != nl or layer >= nl or len(data) != info.layers[layer].out_bytes:
                self.stats.bad_frames += 1
                return
            new = layer not in req.parts
            req.parts.setdefault(layer, data)
            return new

        def finish(req, payload):
            cls, _, scores = parse_result(payload, info.classes, "trace")
            missing = [i for i in range(nl) if i not in req.parts]
            if missing:
                raise _Incomplete(f"trace of layer {missing[0]} missing")
            return TraceResult([req.parts[i] for i in range(nl)], scores, cls)

        return self._one(_Request(Msg.TRACE, self._vector(x, info), finish, part=part,
                                  timeout=self.timeout))

    def bench(self, x, repeats: int = 1, timeout: Optional[float] = None) -> BenchResult:
        """Per-layer counter deltas for one input (minimum over `repeats` runs)."""
        info = self._require_info()
        repeats = max(1, int(repeats))

        def finish(req, payload):
            cls, reps, total, layers = parse_bench(payload, info.num_layers)
            if reps != repeats:
                raise ProtocolError(f"bench reply is for {reps} repeats, asked {repeats}")
            return BenchResult(layers, total, reps, cls, info.counter_unit,
                               [layer.name for layer in info.layers])

        payload = struct.pack("<I", repeats) + self._vector(x, info)
        return self._one(_Request(Msg.BENCH, payload, finish,
                                  timeout=timeout if timeout is not None else self.timeout))

    def bulk(self, count: Optional[int] = None, first: int = 0,
             progress: Progress = None) -> RunResult:
        """Run the vectors preloaded in the board's bulk region (protocol.bulk_image), from
        `first`, `count` of them (None: to the end); results stream back as they are made."""
        info = self._require_info()
        results: dict = {}

        def part(req, frame):
            try:
                index, cls, delta, scores = parse_bulk_result(frame.payload, info.classes)
            except ProtocolError:
                self.stats.bad_frames += 1
                return
            if index in results:
                return False
            results[index] = (cls, delta, scores)
            if progress is not None:
                progress(len(results), count or 0)
            return True

        def finish(req, payload):
            if len(payload) != 8:
                raise ProtocolError(f"bulk reply has {len(payload)} bytes, expected 8")
            f, c = struct.unpack("<II", payload)
            if req.key is not None:  # a re-request of single results
                missing = [i for i in range(req.key[0], req.key[0] + req.key[1])
                           if i not in results]
                if missing:
                    raise _Incomplete(f"bulk result {missing[0]} missing")
            return f, c

        def request(start, n, key):
            return _Request(Msg.BULK, struct.pack("<II", start, n), finish, key=key, part=part,
                            timeout=self.timeout)

        f, c = self._one(request(first, count or 0, None))
        missing = [i for i in range(f, f + c) if i not in results]
        # Results lost on the way: ask for each again, pipelined, each checked on its own.
        if missing:
            self._exchange((request(i, 1, (i, 1)) for i in missing), self.window,
                           lambda r, res: None)
        for i in missing:
            if i not in results:
                raise TargetError(f"bulk result {i} never arrived intact: check the link")
        out = RunResult(np.zeros((c, info.classes), np.int32), np.zeros(c, np.int64),
                        np.zeros(c, np.int64), first=f)
        for j in range(c):
            out.classes[j], out.counts[j], out.scores[j] = results[f + j]
        return out

    def exit(self, timeout: Optional[float] = None) -> None:
        """Ask the firmware to stop (it answers first, then exits); the link is done after."""
        self._check_open()
        limit = self.timeout if timeout is None else float(timeout)
        req = _Request(Msg.EXIT, b"", finish=None, seq=self._new_seq(()))
        self._send(req)
        start = time.monotonic()
        try:
            while time.monotonic() < start + limit:
                ev = self._next_event(start + limit)
                if isinstance(ev, Frame) and ev.seq == req.seq and ev.type == Msg.EXIT | REPLY:
                    return
        except TargetError:
            if self._closed is not None:
                return  # the board closed the link as it exited
            raise
        finally:
            self.close()
        raise TargetError(f"the board did not confirm EXIT within {limit:.1f} s: {NO_REPLY_HINT}")


def open_link(url: str, baudrate: int = 115200, timeout: float = 5.0, expected_hash=None,
              connect_timeout: float = 5.0, **kwargs) -> DeviceLink:
    """serial_for_url(url) (a port, socket://host:port, loop://), retried until it connects
    (QEMU opens its socket a few ms after start); the link closes the port on close()."""
    import serial

    deadline = time.monotonic() + connect_timeout
    while True:
        try:
            ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0)
            break
        except (serial.SerialException, OSError, ValueError) as e:
            if time.monotonic() >= deadline:
                raise TargetError(f"cannot open {url} ({e}): is the board connected and the "
                                  "port name right?") from e
            time.sleep(0.02)
    return DeviceLink(ser, timeout=timeout, expected_hash=expected_hash, owns_serial=True,
                      **kwargs)
