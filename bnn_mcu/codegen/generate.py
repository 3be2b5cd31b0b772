"""Integer model -> C99 sources: constant data plus a straight-line schedule of kernel calls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..errors import BnnError
from ..ir.bits import words_for
from ..ir.bnnfile import model_hash
from ..ir.ops import (BConv2d, BDense, BinarizeU8, Conv2dU8, DenseU8, IntModel, MaxPool2d,
                      Threshold)
from ..resources import templates_dir
from .footprint import chain_text
from .layout import kernel_weights
from .plan import ArenaPlan, plan_arena, scratch_bytes

MODEL_FILES = ("bnn_model.h", "bnn_model.c")
#: A symbol prefix (`generate --prefix`): a C identifier start, short enough for any linker.
PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")


def check_prefix(prefix: str) -> str:
    if prefix and not PREFIX_RE.fullmatch(prefix):
        raise BnnError(f"bad --prefix {prefix!r}: use letters, digits and _ (a C identifier start, "
                       "at most 31 characters), e.g. kws_")
    return prefix


def model_files(prefix: str = "") -> tuple[str, ...]:
    return tuple(prefix + name for name in MODEL_FILES)


def c_array(values: np.ndarray, per_line: int = 8, indent: str = "    ") -> str:
    """Body of a C initializer: hex for uint32 words, decimal for int32."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == np.uint32:
        items = [f"0x{int(v):08x}u" for v in flat]
    else:
        items = [_c_int32(int(v)) for v in flat]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return (",\n").join(indent + line for line in lines) if lines else indent + "0"


def _c_int32(v: int) -> str:
    # INT32_MIN cannot be written as a negative literal in C99 without a cast.
    return "INT32_MIN" if v == -(2**31) else ("INT32_MAX" if v == 2**31 - 1 else str(v))


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def c_string(text) -> str:
    """Text (a layer name from a model file: any characters) as the inside of a C string
    literal: printable ASCII as is, backslash, quote and ? (trigraphs) escaped, every other
    UTF-8 byte as a 3-digit octal escape (a hex escape would swallow a following digit)."""
    out = []
    for b in str(text).encode("utf-8", "replace"):
        ch = chr(b)
        out.append("\\" + ch if ch in '\\"?' else ch if 0x20 <= b < 0x7F else f"\\{b:03o}")
    return "".join(out)


def c_comment(text) -> str:
    """Text that stays inside a /* */ comment: no line breaks or control characters, no
    comment opener or closer, no trigraph (-Wcomment and -Wtrigraphs are errors in the firmware
    build; ??/ at a line end would splice lines)."""
    flat = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    while "*/" in flat or "/*" in flat or "??" in flat:
        flat = flat.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")
    return flat


@dataclass
class LayerView:
    """Everything the template needs for one layer."""

    index: int
    op: object
    sym: str  # C symbol prefix, e.g. L3
    arrays: list  # (ctype, name, length, body)
    params_type: str
    params_init: str
    in_expr: str
    out_expr: str
    comment: str
    scratch: str = ""  # C expression: words of the layer's static scratch ("": none)


def _stage_arrays(sym: str, op) -> tuple[list, str]:
    out = op.out
    if isinstance(out, Threshold):
        arrs = [("int32_t", f"{sym}_thresholds", len(out.thresholds), c_array(out.thresholds))]
        return arrs, f"{{ {sym}_thresholds, 0, 0 }}"
    arrs = [("int32_t", f"{sym}_mult", len(out.mult), c_array(out.mult)),
            ("int32_t", f"{sym}_bias", len(out.bias), c_array(out.bias))]
    return arrs, f"{{ 0, {sym}_mult, {sym}_bias }}"


def _geom(op) -> str:
    (h, w, c), (ho, wo, n) = op.in_shape, op.out_shape
    pt, pl, pb, pr = op.padding
    return (f"{{ {h}u, {w}u, {c}u, {ho}u, {wo}u, {n}u, {op.kernel[0]}u, {op.kernel[1]}u, "
            f"{op.stride[0]}u, {op.stride[1]}u, {pt}u, {pl}u, {pb}u, {pr}u }}")


def _layer_view(i: int, op, plan: ArenaPlan, model: IntModel) -> LayerView:
    sym = f"L{i}"
    if i == 0:
        in_expr = "input"
    else:
        in_expr = f"(const uint32_t *)(arena + {plan.offsets[i - 1] // 4}u)"
    out_expr = "scores" if op.out_is_scores else f"(uint32_t *)(arena + {plan.offsets[i] // 4}u)"
    arrays: list = []
    scratch = ""
    if isinstance(op, BinarizeU8):
        h, w, c = op.in_shape
        ptype = "bnn_binarize_u8_t"
        init = f"{{ {h * w}u, {c}u, {op.threshold}u }}"
        detail = f"binarized input: -1 where pixel < {op.threshold}"
    elif isinstance(op, MaxPool2d):
        arrays.append(("uint32_t", f"{sym}_or_mask", len(op.or_mask), c_array(op.or_mask)))
        (h, w, c), (ho, wo, _) = op.in_shape, op.out_shape
        pt, pl = op.padding[:2]  # bottom/right padding is in out_h/out_w: the kernel clips
        init = (f"{{ {h}u, {w}u, {c}u, {ho}u, {wo}u, {op.kernel[0]}u, {op.kernel[1]}u, "
                f"{op.stride[0]}u, {op.stride[1]}u, {pt}u, {pl}u, {sym}_or_mask }}")
        ptype = "bnn_maxpool2d_t"
        pad = f" pad {_shape(op.padding)} (padded taps skipped)" if any(op.padding) else ""
        detail = f"{op.kernel[0]}x{op.kernel[1]} stride {op.stride[0]}{pad}, AND/OR mask"
    else:
        arrays.append(("uint32_t", f"{sym}_weights", op.weights.size, c_array(kernel_weights(op))))
        stage_arrays, stage = _stage_arrays(sym, op)
        arrays += stage_arrays
        n = op.out_channels
        if isinstance(op, DenseU8):
            ptype = "bnn_dense_u8_t"
            scratch = f"BNN_DENSE_U8_SCRATCH_WORDS({op.in_features}u, {n}u)"
            init = (f"{{ {op.in_features}u, {n}u, {op.zero_point}, {sym}_weights, {stage}, "
                    f"{sym}_scratch, (uint32_t)(sizeof {sym}_scratch / sizeof {sym}_scratch[0]) }}")
            detail = f"uint8 input, zero point {op.zero_point}"
        elif isinstance(op, BDense):
            ptype = "bnn_bdense_t"
            init = f"{{ {op.in_words}u, {op.in_bits}u, {n}u, {sym}_weights, {stage} }}"
            detail = f"{op.in_bits} input bits in {op.in_words} words"
        elif isinstance(op, Conv2dU8):
            ptype = "bnn_conv2d_u8_t"
            init = f"{{ {_geom(op)}, {op.zero_point}, {sym}_weights, {stage} }}"
            zp = f"{op.zero_point}.5 (accumulator doubled)" if op.half_zero_point else op.zero_point
            detail = (f"{op.kernel[0]}x{op.kernel[1]} stride {op.stride[0]} pad {_shape(op.padding)}, "
                      f"uint8 input, zero point {zp}")
        elif isinstance(op, BConv2d):
            ptype = "bnn_bconv2d_t"
            init = f"{{ {_geom(op)}, {op.pad_value}, {sym}_weights, {stage} }}"
            pad_name = {1: "+1", -1: "-1", 0: "zero (padded taps skipped)"}[op.pad_value]
            detail = (f"{op.kernel[0]}x{op.kernel[1]} stride {op.stride[0]} pad {_shape(op.padding)} "
                      f"with {pad_name}" if any(op.padding) else
                      f"{op.kernel[0]}x{op.kernel[1]} stride {op.stride[0]}, no padding")
        else:  # pragma: no cover - the validator admits no other op
            raise TypeError(op)
    comment = (f"layer {i}: {op.c_function} '{op.name}': {_shape(op.in_shape)} -> "
               f"{_shape(op.out_shape)}, {detail}; {op.param_bytes} B const, "
               f"{op.out_bytes} B output, {op.macs} MACs")
    return LayerView(i, op, sym, arrays, ptype, init, in_expr, out_expr, comment, scratch)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "model")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(c_string=c_string, c_comment=c_comment)  # for names from model files
    return env


def model_context(model: IntModel, prefix: str = "", footprint=None) -> dict:
    """prefix: prepended to every external symbol (and upper-cased to every macro);
    footprint: measured stack and flash (footprint.py) for the header, or None."""
    plan = plan_arena(model)
    digest = model_hash(model)
    h, w, c = model.input_shape
    # the uint8 dense layers' static scratch, per class of core (plan.scratch_bytes)
    scratch = ([(cls, f"{scratch_bytes(model, core):,}") for cls, core in
                (("v6-M", "cortex-m0"), ("Thumb-2", "cortex-m4"), ("host", "host"))]
               if any(isinstance(op, DenseU8) for op in model.ops) else [])
    return {
        "p": check_prefix(prefix), "P": prefix.upper(), "footprint": footprint,
        "chain_text": chain_text,
        "version": __version__,
        "model": model,
        "name": model.meta.get("name", "model"),
        "source": model.meta.get("source", ""),
        "hash_hex": digest,
        "hash_bytes": ", ".join(f"0x{digest[i:i + 2]}u" for i in range(0, 16, 2)),
        "input_h": h, "input_w": w, "input_c": c,
        "plan": plan,
        "scratch": scratch,
        "layers": [_layer_view(i, op, plan, model) for i, op in enumerate(model.ops)],
        "words_for": words_for,
    }


def render_model_sources(model: IntModel, prefix: str = "", footprint=None) -> list[tuple[str, str]]:
    """(file name, text) of [prefix]bnn_model.h and [prefix]bnn_model.c; deterministic for a
    given model, prefix and footprint."""
    ctx = model_context(model, prefix, footprint)
    env = _env()
    return [(prefix + name, env.get_template(name + ".j2").render(**ctx)) for name in MODEL_FILES]


def generate_model_sources(model: IntModel, outdir: str | Path, prefix: str = "",
                           footprint=None) -> list[Path]:
    """Write [prefix]bnn_model.h and [prefix]bnn_model.c into outdir."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_model_sources(model, prefix, footprint):
        path = outdir / name
        path.write_text(text)
        written.append(path)
    return written
