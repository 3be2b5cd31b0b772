"""Model zips (torch.export archives, torch.save files) read exactly as torch reads them.

Two zip readers look at a model file: Python's `zipfile` and torch's own (miniz, behind
torch._C.PyTorchFileReader, which torch.export.load and torch.load use). They can be made to
disagree: `zipfile` shifts every member offset by any data in front of the archive while
miniz takes the offsets as written (a malicious zip put in front of a harmless one is what
torch loads); miniz looks names up without regard to letter case (`model.JSON` may stand in
for `model.json`); either may pick a different one of two members of one name. So a zip is
accepted only when the two readers cannot disagree: it starts with its first local header, its
central directory sits exactly where its end record says (nothing for `zipfile` to shift),
nothing follows the end record, every name is plain ASCII and unique after case folding, and
both readers list the same names, sizes and local-header offsets. Its contents are then read
through torch's reader only (`Archive.read`), i.e. the bytes torch will use. Declared sizes
are budgeted before anything is read.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ModelError

#: Largest total of uncompressed member sizes a model archive may declare.
MAX_ARCHIVE_BYTES = 1 << 30
MAX_ARCHIVE_MEMBERS = 10_000

_LOCAL = b"PK\x03\x04"
_EOCD = struct.Struct("<4s4H2LH")  # signature, disk, cd disk, entries here, entries, size, offset, comment
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # signature, disk, offset of the zip64 end record, disks
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # ..., entries here, entries, cd size, cd offset
# Names a model zip may hold: printable ASCII path parts, no `..`, no backslash or colon.
_NAME = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


def _cd_offset(data: bytes) -> int:
    """Where the central directory starts (after zip_disagreement found the layout sound, this
    is where both readers look for it)."""
    end = len(data) - _EOCD.size
    cd_offset = _EOCD.unpack_from(data, end)[6]
    loc = end - _ZIP64_LOCATOR.size
    if loc >= 0 and data[loc:loc + 4] == b"PK\x06\x07":
        cd_offset = _ZIP64_EOCD.unpack_from(data, _ZIP64_LOCATOR.unpack_from(data, loc)[2])[9]
    return cd_offset


def zip_disagreement(data: bytes) -> str | None:
    """Why `zipfile` and torch's reader could see different archives in `data`, or None.
    The layout half (offsets, end record); names and sizes are compared by open_archive."""
    if not data.startswith(_LOCAL):
        at = data.find(_LOCAL)
        return (f"{at:,} bytes precede its first zip entry" if at > 0 else
                "it does not start with a zip entry")
    end = len(data) - _EOCD.size
    if end < 0:
        return "it is too short for a zip end record"
    sig, disk, cd_disk, here, entries, cd_size, cd_offset, comment = _EOCD.unpack_from(data, end)
    if sig != b"PK\x05\x06" or comment != 0:
        return "its zip end record is not the last 22 bytes (a comment or data follows it)"
    cd_end = end
    loc = end - _ZIP64_LOCATOR.size
    if loc >= 0 and data[loc:loc + 4] == b"PK\x06\x07":  # zip64 (torch.save always writes one)
        _, _, rec, _ = _ZIP64_LOCATOR.unpack_from(data, loc)
        if rec + _ZIP64_EOCD.size != loc or data[rec:rec + 4] != b"PK\x06\x06":
            return "its zip64 end record is not where its locator says"
        _, _, _, _, disk, cd_disk, here, entries, cd_size, cd_offset = \
            _ZIP64_EOCD.unpack_from(data, rec)
        cd_end = rec
    elif 0xFFFFFFFF in (cd_size, cd_offset) or 0xFFFF in (here, entries):
        return "its zip64 end record is missing"
    if disk or cd_disk or here != entries:
        return "it is a multi-disk zip"
    if cd_offset + cd_size != cd_end or cd_offset > len(data):
        # zipfile would shift every offset by the difference; miniz would not
        return (f"its central directory is {cd_end - cd_size - cd_offset:,} bytes away from "
                "where its end record says")
    return None


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # sig, version, flags, method, time, date, crc, sizes, lengths


def entry_disagreement(data: bytes, infos: list, cd_offset: int) -> str | None:
    """Why a member's local header and its central entry could be read differently, or None:
    each local header repeats its central entry (name, flags, method; CRC and sizes, here or
    in its data descriptor), and the members' byte ranges follow each other without overlap,
    all before the central directory."""
    pos = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        at = info.header_offset
        if at < pos or at + _LOCAL_HEADER.size > cd_offset:
            return f"{info.filename!r} overlaps another member or the central directory"
        sig, _, flags, method, _, _, crc, csize, usize, nlen, xlen = \
            _LOCAL_HEADER.unpack_from(data, at)
        name = data[at + _LOCAL_HEADER.size:at + _LOCAL_HEADER.size + nlen]
        if sig != _LOCAL or name != info.orig_filename.encode("utf-8", "replace") or \
                flags != info.flag_bits or method != info.compress_type:
            return f"the local header of {info.filename!r} differs from its central entry"
        start = at + _LOCAL_HEADER.size + nlen + xlen
        end = start + info.compress_size
        if flags & 0x8:  # sizes in a data descriptor after the data
            sig_len = 4 if data[end:end + 4] == b"PK\x07\x08" else 0
            wide = info.compress_size >= 0xFFFFFFFF or info.file_size >= 0xFFFFFFFF
            fmt = "<LQQ" if wide else "<LLL"
            if end + sig_len + struct.calcsize(fmt) > cd_offset:
                return f"{info.filename!r} overlaps the central directory"
            crc, csize, usize = struct.unpack_from(fmt, data, end + sig_len)
            end += sig_len + struct.calcsize(fmt)
        if (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size) and not (
                csize == usize == 0xFFFFFFFF):  # zip64: the sizes are in the extra field
            return f"the sizes of {info.filename!r} differ between its headers"
        if end > cd_offset:
            return f"{info.filename!r} overlaps the central directory"
        pos = end
    return None


@dataclass
class Archive:
    """A model zip both readers agree on; members are read through torch's reader."""

    path: Path
    data: bytes
    root: str  # the folder every member is in ("" for a torch.save file without one)
    sizes: dict = field(default_factory=dict)  # torch's record name -> declared bytes
    reader: object = None
    crcs: dict = field(default_factory=dict)  # torch's record name -> CRC-32 of its bytes

    @property
    def names(self) -> list:
        return list(self.sizes)

    def read(self, name: str, limit: int) -> bytes:
        """A member's bytes as torch reads them, refused above `limit` before reading."""
        size = self.sizes[name]
        if size > limit:
            raise ModelError(f"{self.path}: {name!r} is {size:,} bytes, more than the "
                             f"{limit:,} it may have")
        try:
            body = bytes(self.reader.get_record(name))
        except (RuntimeError, ValueError) as e:
            raise ModelError(f"{self.path}: {name!r} is damaged ({_first_line(e)})") from None
        if zlib.crc32(body) != self.crcs[name]:  # miniz does not check it
            raise ModelError(f"{self.path}: {name!r} is damaged (its CRC-32 does not match)")
        return body


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _refuse(path: Path, why: str) -> ModelError:
    return ModelError(f"{path}: refused: {why} (two zip readers could see different files); "
                      "re-save it with torch.export.save or torch.save")


def open_archive(path: Path, data: bytes) -> Archive:
    """Check a model zip's layout, names and declared sizes; raise a one-line ModelError."""
    why = zip_disagreement(data)
    if why:
        raise _refuse(path, why)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, NotImplementedError,
            EOFError) as e:
        raise ModelError(f"{path}: not a readable model archive ({_first_line(e)})") from None
    why = entry_disagreement(data, infos, _cd_offset(data))
    if why:
        raise _refuse(path, why)
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise ModelError(f"{path}: the archive holds {len(infos):,} members (at most "
                         f"{MAX_ARCHIVE_MEMBERS:,})")
    total = sum(i.file_size for i in infos)
    if total > MAX_ARCHIVE_BYTES:
        raise ModelError(f"{path}: the archive unpacks to {total:,} bytes, more than the "
                         f"{MAX_ARCHIVE_BYTES:,} a model file may hold (a zip bomb?)")
    folded: dict[str, str] = {}
    for i in infos:
        if not _NAME.fullmatch(i.filename) or ".." in i.filename.split("/"):
            raise _refuse(path, f"it holds a member named {i.filename[:80]!r}")
        if i.filename.casefold() in folded:
            raise _refuse(path, f"it holds both {folded[i.filename.casefold()]!r} and "
                                f"{i.filename!r}, one name to torch's reader")
        folded[i.filename.casefold()] = i.filename
        if i.flag_bits & 0x1 or i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelError(f"{path}: {i.filename!r} is encrypted or compressed oddly")
        if i.external_attr & 0x10:  # found by fuzzing: miniz will not extract a "folder" and
            # torch then hands back a buffer it never filled
            raise _refuse(path, f"{i.filename!r} is marked as a folder")
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = list(reader.get_all_records())
    except (RuntimeError, ValueError) as e:  # found by fuzzing: names that are not UTF-8 to miniz
        raise ModelError(f"{path}: not a readable model archive ({_first_line(e)})") from None
    root = infos[0].filename.split("/", 1)[0] if infos and "/" in infos[0].filename else ""
    prefix = root + "/" if root else ""
    expect = [i.filename[len(prefix):] for i in infos]
    if records != expect:
        raise _refuse(path, "torch's reader lists other members than Python's zipfile")
    sizes, crcs = {}, {}
    for name, info in zip(records, infos):
        try:
            same = (reader.get_record_size(name) == info.file_size and
                    reader.get_record_header_offset(name) == info.header_offset)
        except (RuntimeError, ValueError) as e:
            raise ModelError(f"{path}: {name!r} is damaged ({_first_line(e)})") from None
        if not same:
            raise _refuse(path, f"torch's reader finds {name!r} elsewhere than Python's zipfile")
        sizes[name], crcs[name] = info.file_size, info.CRC
    return Archive(path, data, root, sizes, reader, crcs)
