"""Output files: checked before long work, so that minutes of training or benchmarking are not
lost to a path that cannot be written; written atomically, so that a folder or file holds one
run's output or the previous one, never a mix (a header from one model, a source from another)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable

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


# ---- atomic outputs: a folder or file holds one run's output or the previous one, never a mix --

def write_file_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary sibling, then rename it over `path` (one step: a reader, or
    a run killed half-way, sees the old file or the new one)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _carry_over(old: Path, new: Path, generated: Callable[[str], bool], rel: str = "") -> None:
    """Hard-link into `new` every entry of `old` that the generator does not own (a user's own
    files beside the generated ones), recursively; generated entries are left behind."""
    for entry in sorted(os.scandir(old), key=lambda e: e.name):
        sub = f"{rel}{entry.name}"
        if generated(sub):
            continue
        target = new / entry.name
        if entry.is_dir(follow_symlinks=False):
            target.mkdir(exist_ok=True)
            _carry_over(Path(entry.path), target, generated, sub + "/")
        elif not os.path.lexists(target):
            try:
                os.link(entry.path, target, follow_symlinks=False)
            except OSError:  # a file system without hard links
                shutil.copy2(entry.path, target, follow_symlinks=False)


@contextlib.contextmanager
def replacing_folder(out: str | os.PathLike, generated: Callable[[str], bool]):
    """Yield a new empty sibling folder to write a generator's files into; when the block ends
    without an error it takes the place of `out` in one rename, carrying over what `out` held
    that is not `generated(relative path)`. A run stopped at any point leaves `out` as it was
    (and at worst a hidden `.NAME.bnn-mcu-*` sibling). `out` may be a link to a folder: the
    folder it points to is replaced."""
    out = Path(os.path.realpath(out))
    if Path.cwd().resolve().is_relative_to(out):  # a swap would leave the shell in the old one
        if out.is_dir() and not any(out.iterdir()):
            yield out  # nothing there to mix with: written in place
            return
        raise BnnError(f"{out}: is the current folder (or holds it); the output folder is "
                       "replaced in one step, so run bnn-mcu from outside it")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.bnn-mcu-new-"))
    try:
        os.chmod(tmp, stat.S_IMODE(out.stat().st_mode) if out.is_dir() else 0o777 & ~_umask())
        yield tmp
        if out.is_dir():
            _carry_over(out, tmp, generated)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if not out.is_dir():
            os.rename(tmp, out)
            return
        if not _exchange(tmp, out):  # two renames: `out` is briefly absent, never mixed
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.bnn-mcu-old-"))
            os.rename(out, old / "previous")
            os.rename(tmp, out)
            tmp = old
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BnnError(f"{out}: cannot replace the folder ({e.strerror or e})") from None
    shutil.rmtree(tmp, ignore_errors=True)  # now the previous contents
