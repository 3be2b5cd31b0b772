"""Output files: checked before long work, so that minutes of training or benchmarking are not
lost to a path that cannot be written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import BnnError


def check_writable(path: str | os.PathLike, what: str = "the output") -> Path:
    """Raise a one-line BnnError unless a file can be written at `path` (creates nothing but
    the missing folders). Returns the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BnnError(f"{path}: cannot write {what} there ({e.strerror})") from None
    if path.is_dir() or (path.exists() and not os.access(path, os.W_OK)) or \
            not os.access(path.parent, os.W_OK):
        raise BnnError(f"{path}: cannot write {what} there (not writable)")
    try:  # access() says yes to root on read-only or virtual file systems: really create one
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".bnn-mcu-write-test-"):
            pass
    except OSError as e:
        raise BnnError(f"{path}: cannot write {what} there ({e.strerror or e})") from None
    return path
