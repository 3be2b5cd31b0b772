"""Write the seed corpus of the protocol fuzzer (fuzz_runner.c's input format), deterministic.

    python fuzz/protocol/make_seeds.py fuzz/protocol/seeds
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

IN_BYTES = 13  # fuzz/protocol/model/bnn_model.h
INFO, RUN, TRACE, BENCH, BULK, EXIT = range(1, 7)


def frame(kind: int, type_: int, seq: int, payload: bytes = b"", extra: bytes = b"") -> bytes:
    return struct.pack("<BBHH", kind, type_, seq, len(payload)) + payload + extra


def request(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """Kind 5: the harness makes the type one of INFO..EXIT and the length the model's."""
    return frame(5, type_ - 1, seq, payload)


def raw(data: bytes) -> bytes:
    return bytes([0, len(data)]) + data


def bulk(flags: int, count: int, vectors: bytes) -> bytes:
    return bytes([flags | 1]) + struct.pack("<IH", count, len(vectors)) + vectors


def seeds() -> dict:
    x = bytes(range(100, 100 + IN_BYTES))
    zeros = bytes(IN_BYTES)
    vecs = bytes((i * 37 + 11) % 256 for i in range(5 * IN_BYTES))
    good = 0x1E  # magic, input size, CRC, plausible count
    out = {
        "requests": b"\x00" + b"".join([
            request(INFO, 1), request(RUN, 2, x), request(TRACE, 3, zeros),
            request(BENCH, 4, struct.pack("<I", 3) + x), request(BULK, 5, struct.pack("<II", 0, 0)),
            request(EXIT, 6)]),
        "bulk_all": bulk(good, 5, vecs) + request(BULK, 7, struct.pack("<II", 0, 0)),
        "bulk_ranges": bulk(good, 5, vecs) + b"".join(
            request(BULK, 8 + i, struct.pack("<II", f, c))
            for i, (f, c) in enumerate([(2, 3), (5, 0), (5, 1), (6, 0), (0xFFFFFFFF, 2)])),
        "bulk_bad_crc": bulk(0x16, 5, vecs) + request(BULK, 9, struct.pack("<II", 0, 0)),
        "bulk_bad_magic": bulk(0x1C, 5, vecs) + request(BULK, 9, struct.pack("<II", 0, 1)),
        "bulk_too_many": bulk(0x0E, 1000, vecs) + request(BULK, 9, struct.pack("<II", 0, 0)),
        "wrong_lengths": b"\x00" + b"".join(
            frame(1, t, 20 + t, bytes(n)) for t, n in [(INFO, 1), (RUN, 12), (RUN, 14),
                                                       (BENCH, 13), (BULK, 4), (EXIT, 2)]),
        "unknown_types": b"\x00" + b"".join(frame(1, t, t, b"ab") for t in (0, 7, 0x81, 0xC0, 0xFF)),
        "overflow": b"\x00" + frame(1, RUN, 30, bytes(range(1, 200))) + request(RUN, 31, x),
        "garbage": b"\x00" + raw(b"\x05\x01\x02") + raw(b"\x00") + raw(b"\xff" * 40 + b"\x00")
                   + request(INFO, 40) + raw(b"\x02\x00\x00\x00"),
        "damage": b"\x00" + frame(2, RUN, 50, x, struct.pack("<HB", 3, 0x41))
                  + frame(3, RUN, 51, x, struct.pack("<HBB", 5, 0, 0))
                  + frame(3, INFO, 52, b"", struct.pack("<HBB", 4, 0, 1))
                  + frame(3, INFO, 53, b"", struct.pack("<HBB", 0, 0, 2)) + request(INFO, 54),
        "version": b"\x00" + frame(4, INFO, 60, b"", b"\x02") + frame(4, RUN, 61, x, b"\x01"),
        "long_cobs": b"\x00" + frame(1, RUN, 70, bytes([7]) * 300) + frame(1, RUN, 71, bytes(254)),
    }
    return out


def main(argv: list) -> int:
    folder = Path(argv[1] if len(argv) > 1 else Path(__file__).parent / "seeds")
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (folder / name).write_bytes(data)
    print(f"wrote {len(seeds())} seeds to {folder} (crc32 {zlib.crc32(b''.join(seeds().values())):08x})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
