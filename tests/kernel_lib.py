"""The C runtime kernels as a host shared library, called through ctypes (parity ladder level 2).

`build_library(variant, cache_dir)` compiles every firmware/src/kernels/*.c with the warning
flags of the contract into a .so named after a hash of the sources and flags (so it is rebuilt
when anything changes). Variants select the code path: the portable one, or one of the Arm
fast paths run on the host through its BNN_TEST_EMULATE_* switch.

`KernelLib.run(op, x)` runs one integer-IR op on one sample with the kernel the generated code
would call. Every buffer handed to C ends right before an inaccessible page, so a kernel that
reads past the end of its input, weights or parameters crashes instead of passing by luck.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bnn_mcu.ir.bits import unpack_bits, words_for
from bnn_mcu.ir.ops import BConv2d, BDense, Conv2dU8, DenseU8, MaxPool2d, Threshold

REPO = Path(__file__).resolve().parents[1]
INCLUDE_DIR = REPO / "firmware" / "include"
KERNEL_DIR = REPO / "firmware" / "src" / "kernels"

WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Wconversion"]
HOST_FLAGS = WARNINGS + ["-O2", "-fPIC", "-shared"]

# code path -> extra defines (bnn_popcount.h documents the paths)
VARIANTS = {
    "portable": [],
    "dsp": ["-DBNN_TEST_EMULATE_DSP"],
    "v7m": ["-DBNN_TEST_EMULATE_V7M"],
    "v6m": ["-DBNN_TEST_EMULATE_V6M"],
}

KERNEL_NAMES = ["bnn_bdense_b1", "bnn_bdense_s32", "bnn_dense_u8_b1", "bnn_dense_u8_s32",
                "bnn_bconv2d_b1", "bnn_conv2d_u8_b1", "bnn_maxpool2d_b1", "bnn_argmax_s32"]

_u32p = ctypes.POINTER(ctypes.c_uint32)
_i32p = ctypes.POINTER(ctypes.c_int32)
_u8p = ctypes.POINTER(ctypes.c_uint8)


# -- the contract's structs -----------------------------------------------------------------

class Stage(ctypes.Structure):
    _fields_ = [("thresholds", _i32p), ("mult", _i32p), ("bias", _i32p)]


class BDenseParams(ctypes.Structure):
    _fields_ = [("in_words", ctypes.c_uint32), ("in_bits", ctypes.c_uint32),
                ("out_ch", ctypes.c_uint32), ("weights", _u32p), ("stage", Stage)]


class DenseU8Params(ctypes.Structure):
    _fields_ = [("in_features", ctypes.c_uint32), ("out_ch", ctypes.c_uint32),
                ("zero_point", ctypes.c_int32), ("weights", _u32p), ("stage", Stage)]


class ConvGeom(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint16) for n in ("in_h", "in_w", "in_ch", "out_h", "out_w", "out_ch")] + \
               [(n, ctypes.c_uint8) for n in ("k_h", "k_w", "stride_h", "stride_w",
                                              "pad_top", "pad_left", "pad_bottom", "pad_right")]


class BConv2dParams(ctypes.Structure):
    _fields_ = [("g", ConvGeom), ("pad_value", ctypes.c_int8), ("weights", _u32p),
                ("stage", Stage)]


class Conv2dU8Params(ctypes.Structure):
    _fields_ = [("g", ConvGeom), ("zero_point", ctypes.c_int32), ("weights", _u32p),
                ("stage", Stage)]


class MaxPoolParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint16) for n in ("in_h", "in_w", "ch", "out_h", "out_w")] + \
               [(n, ctypes.c_uint8) for n in ("k_h", "k_w", "stride_h", "stride_w")] + \
               [("or_mask", _u32p)]


C_STRUCTS = {
    "bnn_stage_t": Stage, "bnn_bdense_t": BDenseParams, "bnn_dense_u8_t": DenseU8Params,
    "bnn_conv_geom_t": ConvGeom, "bnn_bconv2d_t": BConv2dParams,
    "bnn_conv2d_u8_t": Conv2dU8Params, "bnn_maxpool2d_t": MaxPoolParams,
}


def layout_python() -> list[int]:
    """sizeof and every field offset of the ctypes mirrors, in C_STRUCTS order."""
    out = []
    for cls in C_STRUCTS.values():
        out.append(ctypes.sizeof(cls))
        out += [getattr(cls, name).offset for name, _ in cls._fields_]
    return out


def _layout_c_source() -> str:
    """A C file exporting the same numbers as layout_python(), as the compiler sees them."""
    items = []
    for cname, cls in C_STRUCTS.items():
        items.append(f"(uint32_t)sizeof({cname})")
        items += [f"(uint32_t)offsetof({cname}, {name})" for name, _ in cls._fields_]
    body = ",\n    ".join(items)
    return ("#include <stddef.h>\n#include \"bnn_kernels.h\"\n"
            f"static const uint32_t layout[] = {{\n    {body}\n}};\n"
            "uint32_t bnn_test_layout(const uint32_t **out);\n"
            "uint32_t bnn_test_layout(const uint32_t **out)\n"
            "{\n    *out = layout;\n    return (uint32_t)(sizeof layout / sizeof layout[0]);\n}\n")


# -- building -------------------------------------------------------------------------------

def kernel_sources() -> list[Path]:
    return sorted(KERNEL_DIR.glob("*.c"))


def _source_hash(extra: list[str]) -> str:
    h = hashlib.sha256("\0".join(extra).encode())
    for p in sorted(KERNEL_DIR.glob("*.[ch]")) + sorted(INCLUDE_DIR.glob("*.h")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def build_library(variant: str, cache_dir: Path, cc: str = "gcc") -> Path:
    """Compile the kernels (+ the layout probe) for `variant`; reuse an up-to-date build."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    flags = HOST_FLAGS + VARIANTS[variant]
    layout_src = _layout_c_source()
    key = _source_hash([cc] + flags + [layout_src])
    lib = cache_dir / f"libbnn_kernels_{variant}_{key}.so"
    if lib.exists():
        return lib
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        probe = Path(tmp) / "bnn_test_layout.c"
        probe.write_text(layout_src)
        out = Path(tmp) / lib.name
        cmd = [cc, *flags, f"-I{INCLUDE_DIR}", *map(str, kernel_sources()), str(probe), "-o", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"kernel build ({variant}) failed:\n{' '.join(cmd)}\n{r.stderr}")
        for old in cache_dir.glob(f"libbnn_kernels_{variant}_*.so"):
            old.unlink()
        os.replace(out, lib)  # atomic: a concurrent run sees the whole file or none
    return lib


def arm_toolchain() -> str | None:
    return shutil.which("arm-none-eabi-gcc")


def arm_compile(cpu_flags: list[str], opt: str, out_dir: Path) -> tuple[list[Path], str]:
    """Compile each kernel to an object for a Cortex-M; returns the objects and gcc's stderr."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["arm-none-eabi-gcc", *WARNINGS, "-mthumb", "-masm-syntax-unified", *cpu_flags, opt,
           f"-I{INCLUDE_DIR}", "-c", *map(str, kernel_sources())]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=out_dir)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}\n{r.stderr}")
    return [out_dir / (p.stem + ".o") for p in kernel_sources()], r.stderr


def undefined_symbols(obj: Path) -> set[str]:
    r = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True,
                       check=True)
    return {line.split()[-1] for line in r.stdout.splitlines() if line.strip()}


# -- guarded buffers ------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_PAGE = mmap.PAGESIZE


def guarded(a: np.ndarray) -> np.ndarray:
    """A copy of `a` whose last byte is followed by an inaccessible page."""
    a = np.ascontiguousarray(a)
    data_pages = -(-max(a.nbytes, 1) // _PAGE)
    mm = mmap.mmap(-1, (data_pages + 1) * _PAGE)
    buf = (ctypes.c_char * len(mm)).from_buffer(mm)
    base = ctypes.addressof(buf)
    if _libc.mprotect(base + data_pages * _PAGE, _PAGE, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size,
                        offset=data_pages * _PAGE - a.nbytes).reshape(a.shape)
    out[...] = a
    return out


def _ptr(a: np.ndarray, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


SENTINEL = 0xA5A5A5A5  # output words a kernel forgot to write keep this
GUARD_WORDS = 4        # extra words after each output: a kernel must not touch them


# -- running ops ----------------------------------------------------------------------------

def _stage(out, keep: list) -> Stage:
    s = Stage()
    if isinstance(out, Threshold):
        t = guarded(out.thresholds.astype(np.int32))
        keep.append(t)
        s.thresholds = _ptr(t, ctypes.c_int32)
    else:
        m, b = guarded(out.mult.astype(np.int32)), guarded(out.bias.astype(np.int32))
        keep += [m, b]
        s.mult, s.bias = _ptr(m, ctypes.c_int32), _ptr(b, ctypes.c_int32)
    return s


def _geom(op) -> ConvGeom:
    (h, w, c), (ho, wo, n) = op.in_shape, op.out_shape
    pt, pl, pb, pr = op.padding
    return ConvGeom(h, w, c, ho, wo, n, op.kernel[0], op.kernel[1], op.stride[0], op.stride[1],
                    pt, pl, pb, pr)


class KernelLib:
    """One build of the kernels: `run(op, x)` calls the kernel for `op` on one sample."""

    def __init__(self, path: Path, variant: str = "?"):
        self.path, self.variant = Path(path), variant
        self.lib = ctypes.CDLL(str(path))
        L = self.lib
        for name, par, inp, outp in [
            ("bnn_bdense_b1", BDenseParams, _u32p, _u32p),
            ("bnn_bdense_s32", BDenseParams, _u32p, _i32p),
            ("bnn_dense_u8_b1", DenseU8Params, _u8p, _u32p),
            ("bnn_dense_u8_s32", DenseU8Params, _u8p, _i32p),
            ("bnn_bconv2d_b1", BConv2dParams, _u32p, _u32p),
            ("bnn_conv2d_u8_b1", Conv2dU8Params, _u8p, _u32p),
            ("bnn_maxpool2d_b1", MaxPoolParams, _u32p, _u32p),
        ]:
            fn = getattr(L, name)
            fn.argtypes, fn.restype = [ctypes.POINTER(par), inp, outp], None
        L.bnn_argmax_s32.argtypes, L.bnn_argmax_s32.restype = [_i32p, ctypes.c_uint32], ctypes.c_int32
        L.bnn_test_layout.argtypes = [ctypes.POINTER(_u32p)]
        L.bnn_test_layout.restype = ctypes.c_uint32

    def layout(self) -> list[int]:
        p = _u32p()
        n = self.lib.bnn_test_layout(ctypes.byref(p))
        return [p[i] for i in range(n)]

    @staticmethod
    def kernel_name(op) -> str:
        if isinstance(op, MaxPool2d):
            return "bnn_maxpool2d_b1"
        if isinstance(op, (BConv2d, Conv2dU8)):
            return f"bnn_{op.kind}_b1"
        return f"bnn_{op.kind}_{'s32' if op.out_is_scores else 'b1'}"

    def run(self, op, x: np.ndarray) -> np.ndarray:
        """op on one sample x (uint8 HWC pixels or packed words, any shape of the right size).
        Returns packed words [Ho, Wo, words(N)] or int32 scores [N]; the kernel must leave the
        inputs and the guard words after its output untouched."""
        name = self.kernel_name(op)
        ho, wo, n = op.out_shape
        scores = op.out_is_scores
        size = n if scores else ho * wo * words_for(n)
        keep: list = []
        if isinstance(op, (DenseU8, Conv2dU8)):
            xin = guarded(np.asarray(x, dtype=np.uint8).reshape(-1))
            xptr = _ptr(xin, ctypes.c_uint8)
        else:
            xin = guarded(np.asarray(x, dtype=np.uint32).reshape(-1))
            xptr = _ptr(xin, ctypes.c_uint32)
        x_before = xin.copy()
        if isinstance(op, MaxPool2d):
            mask = guarded(op.or_mask.astype(np.uint32))
            keep.append(mask)
            h, w, c = op.in_shape
            par = MaxPoolParams(h, w, c, ho, wo, op.kernel[0], op.kernel[1], op.stride[0],
                                op.stride[1], _ptr(mask, ctypes.c_uint32))
        else:
            wts = guarded(op.weights.astype(np.uint32))
            keep.append(wts)
            wptr = _ptr(wts, ctypes.c_uint32)
            stage = _stage(op.out, keep)
            if isinstance(op, BDense):
                par = BDenseParams(op.in_words, op.in_bits, n, wptr, stage)
            elif isinstance(op, DenseU8):
                par = DenseU8Params(op.in_features, n, op.zero_point, wptr, stage)
            elif isinstance(op, BConv2d):
                par = BConv2dParams(_geom(op), op.pad_value, wptr, stage)
            else:
                par = Conv2dU8Params(_geom(op), op.zero_point, wptr, stage)
        dtype = np.int32 if scores else np.uint32
        out = np.full(size + GUARD_WORDS, SENTINEL, dtype=np.uint32).view(dtype)
        getattr(self.lib, name)(ctypes.byref(par), xptr,
                                _ptr(out, ctypes.c_int32 if scores else ctypes.c_uint32))
        if not np.array_equal(out.view(np.uint32)[size:], np.full(GUARD_WORDS, SENTINEL, np.uint32)):
            raise AssertionError(f"{name} ({self.variant}): wrote past the end of its output")
        if not np.array_equal(xin, x_before):
            raise AssertionError(f"{name} ({self.variant}): modified its input")
        return out[:size].copy() if scores else out[:size].reshape(ho, wo, -1).copy()

    def argmax(self, scores: np.ndarray) -> int:
        s = guarded(np.asarray(scores, dtype=np.int32).reshape(-1))
        return int(self.lib.bnn_argmax_s32(_ptr(s, ctypes.c_int32), s.size))


# -- comparing ------------------------------------------------------------------------------

def mismatch_report(kernel: str, layer: str, got: np.ndarray, want: np.ndarray,
                    channels: int | None, detail=None, limit: int = 8) -> str | None:
    """None when got == want exactly; else a report naming pixels, channels and both values.

    channels: the real channel count of packed outputs [Ho, Wo, words] (tail bits are checked
    too), or None for int32 scores [N]. detail(pixel, channel) -> str adds context (e.g. the
    accumulator and threshold) to each line."""
    want = np.asarray(want).reshape(got.shape).astype(got.dtype)
    if np.array_equal(got, want):
        return None
    lines = [f"{kernel} layer {layer!r}: C output differs from the emulator"]
    if channels is None:
        bad = np.flatnonzero(got != want)
        lines += [f"  channel {c}: C={int(got[c])} emulator={int(want[c])}"
                  + (f" ({detail(0, c)})" if detail else "") for c in bad[:limit]]
    else:
        gw = got.reshape(-1, got.shape[-1])
        ww = want.reshape(-1, want.shape[-1])
        width = got.shape[1] if got.ndim == 3 else 1
        nbits = gw.shape[-1] * 32
        gb, wb = unpack_bits(gw, nbits), unpack_bits(ww, nbits)
        bad = np.argwhere(gb != wb)
        for pix, c in bad[:limit]:
            where = "tail bit" if c >= channels else "channel"
            extra = f" ({detail(pix, c)})" if detail and c < channels else ""
            lines.append(f"  pixel (y={pix // width}, x={pix % width}) {where} {c}: "
                         f"C={int(gb[pix, c])} emulator={int(wb[pix, c])}{extra}")
    lines.append(f"  ({len(bad)} differing {'values' if channels is None else 'bits'} in all)")
    return "\n".join(lines)


def assert_same(kernel: str, layer: str, got: np.ndarray, want: np.ndarray, channels,
                detail=None) -> None:
    msg = mismatch_report(kernel, layer, got, want, channels, detail)
    if msg is not None:
        raise AssertionError(msg)
