"""Input files (models): regular files of bounded size, read once.

A model path is checked with stat before anything is opened or read: a FIFO or a device would
block or never end, and a huge (or sparse) file would be read whole before any size check. The
bytes are then read once, so every later step (format sniffing, vetting, torch) sees the same
bytes, whatever happens to the file meanwhile.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ModelError

#: Largest model file bnn-mcu reads (a .pt/.pt2/.ckpt; a .bnn has its own, smaller limit).
MAX_MODEL_FILE_BYTES = 1 << 30


def read_regular_file(path: str | os.PathLike, max_bytes: int = MAX_MODEL_FILE_BYTES,
                      what: str = "model file") -> bytes:
    """The bytes of `path`, or a one-line ModelError: no such file, a folder, not a regular
    file, larger than max_bytes (checked before reading)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    _check_stat(path, st, max_bytes, what)
    try:  # O_NONBLOCK: if a FIFO replaced the file since stat, open returns instead of waiting
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)  # the file we opened, not one put in its place since
        _check_stat(path, st, max_bytes, what)
        data = f.read(st.st_size + 1)  # read(n) allocates n: the size, not the limit
    if len(data) > st.st_size:
        raise ModelError(f"{path}: grew past {max_bytes:,} bytes while being read")
    return data


def _check_stat(path: Path, st: os.stat_result, max_bytes: int, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"{path}: is a folder; give a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path}: is not a regular file (a FIFO, socket or device); give a "
                         f"{what}")
    if st.st_size > max_bytes:
        raise ModelError(f"{path}: is {st.st_size:,} bytes, more than the {max_bytes:,} a {what} "
                         "may have")
