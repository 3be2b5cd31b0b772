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

import bisect
import ctypes
import hashlib
import mmap
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bnn_mcu.codegen.layout import kernel_weights
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
                "bnn_bconv2d_b1", "bnn_conv2d_u8_b1", "bnn_maxpool2d_b1", "bnn_argmax_s32",
                "bnn_conv2d_u8_half_b1"]

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
                ("zero_point", ctypes.c_int32), ("weights", _u32p), ("stage", Stage),
                ("scratch", _u32p), ("scratch_words", ctypes.c_uint32)]


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
               [(n, ctypes.c_uint8) for n in ("k_h", "k_w", "stride_h", "stride_w", "pad_top",
                                              "pad_left")] + \
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
            "{\n    *out = layout;\n    return (uint32_t)(sizeof layout / sizeof layout[0]);\n}\n"
            "uint32_t bnn_test_u8_scratch_words(uint32_t k, uint32_t n);\n"
            "uint32_t bnn_test_u8_scratch_words(uint32_t k, uint32_t n)\n"
            "{\n    return BNN_DENSE_U8_SCRATCH_WORDS(k, n);\n}\n")


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


# The two compilers a Cortex-M user may build the runtime with. Neither gets an assembler
# syntax flag (the asm blocks say `.syntax unified` themselves). clang finds newlib's headers
# (<string.h>) through the Debian toolchain's sysroot, as a user points it at their C library.
ARM_SYSROOT = "/usr/lib/arm-none-eabi"
ARM_COMPILERS = {
    "gcc": ["arm-none-eabi-gcc", "-mthumb"],
    "clang": ["clang", "--target=arm-none-eabi", f"--sysroot={ARM_SYSROOT}", "-mthumb"],
}


def arm_compiler_available(cc: str) -> bool:
    return shutil.which(ARM_COMPILERS[cc][0]) is not None and arm_toolchain() is not None


def arm_compile(cpu_flags, opt: str, out_dir: Path, cc: str = "gcc",
                defines=()) -> tuple[list[Path], str]:
    """Compile each kernel to an object for a Cortex-M with `cc` ("gcc" or "clang"); returns
    the objects and the compiler's stderr."""
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = [f for f in cpu_flags if f != "-masm-syntax-unified"]  # boards.py still adds it
    cmd = [*ARM_COMPILERS[cc], *WARNINGS, *flags, opt, *defines, f"-I{INCLUDE_DIR}", "-c",
           *map(str, kernel_sources())]
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
            ("bnn_conv2d_u8_half_b1", Conv2dU8Params, _u8p, _u32p),
            ("bnn_maxpool2d_b1", MaxPoolParams, _u32p, _u32p),
        ]:
            fn = getattr(L, name)
            fn.argtypes, fn.restype = [ctypes.POINTER(par), inp, outp], None
        L.bnn_argmax_s32.argtypes, L.bnn_argmax_s32.restype = [_i32p, ctypes.c_uint32], ctypes.c_int32
        L.bnn_test_layout.argtypes = [ctypes.POINTER(_u32p)]
        L.bnn_test_layout.restype = ctypes.c_uint32
        L.bnn_test_u8_scratch_words.argtypes = [ctypes.c_uint32, ctypes.c_uint32]
        L.bnn_test_u8_scratch_words.restype = ctypes.c_uint32

    def u8_scratch_words(self, in_features: int, out_ch: int) -> int:
        """BNN_DENSE_U8_SCRATCH_WORDS as this build's compiler evaluates it."""
        return int(self.lib.bnn_test_u8_scratch_words(in_features, out_ch))

    def layout(self) -> list[int]:
        p = _u32p()
        n = self.lib.bnn_test_layout(ctypes.byref(p))
        return [p[i] for i in range(n)]

    @staticmethod
    def kernel_name(op) -> str:
        if isinstance(op, MaxPool2d):
            return "bnn_maxpool2d_b1"
        if isinstance(op, (BConv2d, Conv2dU8)):
            return op.c_function
        return f"bnn_{op.kind}_{'s32' if op.out_is_scores else 'b1'}"

    def run(self, op, x: np.ndarray, scratch_words: int | None = None) -> np.ndarray:
        """op on one sample x (uint8 HWC pixels or packed words, any shape of the right size).
        Returns packed words [Ho, Wo, words(N)] or int32 scores [N]; the kernel must leave the
        inputs and the guard words after its output (and after a uint8 dense layer's scratch)
        untouched. scratch_words: a uint8 dense layer's scratch (default
        BNN_DENSE_U8_SCRATCH_WORDS; 0 gives a NULL buffer)."""
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
                                op.stride[1], op.padding[0], op.padding[1],
                                _ptr(mask, ctypes.c_uint32))
        else:
            wts = guarded(kernel_weights(op))
            keep.append(wts)
            wptr = _ptr(wts, ctypes.c_uint32)
            stage = _stage(op.out, keep)
            if isinstance(op, BDense):
                par = BDenseParams(op.in_words, op.in_bits, n, wptr, stage)
            elif isinstance(op, DenseU8):
                if scratch_words is None:
                    scratch_words = self.u8_scratch_words(op.in_features, n)
                scratch = np.full(scratch_words + GUARD_WORDS, SENTINEL, dtype=np.uint32)
                keep.append(scratch)
                par = DenseU8Params(op.in_features, n, op.zero_point, wptr, stage,
                                    _ptr(scratch, ctypes.c_uint32) if scratch_words else None,
                                    scratch_words)
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
        if isinstance(op, DenseU8) and np.any(scratch[scratch_words:] != SENTINEL):
            raise AssertionError(f"{name} ({self.variant}): wrote past the end of its scratch")
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


# -- the same kernels on QEMU boards --------------------------------------------------------

CASE_MAGIC = 0x4B434153  # "SACK" little-endian: one case's output follows
END_MAGIC = 0x21444E45   # "END!"

_RUNNER_C = r"""
typedef struct {
    uint32_t kernel; /* index in the switch below */
    const void *params;
    const void *input;
    uint32_t out_words;
    uint32_t n; /* argmax: number of scores */
} kcase_t;

static void put_u32(uint32_t v)
{
    uint8_t b[4];
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
    bnn_port_write(b, 4u);
}

static uint32_t out[MAX_OUT_WORDS + GUARD_WORDS];

int main(void)
{
    uint32_t i, k;
    bnn_port_init();
    for (i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const kcase_t *c = &cases[i];
        const uint32_t words = c->out_words + GUARD_WORDS;
        for (k = 0; k < words; ++k) out[k] = SENTINEL;
        bnn_port_mark(2u * i);
        switch (c->kernel) {
        case 0: bnn_bdense_b1(c->params, c->input, out); break;
        case 1: bnn_bdense_s32(c->params, c->input, (int32_t *)out); break;
        case 2: bnn_dense_u8_b1(c->params, c->input, out); break;
        case 3: bnn_dense_u8_s32(c->params, c->input, (int32_t *)out); break;
        case 4: bnn_bconv2d_b1(c->params, c->input, out); break;
        case 5: bnn_conv2d_u8_b1(c->params, c->input, out); break;
        case 6: bnn_maxpool2d_b1(c->params, c->input, out); break;
        case 8: bnn_conv2d_u8_half_b1(c->params, c->input, out); break;
        default: out[0] = (uint32_t)bnn_argmax_s32(c->input, c->n); break;
        }
        bnn_port_mark(2u * i + 1u);
        put_u32(CASE_MAGIC);
        put_u32(i);
        put_u32(words);
        for (k = 0; k < words; ++k) put_u32(out[k]);
    }
    put_u32(END_MAGIC);
    /* Wait for the host's ack: exiting at once could lose the last bytes in the socket. */
    (void)bnn_port_read_byte();
    return 0;
}
"""


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    vals = [f"0x{int(v) & 0xFFFFFFFF:08x}u" if ctype == "uint32_t" else
            (f"(-2147483647 - 1)" if int(v) == -(2**31) else str(int(v)))
            for v in np.asarray(values).reshape(-1)]
    rows = [", ".join(vals[i:i + 12]) for i in range(0, len(vals), 12)] or ["0"]
    return f"static const {ctype} {name}[] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


def _c_stage(out, i: int, parts: list) -> str:
    if isinstance(out, Threshold):
        parts.append(_c_array("int32_t", f"t{i}", out.thresholds))
        return f"{{.thresholds = t{i}}}"
    parts.append(_c_array("int32_t", f"m{i}", out.mult))
    parts.append(_c_array("int32_t", f"b{i}", out.bias))
    return f"{{.mult = m{i}, .bias = b{i}}}"


def _c_geom(op) -> str:
    g = _geom(op)
    return "{" + ", ".join(f".{name} = {getattr(g, name)}u" for name, _ in ConvGeom._fields_) + "}"


def firmware_source(cases: list) -> str:
    """A firmware app (replacing app/main.c) that runs each case (op, x) once and sends its
    output words; op None means argmax over the int32 scores x. The uint8 dense cases share
    one static scratch of the largest BNN_DENSE_U8_SCRATCH_WORDS among them."""
    parts, table, max_out, scratch = [], [], 1, "1u"
    for i, (op, x) in enumerate(cases):
        if op is None:
            parts.append(_c_array("int32_t", f"x{i}", x))
            table.append(f"{{{KERNEL_NAMES.index('bnn_argmax_s32')}u, NULL, x{i}, 1u, {np.size(x)}u}}")
            continue
        name = KernelLib.kernel_name(op)
        u8 = isinstance(op, (DenseU8, Conv2dU8))
        parts.append(_c_array("uint8_t" if u8 else "uint32_t", f"x{i}", x))
        ho, wo, n = op.out_shape
        words = n if op.out_is_scores else ho * wo * words_for(n)
        max_out = max(max_out, words)
        if isinstance(op, MaxPool2d):
            parts.append(_c_array("uint32_t", f"k{i}", op.or_mask))
            h, w, c = op.in_shape
            init = (f"bnn_maxpool2d_t p{i} = {{.in_h = {h}u, .in_w = {w}u, .ch = {c}u, "
                    f".out_h = {ho}u, .out_w = {wo}u, .k_h = {op.kernel[0]}u, .k_w = {op.kernel[1]}u, "
                    f".stride_h = {op.stride[0]}u, .stride_w = {op.stride[1]}u, "
                    f".pad_top = {op.padding[0]}u, .pad_left = {op.padding[1]}u, .or_mask = k{i}}}")
        else:
            parts.append(_c_array("uint32_t", f"w{i}", kernel_weights(op)))
            stage = _c_stage(op.out, i, parts)
            if isinstance(op, BDense):
                init = (f"bnn_bdense_t p{i} = {{.in_words = {op.in_words}u, .in_bits = {op.in_bits}u, "
                        f".out_ch = {n}u, .weights = w{i}, .stage = {stage}}}")
            elif isinstance(op, DenseU8):
                words_i = f"BNN_DENSE_U8_SCRATCH_WORDS({op.in_features}u, {n}u)"
                scratch = f"MAX_WORDS_({scratch}, {words_i})"
                init = (f"bnn_dense_u8_t p{i} = {{.in_features = {op.in_features}u, .out_ch = {n}u, "
                        f".zero_point = {op.zero_point}, .weights = w{i}, .stage = {stage}, "
                        f".scratch = u8_scratch, .scratch_words = {words_i}}}")
            elif isinstance(op, BConv2d):
                init = (f"bnn_bconv2d_t p{i} = {{.g = {_c_geom(op)}, .pad_value = {op.pad_value}, "
                        f".weights = w{i}, .stage = {stage}}}")
            else:
                init = (f"bnn_conv2d_u8_t p{i} = {{.g = {_c_geom(op)}, .zero_point = {op.zero_point}, "
                        f".weights = w{i}, .stage = {stage}}}")
        parts.append(f"static const {init};\n")
        table.append(f"{{{KERNEL_NAMES.index(name)}u, &p{i}, x{i}, {words}u, 0u}}")
    head = ("/* Generated by tests/kernel_lib.py: kernel parity cases for a board. */\n"
            "#include <stddef.h>\n#include <stdint.h>\n#include \"bnn_kernels.h\"\n"
            "#include \"bnn_port.h\"\n\n"
            f"#define MAX_OUT_WORDS {max_out}u\n#define GUARD_WORDS {GUARD_WORDS}u\n"
            f"#define SENTINEL 0x{SENTINEL:08x}u\n#define CASE_MAGIC 0x{CASE_MAGIC:08x}u\n"
            f"#define END_MAGIC 0x{END_MAGIC:08x}u\n"
            "#define MAX_WORDS_(a, b) ((a) > (b) ? (a) : (b))\n"
            f"static uint32_t u8_scratch[{scratch}];\n")
    runner_types, runner_main = _RUNNER_C.split("static void put_u32", 1)
    return (head + "".join(parts) + runner_types + "static const kcase_t cases[] = {\n    "
            + ",\n    ".join(table) + "\n};\n\nstatic void put_u32" + runner_main)


def _read_exact(proc, ser, n: int, timeout: float) -> bytes:
    import time
    buf, deadline = bytearray(), time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.check()
            raise AssertionError(f"{proc.name}: {len(buf)} of {n} bytes within {timeout:g} s")
        ser.timeout = min(left, 0.2)
        chunk = ser.read(n - len(buf))
        if not chunk:
            proc.check()
        buf += chunk
    return bytes(buf)


def build_case_firmware(target: str, cases: list, build_dir: Path, extra_cflags=(),
                        opt: str = "-O2", cc: str = "gcc", stack_size: int | None = None) -> Path:
    """firmware_source(cases) built for `target` in build_dir (the source rewritten only when it
    changed, so the build is incremental) at `opt`, its kernels compiled by `cc` ("gcc", as the
    firmware Makefile does, or "clang": objects linked into the GCC-built port). Returns the ELF."""
    from bnn_mcu.targets.boards import get_board
    from bnn_mcu.targets.build import build_firmware

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / "kernel_cases.c"
    text = firmware_source(cases)
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    board = get_board(target)
    out = build_dir / (target if (opt, cc) == ("-O2", "gcc") else f"{target}-{cc}{opt}")
    kwargs = {}
    if cc != "gcc":
        # the kernels by `cc` into a folder named after their sources and flags (make does not
        # see objects given as link flags change), the port and the app by the Makefile
        flags = [*board.cflags, *extra_cflags]
        objs, _ = arm_compile(flags, opt, out / f"kernels-{_source_hash([cc, opt, *flags])}", cc)
        kwargs = {"runtime": False, "extra_ldflags": [str(o) for o in objs]}
    return build_firmware(target, None, out, app=src, extra_cflags=extra_cflags, opt=opt,
                          emulated_memory=board.emulated_code is not None, stack_size=stack_size,
                          **kwargs)


def run_on_board(target: str, cases: list, build_dir: Path, timeout: float = 60.0,
                 opt: str = "-O2", cc: str = "gcc", extra_cflags=(), stack_size=None):
    """Build firmware_source(cases) for `target` (see build_case_firmware), run it under QEMU
    with instruction counting. Returns (outputs, instructions): per case its output words
    (uint32, guard words included) and the instructions its kernel call took."""
    from bnn_mcu.targets.qemu import QemuProcess

    elf = build_case_firmware(target, cases, build_dir, extra_cflags, opt=opt, cc=cc,
                              stack_size=stack_size)
    proc = QemuProcess(target, elf, count_instructions=True)
    outputs = _board_outputs(target, proc, len(cases), timeout)
    return outputs, list(proc.counts.deltas[0::2])


def _board_outputs(target: str, proc, n: int, timeout: float) -> list:
    """Run `proc` (QEMU running firmware_source's program) and read its n outputs."""
    outputs = []
    with proc as ser:
        for i in range(n):
            magic, index, words = np.frombuffer(_read_exact(proc, ser, 12, timeout), "<u4")
            if magic != CASE_MAGIC or index != i:
                raise AssertionError(f"{target}: bad case header {magic:#x} {index} (case {i})")
            outputs.append(np.frombuffer(_read_exact(proc, ser, 4 * int(words), timeout), "<u4").copy())
        end = np.frombuffer(_read_exact(proc, ser, 4, timeout), "<u4")[0]
        if end != END_MAGIC:
            raise AssertionError(f"{target}: no end marker ({end:#x})")
        ser.write(b"!")
        ser.flush()
        code = proc.wait(timeout=timeout)
    if code != 0:
        raise AssertionError(f"{target}: firmware exited with {code}")
    return outputs


# -- the same cases as a host program (sanitizer builds) ------------------------------------

_HOST_PORT_C = r"""
/* Host stand-in for the board port of firmware_source()'s program: outputs go to stdout;
 * under MemorySanitizer every byte written must be initialized. */
#include <stdint.h>
#include <stdio.h>
#include "bnn_port.h"
#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
#include <sanitizer/msan_interface.h>
#define BNN_CHECK_INIT(p, n) __msan_check_mem_is_initialized(p, n)
#endif
#endif
#ifndef BNN_CHECK_INIT
#define BNN_CHECK_INIT(p, n) ((void)0)
#endif
void bnn_port_init(void) {}
void bnn_port_write(const uint8_t *buf, uint32_t n)
{
    BNN_CHECK_INIT(buf, n);
    if (fwrite(buf, 1, n, stdout) != n) perror("fwrite");
}
int bnn_port_read_byte(void) { return 0; }
void bnn_port_mark(uint32_t id) { (void)id; }
"""

SANITIZERS = {
    "memory": ["-fsanitize=memory", "-fsanitize-memory-track-origins=2"],
    "address,undefined": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
}


def sanitizer_available(cc: str, flags: list[str], tmp: Path) -> bool:
    """Whether `cc flags` compiles and links a program (the runtime library is there)."""
    if shutil.which(cc) is None:
        return False
    src = Path(tmp) / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    r = subprocess.run([cc, *flags, str(src), "-o", str(Path(tmp) / "probe")], capture_output=True)
    return r.returncode == 0


def build_host_program(variant: str, cases: list, out_dir: Path, cc: str = "clang",
                       flags: tuple = ()) -> Path:
    """firmware_source(cases) with a stdout port, built for the host in `variant` with the
    contract's warning flags (warnings are errors)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kernel_cases.c").write_text(firmware_source(cases))
    (out_dir / "port_stdout.c").write_text(_HOST_PORT_C)
    exe = out_dir / f"kernel_cases_{variant}"
    cmd = [cc, *WARNINGS, "-O1", "-g", "-fno-omit-frame-pointer", *flags, *VARIANTS[variant],
           f"-I{INCLUDE_DIR}", *map(str, kernel_sources()), str(out_dir / "kernel_cases.c"),
           str(out_dir / "port_stdout.c"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}\n{r.stderr}")
    return exe


def case_outputs(raw: bytes, n: int) -> list:
    """The n outputs (guard words included) in the byte stream of firmware_source's program."""
    words = np.frombuffer(raw, "<u4")
    pos, outputs = 0, []
    for i in range(n):
        magic, index, count = (int(v) for v in words[pos:pos + 3])
        if magic != CASE_MAGIC or index != i:
            raise AssertionError(f"bad case header {magic:#x} {index} (case {i})")
        outputs.append(words[pos + 3:pos + 3 + count].copy())
        pos += 3 + count
    if pos >= words.size or words[pos] != END_MAGIC:
        raise AssertionError("no end marker")
    return outputs


# -- memory traces on QEMU boards -----------------------------------------------------------

# A QEMU TCG plugin (API v1, as firmware/tools/qemu-plugin/bnn_icount.c): every guest load and
# store between bnn_port_mark(2i) and bnn_port_mark(2i+1), i.e. during kernel call i.
#   -plugin memtrace.so,mark=A,code=LO:HI,ram=LO:HI,stack=LO:HI,skip=LO:HI,out=FILE
# FILE gets per call "case i", then "L lo hi" / "S lo hi" (bytes [lo, hi) loaded / stored in
# the code or RAM window), "X addr size store" (an access outside both windows) and
# "U addr size pc mask" (a stack load of bytes not stored during this call, mask: which bytes;
# instructions in [skip) -- the caller's -- are not checked).
_MEMTRACE_C = r"""
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef uint32_t qemu_plugin_meminfo_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                                          uint64_t vaddr, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                      void *userdata);
unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t info);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);
#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

typedef struct { uint64_t lo, hi, dmin, dmax; uint8_t *bits; } win_t; /* 1: loaded, 2: stored */
static win_t win[2];
static uint64_t mark_addr, stack_lo, stack_hi, skip_lo, skip_hi;
static bool active;
static unsigned n_marks, n_notes;
static FILE *out;

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t va, void *ud)
{
    const unsigned n = 1u << qemu_plugin_mem_size_shift(info);
    const int st = qemu_plugin_mem_is_store(info);
    const uint64_t pc = (uint64_t)(uintptr_t)ud;
    unsigned k, i, mask = 0;
    (void)vcpu;
    if (!active) return;
    if (!st && va >= stack_lo && va + n <= stack_hi && !(pc >= skip_lo && pc < skip_hi)) {
        for (i = 0; i < n; ++i) {
            if (!(win[1].bits[va + i - win[1].lo] & 2)) mask |= 1u << i;
        }
        if (mask && n_notes++ < 10000)
            fprintf(out, "U %llx %u %llx %u\n", (unsigned long long)va, n, (unsigned long long)pc, mask);
    }
    for (k = 0; k < 2; ++k) {
        win_t *w = &win[k];
        if (va >= w->lo && va + n <= w->hi) {
            for (i = 0; i < n; ++i) w->bits[va + i - w->lo] |= (uint8_t)(st ? 2 : 1);
            if (va < w->dmin) w->dmin = va;
            if (va + n > w->dmax) w->dmax = va + n;
            return;
        }
    }
    if (n_notes++ < 10000) fprintf(out, "X %llx %u %d\n", (unsigned long long)va, n, st);
}

static void flush(void)
{
    unsigned k;
    int bit;
    for (k = 0; k < 2; ++k) {
        win_t *w = &win[k];
        if (w->dmax <= w->dmin) continue;
        for (bit = 1; bit <= 2; bit <<= 1) {
            uint64_t a = w->dmin, s;
            while (a < w->dmax) {
                while (a < w->dmax && !(w->bits[a - w->lo] & bit)) ++a;
                if (a >= w->dmax) break;
                s = a;
                while (a < w->dmax && (w->bits[a - w->lo] & bit)) ++a;
                fprintf(out, "%c %llx %llx\n", bit == 1 ? 'L' : 'S', (unsigned long long)s,
                        (unsigned long long)a);
            }
        }
        memset(w->bits + (w->dmin - w->lo), 0, w->dmax - w->dmin);
        w->dmin = UINT64_MAX;
        w->dmax = 0;
    }
}

static void on_mark(unsigned int vcpu, void *ud)
{
    (void)vcpu;
    (void)ud;
    if ((n_marks & 1u) == 0u) {
        fprintf(out, "case %u\n", n_marks / 2u);
        active = true;
    } else {
        active = false;
        flush();
    }
    ++n_marks;
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc == mark_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW,
                                         (void *)(uintptr_t)pc);
    }
}

static void at_exit(qemu_plugin_id_t id, void *ud)
{
    (void)id;
    (void)ud;
    fprintf(out, "end %u\n", n_marks);
    fclose(out);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        unsigned long long a, b;
        if (sscanf(argv[i], "mark=%llx", &a) == 1) mark_addr = a;
        else if (sscanf(argv[i], "code=%llx:%llx", &a, &b) == 2) { win[0].lo = a; win[0].hi = b; }
        else if (sscanf(argv[i], "ram=%llx:%llx", &a, &b) == 2) { win[1].lo = a; win[1].hi = b; }
        else if (sscanf(argv[i], "stack=%llx:%llx", &a, &b) == 2) { stack_lo = a; stack_hi = b; }
        else if (sscanf(argv[i], "skip=%llx:%llx", &a, &b) == 2) { skip_lo = a; skip_hi = b; }
        else if (strncmp(argv[i], "out=", 4) == 0) out = fopen(argv[i] + 4, "w");
    }
    if (out == NULL || stack_lo < win[1].lo || stack_hi > win[1].hi) return -1;
    for (i = 0; i < 2; ++i) {
        win[i].bits = calloc(win[i].hi - win[i].lo, 1);
        if (win[i].bits == NULL) return -1;
        win[i].dmin = UINT64_MAX;
        win[i].dmax = 0;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
"""

# the buffers firmware_source gives case i: input, weights, thresholds, mult, bias, or_mask
CASE_BUFFERS = ("x", "w", "t", "m", "b", "k")


def memtrace_plugin(cache_dir: Path) -> Path:
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    so = cache_dir / f"memtrace_{hashlib.sha256(_MEMTRACE_C.encode()).hexdigest()[:16]}.so"
    if not so.exists():
        src = cache_dir / "memtrace.c"
        src.write_text(_MEMTRACE_C)
        tmp = cache_dir / f"{so.name}.{os.getpid()}"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra", "-o",
                        str(tmp), str(src)], check=True, capture_output=True)
        os.replace(tmp, so)
    return so


def elf_symbols(elf: Path) -> dict:
    """name -> (address, size, nm type) of the defined symbols. A constant table that two
    kernel files each hold (a header's static const, e.g. bnn_nibble_bytes) is there once per
    copy: the second as "name@address"."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", "--defined-only", str(elf)],
                         capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4:
            entry = (int(f[0], 16), int(f[1], 16), f[2])
            if f[3] in syms and f[2] in "rRtT" and syms[f[3]][0] != entry[0]:
                syms[f"{f[3]}@{f[0]}"] = entry
            else:
                syms[f[3]] = entry
        elif len(f) == 3:
            syms.setdefault(f[2], (int(f[0], 16), 0, f[1]))
    return syms


class MemoryTrace:
    """The accesses of each kernel call of a traced run, mapped to the ELF's symbols."""

    def __init__(self, elf: Path, trace: Path):
        self.syms = elf_symbols(elf)
        self.stack = (self.syms["__stack_limit"][0], self.syms["__stack_top"][0])
        self._items = sorted((a, a + s, n, t) for n, (a, s, t) in self.syms.items() if s > 0)
        self._starts = [it[0] for it in self._items]
        self.calls = []
        for line in trace.read_text().splitlines():
            f = line.split()
            if f[0] == "case":
                self.calls.append({"L": [], "S": [], "X": [], "U": []})
            elif f[0] in ("L", "S"):
                self.calls[-1][f[0]].append((int(f[1], 16), int(f[2], 16)))
            elif f[0] in ("X", "U"):
                self.calls[-1][f[0]].append(tuple(int(v, 16) if i in (0, 2) else int(v)
                                                  for i, v in enumerate(f[1:])))

    def _symbol(self, a: int):
        i = bisect.bisect_right(self._starts, a) - 1
        while i >= 0:
            lo, hi, name, kind = self._items[i]
            if lo <= a < hi:
                return name, a - lo, kind
            i -= 1
            if i >= 0 and self._items[i][1] <= lo:
                break
        return None, a, "?"

    def preceding(self, a: int) -> str:
        i = bisect.bisect_right(self._starts, a) - 1
        return self._items[i][2] if i >= 0 else ""

    def bytes_by_symbol(self, ranges) -> dict:
        """symbol -> set of byte offsets, for the byte ranges (stack bytes left out; bytes in
        no symbol under the key None, as addresses)."""
        out: dict = {}
        for lo, hi in ranges:
            a = lo
            while a < hi:
                if self.stack[0] <= a < self.stack[1]:
                    a = min(hi, self.stack[1])
                    continue
                name, off, _ = self._symbol(a)
                if name is None:
                    out.setdefault(None, set()).add(a)
                    a += 1
                    continue
                end = min(hi, a - off + self.syms[name][1])
                out.setdefault(name, set()).update(range(off, off + end - a))
                a = end
        return out


def trace_on_board(target: str, cases: list, build_dir: Path, extra_cflags=(),
                   timeout: float = 120.0):
    """firmware_source(cases) built for `target` (with extra_cflags) and run under QEMU with
    the memory-trace plugin. Returns (outputs, MemoryTrace)."""
    from bnn_mcu.targets.boards import get_board
    from bnn_mcu.targets.qemu import QemuProcess

    board = get_board(target)
    elf = build_case_firmware(target, cases, build_dir, extra_cflags)
    build_dir = Path(build_dir)
    syms = elf_symbols(elf)
    code, ram = board.emulated_code or board.code, board.emulated_ram or board.ram
    main = syms["main"][0] & ~1
    trace = build_dir / "trace.txt"
    args = (f"{memtrace_plugin(build_dir.parent)},mark=0x{syms['bnn_port_mark'][0] & ~1:x},"
            f"code={code.base:x}:{code.base + code.size:x},ram={ram.base:x}:{ram.base + ram.size:x},"
            f"stack={syms['__stack_limit'][0]:x}:{syms['__stack_top'][0]:x},"
            f"skip={main:x}:{main + syms['main'][1]:x},out={trace}")
    outputs = _board_outputs(target, QemuProcess(target, elf, extra_args=("-plugin", args)),
                             len(cases), timeout)
    return outputs, MemoryTrace(elf, trace)


def benign_unwritten_load(op, path: str, size: int, mask: int) -> bool:
    """The one load of a stack byte not written during the call that the kernels make: on the
    DSP path, bnn_conv2d_u8_b1 reads a window of three 3-byte runs (3x3x1, 3x1x3) as three
    words, and the last window of a layer takes the byte after its k_h padded rows with its
    last word (rows[k_h * wp]: in bounds, the buffer has 4 bytes of slack); that byte (the
    word's byte 3) is discarded. Writing it costs instructions on the M4 (docs/robustness.md)."""
    return (path == "DSP" and isinstance(op, Conv2dU8) and op.kernel[0] == 3
            and op.kernel[1] * op.in_shape[2] == 3 and size == 4 and mask == 0b1000)


def trace_problems(cases: list, outputs: list, tr: MemoryTrace, path: str, where: str) -> list:
    """Accesses of each kernel call outside what it may touch: the case's own buffers (input,
    weights, stage, or_mask, params, its row of the case table), its output words (the only
    stores outside the stack), the stack (loads only of bytes stored during the call), code
    and constants (functions' literal pools, jump tables, the kernels' tables); a uint8 dense
    call also its scratch (u8_scratch: stores within the BNN_DENSE_U8_SCRATCH_WORDS of its
    layer on this path, loads only of bytes it stored)."""
    from bnn_mcu.codegen.plan import dense_u8_scratch_words

    problems = []
    if len(tr.calls) != len(cases):
        return [f"{where}: {len(tr.calls)} traced calls for {len(cases)} cases"]
    for i, ((op, _), call, out) in enumerate(zip(cases, tr.calls, outputs)):
        name = f"{where} case {i} ({KernelLib.kernel_name(op) if op is not None else 'argmax'})"
        own = {f"{b}{i}" for b in CASE_BUFFERS + ("p",)} | {"cases", "out"}
        out_bytes = 4 * (out.size - GUARD_WORDS)
        stores = tr.bytes_by_symbol(call["S"])
        scratch = stores.pop("u8_scratch", set())
        if scratch and not isinstance(op, DenseU8):
            problems.append(f"{name}: writes u8_scratch")
        elif scratch:
            core = "cortex-m0" if path == "V6M" else "cortex-m4"
            words = dense_u8_scratch_words(op.in_features, op.out_channels, core)
            if max(scratch) >= 4 * words:
                problems.append(f"{name}: writes u8_scratch byte {max(scratch)} of {4 * words}")
        for sym, offs in tr.bytes_by_symbol(call["L"]).items():
            if sym == "u8_scratch":
                if not offs <= scratch:
                    problems.append(f"{name}: reads {len(offs - scratch)} u8_scratch bytes it "
                                    "did not store")
            elif sym is None:
                after = {tr.preceding(a) for a in offs}
                if any(p in own or (p[:1] in CASE_BUFFERS and p[1:].isdigit()) for p in after):
                    problems.append(f"{name}: reads {len(offs)} bytes after {sorted(after)}")
            elif sym == "out" and max(offs) >= out_bytes:
                problems.append(f"{name}: reads output word {max(offs) // 4} of {out_bytes // 4}")
            elif sym not in own and (tr.syms[sym][2] not in "tTrR"
                                     or (sym[:1] in CASE_BUFFERS + ("p",) and sym[1:].isdigit())):
                problems.append(f"{name}: reads {sym}[{min(offs)}..{max(offs)}]")
        for sym, offs in stores.items():
            if sym != "out" or max(offs) >= out_bytes:
                problems.append(f"{name}: writes {sym} at {sorted(offs)[:4]}")
        problems += [f"{name}: access outside memory at {a:#x}" for a, *_ in call["X"]]
        problems += [f"{name}: loads {n} stack bytes at {a:#x} (pc {pc:#x}) with unwritten bytes "
                     f"{m:#b}" for a, n, pc, m in call["U"]
                     if not benign_unwritten_load(op, path, n, m)]
    return problems


def bytes_read(cases: list, tr: MemoryTrace) -> list:
    """Per call: case buffer or output -> the byte offsets read."""
    reads = []
    for i, call in enumerate(tr.calls):
        mine = {f"{b}{i}" for b in CASE_BUFFERS} | {"out"}
        reads.append({s: frozenset(v) for s, v in tr.bytes_by_symbol(call["L"]).items() if s in mine})
    return reads
