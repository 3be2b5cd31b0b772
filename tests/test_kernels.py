"""C runtime kernels <-> emulator kernels, bit for bit (DESIGN.md parity ladder, level 2).

Every case runs on four host builds of the kernels: the portable path and the DSP / v7-M /
v6-M paths (their Arm-only pieces replaced by C models through BNN_TEST_EMULATE_*). The Arm
builds themselves are checked by compiling for each Cortex-M.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bnn_mcu.codegen.plan import dense_u8_scratch_words
from bnn_mcu.emulator import kernels as emu
from bnn_mcu.emulator.runner import run as emulator_run
from bnn_mcu.ir.bits import pack_bits, words_for
from bnn_mcu.ir.geometry import valid_taps
from bnn_mcu.ir.ops import (INT32_MAX, INT32_MIN, BConv2d, BDense, Conv2dU8, DenseU8,
                            MaxPool2d, Scores, Threshold)
from bnn_mcu.ir.synthetic import random_model
from bnn_mcu.ir.validate import max_abs_acc

try:  # works whether or not tests/ is a package
    from . import kernel_lib as kl
except ImportError:
    import kernel_lib as kl

EMULATOR = {"bdense": emu.bdense, "dense_u8": emu.dense_u8, "bconv2d": emu.bconv2d,
            "conv2d_u8": emu.conv2d_u8, "maxpool2d": emu.maxpool2d_b1}

CASES = settings(max_examples=100, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="session")
def libs(request, tmp_path_factory):
    # pytest's cache dir keeps builds between runs (they are keyed by a source hash)
    cache = getattr(request.config, "cache", None)
    cache = cache.mkdir("bnn_kernels") if cache is not None else tmp_path_factory.mktemp("kernels")
    return {v: kl.KernelLib(kl.build_library(v, cache), v) for v in kl.VARIANTS}


# -- helpers --------------------------------------------------------------------------------

def check(libs, op, xs) -> None:
    """Run op on every sample of the batch xs in every build; compare with the emulator."""
    want = EMULATOR[op.kind](xs, op)
    channels = None if op.out_is_scores else op.out_channels
    for variant, lib in libs.items():
        for b in range(len(xs)):
            got = lib.run(op, xs[b])
            kl.assert_same(f"{lib.kernel_name(op)} [{variant}]", f"{op.name} sample {b}", got,
                           want[b], channels, explain(op, xs, b))


def explain(op, xs, b):
    """detail(pixel, channel) for mismatch reports: the exact accumulator and the stage."""
    if isinstance(op, MaxPool2d):
        return None

    def detail(pix, c):
        acc = accumulators(op, xs[b:b + 1])[pix, c]
        if op.out_is_scores:
            return f"acc={acc} mult={op.out.mult[c]} bias={op.out.bias[c]}"
        return f"acc={acc} T={op.out.thresholds[c]}"
    return detail


def accumulators(op, xs) -> np.ndarray:
    """The op's exact accumulators, read through an identity scores stage of the emulator."""
    n = op.out_channels
    saved, op.out = op.out, Scores(np.ones(n, np.int32), np.zeros(n, np.int32))
    try:
        return EMULATOR[op.kind](xs, op).reshape(-1, n).astype(np.int64)
    finally:
        op.out = saved


def tie_thresholds(rng, acc: np.ndarray) -> Threshold:
    """Per channel: mostly a value the accumulator takes on one of the samples (a tie), else
    one off it, else a constant channel (INT32_MIN: always +1, INT32_MAX: always -1)."""
    n = acc.shape[1]
    pick = acc[rng.integers(0, acc.shape[0], size=n), np.arange(n)]
    kind = rng.integers(0, 10, size=n)
    t = np.where(kind < 6, pick, pick + rng.choice([-1, 1], size=n))
    t = np.where(kind == 8, INT32_MIN, np.where(kind == 9, INT32_MAX, t))
    return Threshold(t.astype(np.int32))


def random_scores(rng, n: int, acc_max: int) -> Scores:
    """mult of both signs and bias as large as int32 allows for this layer."""
    bias_max = int(rng.choice([0, 1 << 10, 1 << 24]))
    m_max = max(1, min(1 << 20, (2**31 - 1 - bias_max) // max(1, acc_max)))
    mult = rng.integers(-m_max, m_max + 1, size=n)
    mult[rng.integers(0, n)] = -m_max
    return Scores(mult.astype(np.int32), rng.integers(-bias_max, bias_max + 1, size=n).astype(np.int32))


def random_bits(rng, shape, p_one=0.5) -> np.ndarray:
    return (rng.random(shape) < p_one).astype(np.uint8)


def packed_input(rng, batch, h, w, c, style) -> np.ndarray:
    p = {"random": 0.5, "zeros": 0.0, "ones": 1.0, "sparse": 0.1}[style]
    return pack_bits(random_bits(rng, (batch, h, w, c), p))


def u8_input(rng, batch, shape, style, zp) -> np.ndarray:
    if style == "random":
        return rng.integers(0, 256, size=(batch,) + shape, dtype=np.uint8)
    if style == "near_zp":
        return np.clip(zp + rng.integers(-2, 3, size=(batch,) + shape), 0, 255).astype(np.uint8)
    return np.full((batch,) + shape, {"zeros": 0, "max": 255}[style], dtype=np.uint8)


def with_stage(rng, op, xs, scores: bool):
    acc = accumulators(op, xs)
    op.out = random_scores(rng, op.out_channels, max_abs_acc(op)) if scores else tie_thresholds(rng, acc)
    return op


WIDTHS = [1, 2, 31, 32, 33, 63, 64, 65, 95, 100, 1000]
styles = st.sampled_from(["random", "random", "random", "zeros", "ones", "sparse"])
u8_styles = st.sampled_from(["random", "random", "near_zp", "zeros", "max"])
zero_points = st.one_of(st.sampled_from([0, 128, 1, 127, 129, 255]), st.integers(0, 255))
seeds = st.integers(0, 2**32 - 1)


# -- the build ------------------------------------------------------------------------------

def test_struct_layout_matches_the_header(libs):
    for variant, lib in libs.items():
        assert lib.layout() == kl.layout_python(), f"ctypes mirrors differ from C ({variant})"


def test_guarded_buffers_catch_overreads():
    """The guard page really is there (otherwise the overread protection proves nothing)."""
    code = ("import numpy as np, ctypes, kernel_lib as kl;"
            "a = kl.guarded(np.arange(5, dtype=np.uint32));"
            "print(ctypes.c_uint32.from_address(a.ctypes.data + 20).value)")  # one past the end
    r = subprocess.run([sys.executable, "-c", code], cwd=kl.REPO / "tests", capture_output=True,
                       text=True)
    assert r.returncode < 0, (r.returncode, r.stdout, r.stderr)


# -- binary dense ---------------------------------------------------------------------------

@CASES
@given(seed=seeds, hw=st.sampled_from([(1, 1), (1, 1), (1, 2), (2, 3), (3, 3)]),
       c=st.one_of(st.sampled_from(WIDTHS), st.integers(1, 130)), n=st.integers(1, 70),
       batch=st.integers(1, 3), style=styles, scores=st.booleans())
def test_bdense(libs, seed, hw, c, n, batch, style, scores):
    rng = np.random.default_rng(seed)
    h, w = hw
    assume(h * w * c <= 4000)
    wb = random_bits(rng, (n, h * w, c))
    op = BDense("bdense", (h, w, c), weights=pack_bits(wb).reshape(n, h * w * words_for(c)))
    xs = packed_input(rng, batch, h, w, c, style)
    check(libs, with_stage(rng, op, xs, scores), xs)


@pytest.mark.parametrize("c", WIDTHS)
def test_bdense_widths_and_extremes(libs, c):
    """acc = +K (x == w), -K (x == ~w) and everything between, thresholds on each side."""
    rng = np.random.default_rng(c)
    n = 37
    wb = random_bits(rng, (n, c))
    wb[0] = 0
    wb[1] = 1
    op = BDense("extremes", (1, 1, c), weights=pack_bits(wb))
    xs = pack_bits(np.stack([wb[0], wb[1], random_bits(rng, c)]))[:, None, None, :]
    acc = accumulators(op, xs)
    assert acc[0, 0] == c and acc[1, 0] == -c and acc[0, 1] == -c
    for t in (acc[0], acc[0] + 1, acc[1], acc[2], acc[2] + 1):
        op.out = Threshold(np.clip(t, INT32_MIN, INT32_MAX).astype(np.int32))
        check(libs, op, xs)
    op.out = Threshold(np.where(np.arange(n) % 2 == 0, INT32_MIN, INT32_MAX).astype(np.int32))
    check(libs, op, xs)
    op.out = random_scores(rng, n, c)
    check(libs, op, xs)


def test_bdense_large(libs):
    """1024 -> 1024 (the performance target's shape) and a 4096-bit input."""
    rng = np.random.default_rng(7)
    for k, n in [(1024, 1024), (4096, 64)]:
        op = BDense("large", (1, 1, k), weights=pack_bits(random_bits(rng, (n, k))))
        xs = packed_input(rng, 2, 1, 1, k, "random")
        check(libs, with_stage(rng, op, xs, False), xs)
        check(libs, with_stage(rng, op, xs, True), xs)


@pytest.mark.parametrize("words", [7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40, 98, 128, 135, 136,
                                   248, 249, 256, 300, 519])
def test_bdense_harley_seal_rows(libs, words):
    """Rows of 8-word blocks plus 0..7 more words (the DSP / v7-M assembly and its C twin),
    1024-bit rows (unrolled two at a time: even and odd row counts), output words that end
    mid-way (threshold words of n % 4 != 0 channels), v7-M's 31-block limit (248 words), rows
    in chunks of pair-form input (over 16 blocks on v6-M, over 31 on Thumb-2: 256 words and
    more; 519 = three chunks and a tail)."""
    rng = np.random.default_rng(words)
    for n in (1, 2, 3, 31, 33, 64):
        c = 32 * words - int(rng.integers(0, 32))
        op = BDense("hs", (1, 1, c), weights=pack_bits(random_bits(rng, (n, c))))
        xs = packed_input(rng, 2, 1, 1, c, "random")
        check(libs, with_stage(rng, op, xs, False), xs)
        if n in (3, 33):
            check(libs, with_stage(rng, op, xs, True), xs)


# -- uint8 dense ----------------------------------------------------------------------------

@CASES
@given(seed=seeds, shape=st.one_of(st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4)),
                                   st.tuples(st.just(1), st.just(1), st.integers(1, 2000))),
       n=st.integers(1, 45), zp=zero_points, batch=st.integers(1, 3), style=u8_styles,
       wstyle=st.sampled_from([0.5, 0.5, 0.0, 1.0]), scores=st.booleans())
def test_dense_u8(libs, seed, shape, n, zp, batch, style, wstyle, scores):
    rng = np.random.default_rng(seed)
    k = int(np.prod(shape))
    op = DenseU8("dense_u8", shape, weights=pack_bits(random_bits(rng, (n, k), wstyle)),
                 zero_point=zp)
    xs = u8_input(rng, batch, shape, style, zp)
    check(libs, with_stage(rng, op, xs, scores), xs)


def test_dense_u8_large_and_extremes(libs):
    rng = np.random.default_rng(11)
    op = DenseU8("mnist", (28, 28, 1), weights=pack_bits(random_bits(rng, (256, 784))), zero_point=128)
    xs = u8_input(rng, 2, (28, 28, 1), "random", 128)
    check(libs, with_stage(rng, op, xs, False), xs)
    check(libs, with_stage(rng, op, xs, True), xs)
    # acc = +-255*K (zp 0) and +-128*K (zp 255 ... 128): thresholds exactly there and one off
    k = 1000
    for zp, pix in [(0, 255), (255, 0), (128, 0), (128, 255)]:
        wb = random_bits(rng, (6, k))
        wb[0], wb[1] = 0, 1
        op = DenseU8("extremes", (1, 1, k), weights=pack_bits(wb), zero_point=zp)
        xs = np.full((1, 1, 1, k), pix, dtype=np.uint8)
        acc = accumulators(op, xs)[0]
        assert abs(acc[0]) == k * abs(pix - zp)
        for t in (acc, acc + 1, acc - 1):
            op.out = Threshold(t.astype(np.int32))
            check(libs, op, xs)
        op.out = random_scores(rng, 6, max_abs_acc(op))
        check(libs, op, xs)


#: The core whose path each host build emulates (codegen sizes the scratch per core).
VARIANT_CORE = {"portable": "host", "dsp": "cortex-m4", "v7m": "cortex-m3", "v6m": "cortex-m0"}


def test_dense_u8_scratch_size_is_codegens():
    """BNN_DENSE_U8_SCRATCH_WORDS as each path's build evaluates it is the figure codegen states
    (plan.dense_u8_scratch_words): the tables of a pass (4 on v6-M, 7 on Thumb-2, never more
    than the layer's 8-byte groups) and one sum per channel up to 256; the portable path 1."""
    assert [dense_u8_scratch_words(784, 256, c) for c in ("cortex-m0", "cortex-m4", "host")] == \
        [4 * 128 + 256, 7 * 128 + 256, 1]
    assert dense_u8_scratch_words(20, 5, "cortex-m33") == 3 * 128 + 5
    assert dense_u8_scratch_words(1000, 1024, "cortex-m0plus") == 4 * 128 + 256


def test_dense_u8_scratch_any_size(libs):
    """Any scratch gives the emulator's bits and stays within its words: the full size, room
    for 1 (the one-tap path: passes take whole blocks of 4 channels) and 7 channels (4 a
    pass), one word short of a pass's tables (the one-tap path), NULL."""
    rng = np.random.default_rng(5)
    for k, n in [(784, 256), (100, 45), (20, 5), (8, 1), (57, 300)]:
        for variant, lib in libs.items():
            assert lib.u8_scratch_words(k, n) == dense_u8_scratch_words(k, n, VARIANT_CORE[variant])
    for shape, n, zp in [((1, 1, 100), 45, 3), ((2, 3, 7), 9, 255), ((1, 1, 57), 300, 128)]:
        k = int(np.prod(shape))
        op = DenseU8("scratch", shape, weights=pack_bits(random_bits(rng, (n, k))), zero_point=zp)
        xs = u8_input(rng, 1, shape, "random", zp)
        for scores in (False, True):
            op = with_stage(rng, op, xs, scores)
            want = EMULATOR["dense_u8"](xs, op)
            for variant, lib in libs.items():
                tables = 128 * ((dense_u8_scratch_words(k, 1, VARIANT_CORE[variant]) - 1) // 128)
                for words in (None, tables + 1, tables + 7, tables, 0):
                    got = lib.run(op, xs[0], scratch_words=words)
                    kl.assert_same(f"dense_u8 [{variant}] scratch {words}", op.name, got, want[0],
                                   None if scores else n, explain(op, xs, 0))


# -- binary conv ----------------------------------------------------------------------------

@st.composite
def conv_geometry(draw, max_hw=9, channels=st.sampled_from([1, 2, 5, 31, 32, 33, 64, 65, 95])):
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, 4)) for _ in range(4))  # top, left, bottom, right
    assume(h + pads[0] + pads[2] >= kh and w + pads[1] + pads[3] >= kw)
    return dict(in_shape=(h, w, draw(channels)), kernel=(kh, kw), stride=(sh, sw), padding=pads)


@CASES
@given(seed=seeds, geo=conv_geometry(), n=st.integers(1, 40),
       pad_value=st.sampled_from([1, -1, 0]), batch=st.integers(1, 2), style=styles)
def test_bconv2d(libs, seed, geo, n, pad_value, batch, style):
    rng = np.random.default_rng(seed)
    (h, w, c), (kh, kw) = geo["in_shape"], geo["kernel"]
    op = BConv2d("bconv2d", geo["in_shape"], kernel=geo["kernel"], stride=geo["stride"],
                 padding=geo["padding"], weights=pack_bits(random_bits(rng, (n, kh, kw, c))),
                 pad_value=pad_value)
    xs = packed_input(rng, batch, h, w, c, style)
    check(libs, with_stage(rng, op, xs, False), xs)


@pytest.mark.parametrize("pad_value", [1, -1, 0])
def test_bconv2d_fixed_shapes(libs, pad_value):
    """1x1 images and kernels, a window wholly in padding, and a large layer."""
    rng = np.random.default_rng(pad_value + 5)
    shapes = [  # in_shape, kernel, stride, padding, out channels
        ((1, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
        ((1, 1, 33), (3, 3), (1, 1), (1, 1, 1, 1), 5),
        ((1, 1, 32), (1, 1), (2, 2), (3, 0, 0, 2), 8),  # windows that see only padding
        ((5, 4, 7), (3, 2), (2, 1), (0, 2, 1, 0), 33),
        ((16, 16, 64), (3, 3), (1, 1), (1, 1, 1, 1), 64),
        ((13, 11, 95), (3, 3), (2, 2), (1, 0, 2, 1), 36),
    ]
    for in_shape, kernel, stride, padding, n in shapes:
        h, w, c = in_shape
        op = BConv2d("fixed", in_shape, kernel=kernel, stride=stride, padding=padding,
                     weights=pack_bits(random_bits(rng, (n,) + kernel + (c,))), pad_value=pad_value)
        xs = packed_input(rng, 1, h, w, c, "random")
        check(libs, with_stage(rng, op, xs, False), xs)


NINE_WORD_CONVS = [  # in_shape, kernel, stride, padding: k_h = 3, k_w * words(C) = 3
    ((14, 14, 32), (3, 3), (1, 1), (1, 1, 1, 1)),
    ((6, 5, 1), (3, 3), (1, 1), (2, 1, 0, 2)),
    ((7, 9, 20), (3, 3), (2, 2), (1, 0, 1, 1)),
    ((5, 4, 31), (3, 3), (1, 2), (0, 0, 0, 0)),
    ((6, 5, 70), (3, 1), (1, 1), (1, 1, 1, 1)),
    ((4, 3, 96), (3, 1), (2, 1), (2, 0, 2, 3)),
    ((1, 1, 32), (3, 3), (1, 1), (1, 1, 1, 1)),
]


@pytest.mark.parametrize("pad_value", [1, -1, 0])
@pytest.mark.parametrize("index", range(len(NINE_WORD_CONVS)))
def test_bconv2d_nine_word_windows(libs, index, pad_value):
    """Windows of 9 words (the precomputed-combinations tree): in-image and edge windows,
    strides, channel counts around the record batches (4 on v6-M, 64 elsewhere) and the
    32-channel output words; pad_value 0 takes the general path."""
    check_random_convs(libs, "nine", NINE_WORD_CONVS[index], pad_value, (1, 5, 32, 33, 70),
                       np.random.default_rng(10 * index + pad_value + 1))


def check_random_convs(libs, name, case, pad_value, out_channels, rng) -> None:
    """A conv of `case` (in_shape, kernel, stride, padding) with random weights, thresholds and
    inputs, for each number of output channels, against the emulator on every path."""
    in_shape, kernel, stride, padding = case
    h, w, c = in_shape
    for n in out_channels:
        op = BConv2d(name, in_shape, kernel=kernel, stride=stride, padding=padding,
                     weights=pack_bits(random_bits(rng, (n,) + kernel + (c,))), pad_value=pad_value)
        xs = packed_input(rng, 2, h, w, c, "random")
        check(libs, with_stage(rng, op, xs, False), xs)


GROUPED_NINE_WORD_CONVS = [  # in_shape, kernel, stride, padding: k_h = 3, k_w * words(C) = 3 G
    ((14, 14, 64), (3, 3), (1, 1), (1, 1, 1, 1)),
    ((7, 9, 40), (3, 3), (2, 2), (1, 0, 1, 1)),
    ((5, 6, 96), (3, 3), (1, 1), (1, 1, 1, 1)),
    ((9, 7, 48), (3, 3), (2, 1), (0, 1, 2, 1)),
    ((5, 5, 128), (3, 3), (2, 2), (1, 1, 1, 1)),
    ((4, 3, 130), (3, 3), (1, 1), (1, 1, 1, 1)),  # 5 groups (v6-M: the general path)
    ((3, 3, 256), (3, 3), (1, 1), (1, 1, 1, 1)),  # 8 groups (the most, v7-M / v7E-M)
    ((3, 4, 257), (3, 3), (1, 1), (1, 1, 1, 1)),  # 9 groups: the general path everywhere
    ((1, 1, 64), (3, 3), (1, 1), (1, 1, 1, 1)),  # < 9 output pixels: the general path
    ((2, 2, 96), (3, 3), (2, 2), (1, 1, 1, 1)),
    ((3, 3, 96), (3, 3), (1, 1), (1, 1, 1, 1)),  # 9 output pixels, every one at an edge
    ((2, 2, 40), (3, 3), (1, 1), (3, 3, 3, 3)),  # windows wholly in padding
    ((5, 4, 33), (3, 3), (1, 2), (0, 0, 0, 0)),
    ((6, 5, 190), (3, 1), (1, 1), (1, 1, 1, 1)),  # 2 groups of 3 channel words of a tap
    ((6, 7, 65), (3, 2), (2, 1), (1, 1, 1, 2)),  # 2 groups across taps
]


@pytest.mark.parametrize("pad_value", [1, -1, 0])
@pytest.mark.parametrize("index", range(len(GROUPED_NINE_WORD_CONVS)))
def test_bconv2d_grouped_nine_word_windows(libs, index, pad_value):
    """Windows of G groups of 9 words (3 x 3 over more than 32 channels): counts summed over
    the groups, partial last channel words, edge words from pad words, batches of 32 channels
    and of fewer (OR-ed into the output word), strides, tiny images; pad_value 0 takes the
    general path."""
    check_random_convs(libs, "nine_g", GROUPED_NINE_WORD_CONVS[index], pad_value,
                       (1, 5, 16, 33, 70), np.random.default_rng(20 * index + pad_value + 3))


def test_bconv2d_grouped_extremes(libs):
    """Counts at both ends (x == w, x == ~w, also in the padding) and thresholds at and one
    off the clamping limits, over 2 and 3 groups."""
    rng = np.random.default_rng(77)
    for c, pad_value in [(64, 1), (96, -1), (40, -1)]:
        n = 9
        wb = random_bits(rng, (n, 3, 3, c))
        wb[0], wb[1] = 0, 1
        wb[2] = 1 if pad_value < 0 else 0  # matches the padding bits
        op = BConv2d("extremes_g", (3, 3, c), kernel=(3, 3), padding=(1, 1, 1, 1),
                     weights=pack_bits(wb), pad_value=pad_value)
        xs = pack_bits(np.stack([np.zeros((3, 3, c), np.uint8), np.ones((3, 3, c), np.uint8),
                                 random_bits(rng, (3, 3, c))]))
        k = 9 * c
        for t in (-k - 1, -k, -k + 1, k - 1, k, k + 1, 0, 1, INT32_MIN, INT32_MAX):
            op.out = Threshold(np.full(n, t, np.int32))
            check(libs, op, xs)
        check(libs, with_stage(rng, op, xs, False), xs)


# -- uint8 conv -----------------------------------------------------------------------------

SMALL_U8_CONVS = [  # in_shape, kernel, stride, padding: K <= 12 taps
    ((28, 28, 1), (3, 3), (1, 1), (1, 1, 1, 1)),
    ((7, 6, 3), (2, 2), (1, 2), (1, 0, 1, 1)),
    ((5, 5, 12), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((6, 7, 2), (3, 2), (2, 1), (2, 1, 0, 3)),
    ((4, 9, 4), (1, 3), (1, 1), (0, 1, 0, 1)),
    ((3, 3, 1), (1, 1), (2, 2), (1, 1, 1, 1)),
    ((9, 4, 1), (3, 3), (3, 1), (0, 2, 2, 0)),
    # 3x3x1 stride 1 (row tables, bnn_conv3_u8_dsp.h): a tail group of 3 columns, column
    # passes of 32 + 9, windows wholly in the padding
    ((5, 7, 1), (3, 3), (1, 1), (0, 2, 1, 0)),
    ((3, 41, 1), (3, 3), (1, 1), (1, 1, 1, 1)),
    ((2, 2, 1), (3, 3), (1, 1), (2, 2, 2, 2)),
]


@pytest.mark.parametrize("zp", [0, 128, 255, 37])
@pytest.mark.parametrize("index", range(len(SMALL_U8_CONVS)))
def test_conv2d_u8_small_windows(libs, index, zp):
    """Windows of <= 12 taps: USAD8 against byte masks (DSP) or two subset-sum tables
    (v7-M, v6-M); thresholds at the clamping limits of the folded threshold, constant
    channels, extreme pixels; channel counts around 32-channel words; odd widths (pairs)."""
    in_shape, kernel, stride, padding = SMALL_U8_CONVS[index]
    rng = np.random.default_rng(100 * index + zp)
    k = kernel[0] * kernel[1] * in_shape[2]
    for n, style in [(1, "random"), (7, "max"), (32, "zeros"), (33, "random"), (70, "near_zp")]:
        op = Conv2dU8("small", in_shape, kernel=kernel, stride=stride, padding=padding,
                      weights=pack_bits(random_bits(rng, (n, k))), zero_point=zp)
        xs = u8_input(rng, 2, in_shape, style, zp)
        check(libs, with_stage(rng, op, xs, False), xs)
        a = max_abs_acc(op)
        op.out = Threshold(rng.choice([-a - 1, -a, a, a + 1, INT32_MIN, INT32_MAX], size=n).astype(np.int32))
        check(libs, op, xs)



def border_pixels(op) -> np.ndarray:
    """[Ho * Wo] bool: output pixels whose window has padded taps."""
    h, w, _ = op.in_shape
    valid = valid_taps((h, w), op.kernel, op.stride, op.padding)
    return ~valid.reshape(valid.shape[0] * valid.shape[1], -1).all(axis=1)


def ties_at(rng, op, xs, border: bool) -> Threshold:
    """Per channel: the accumulator of a random border (or interior) pixel of a random sample,
    or one off it: the thresholds where a half zero point's per-window correction decides."""
    acc = accumulators(op, xs)  # [B * Ho * Wo, N]
    where = border_pixels(op)
    pixels = np.flatnonzero(np.tile(where if border else ~where, len(xs)))
    assert len(pixels), "test bug: no such pixels"
    n = acc.shape[1]
    pick = acc[rng.choice(pixels, size=n), np.arange(n)]
    return Threshold((pick + rng.choice([0, 0, 0, -1, 1], size=n)).astype(np.int32))


HALF_ZPS = [0, 127, 254, 37]


@pytest.mark.parametrize("zp", HALF_ZPS)
@pytest.mark.parametrize("index", range(len(SMALL_U8_CONVS)))
def test_conv2d_u8_half_zero_point_small_windows(libs, index, zp):
    """A half zero point (zp + 0.5, accumulator sum w (2x - (2 zp + 1)) over the valid taps) on
    windows of <= 12 taps: per-window-pattern records (DSP, v7-M, v6-M) and the general path
    (portable). Thresholds tie the accumulators of border pixels and of interior ones, sit at
    the clamping limits, or make constant channels."""
    in_shape, kernel, stride, padding = SMALL_U8_CONVS[index]
    rng = np.random.default_rng(1000 + 100 * index + zp)
    k = kernel[0] * kernel[1] * in_shape[2]
    for n, style in [(1, "random"), (7, "max"), (32, "zeros"), (33, "random"), (70, "near_zp")]:
        op = Conv2dU8("half", in_shape, kernel=kernel, stride=stride, padding=padding,
                      weights=pack_bits(random_bits(rng, (n, k))), zero_point=zp,
                      half_zero_point=True)
        xs = u8_input(rng, 2, in_shape, style, zp)
        sides = [True, False] if any(padding) else [False]
        if any(padding) and border_pixels(op).all():
            sides = [True]
        for border in sides:
            op.out = ties_at(rng, op, xs, border)
            check(libs, op, xs)
        a = max_abs_acc(op)
        op.out = Threshold(rng.choice([-a - 1, -a, a, a + 1, 0, 1, INT32_MIN, INT32_MAX],
                                      size=n).astype(np.int32))
        check(libs, op, xs)


def test_conv2d_u8_half_zero_point_is_not_the_integral_one(libs):
    """The half path's bits differ from those of zero point zp or zp + 1 with the same
    thresholds halved: the border correction is not vacuous."""
    rng = np.random.default_rng(7)
    op = Conv2dU8("half", (28, 28, 1), kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1),
                  weights=pack_bits(random_bits(rng, (16, 9))), zero_point=127, half_zero_point=True)
    xs = u8_input(rng, 1, (28, 28, 1), "random", 127)
    op.out = ties_at(rng, op, xs, border=True)
    want = emu.conv2d_u8(xs, op)
    check(libs, op, xs)
    for zp in (127, 128):
        other = Conv2dU8("int", op.in_shape, kernel=op.kernel, stride=op.stride, padding=op.padding,
                         weights=op.weights, zero_point=zp,
                         out=Threshold((op.out.thresholds // 2).astype(np.int32)))
        assert not np.array_equal(emu.conv2d_u8(xs, other), want)


@CASES
@given(seed=seeds, geo=conv_geometry(max_hw=10, channels=st.sampled_from([1, 1, 2, 3, 4, 5, 8, 16])),
       n=st.integers(1, 40), zp=st.integers(0, 254), batch=st.integers(1, 2), style=u8_styles)
def test_conv2d_u8_half_zero_point(libs, seed, geo, n, zp, batch, style):
    rng = np.random.default_rng(seed)
    (h, w, c), (kh, kw) = geo["in_shape"], geo["kernel"]
    op = Conv2dU8("conv2d_u8", geo["in_shape"], kernel=geo["kernel"], stride=geo["stride"],
                  padding=geo["padding"], weights=pack_bits(random_bits(rng, (n, kh * kw * c))),
                  zero_point=zp, half_zero_point=True)
    xs = u8_input(rng, batch, (h, w, c), style, zp)
    check(libs, with_stage(rng, op, xs, False), xs)


@CASES
@given(seed=seeds, geo=conv_geometry(max_hw=10, channels=st.sampled_from([1, 1, 2, 3, 4, 5, 8, 16])),
       n=st.integers(1, 40), zp=zero_points, batch=st.integers(1, 2), style=u8_styles)
def test_conv2d_u8(libs, seed, geo, n, zp, batch, style):
    rng = np.random.default_rng(seed)
    (h, w, c), (kh, kw) = geo["in_shape"], geo["kernel"]
    op = Conv2dU8("conv2d_u8", geo["in_shape"], kernel=geo["kernel"], stride=geo["stride"],
                  padding=geo["padding"], weights=pack_bits(random_bits(rng, (n, kh * kw * c))),
                  zero_point=zp)
    xs = u8_input(rng, batch, (h, w, c), style, zp)
    check(libs, with_stage(rng, op, xs, False), xs)


def test_conv2d_u8_fixed_shapes(libs):
    rng = np.random.default_rng(3)
    shapes = [
        ((1, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, 0),
        ((28, 28, 1), (3, 3), (1, 1), (1, 1, 1, 1), 32, 128),
        ((32, 32, 3), (5, 5), (2, 2), (2, 1, 2, 3), 20, 127),
        ((6, 6, 3), (11, 11), (1, 1), (5, 5, 5, 5), 9, 255),  # 363-bit rows, deep padding
    ]
    for half in (False, True):
        for in_shape, kernel, stride, padding, n, zp in shapes:
            zp = min(zp, 254) if half else zp
            op = Conv2dU8("fixed", in_shape, kernel=kernel, stride=stride, padding=padding,
                          weights=pack_bits(random_bits(rng, (n, kernel[0] * kernel[1] * in_shape[2]))),
                          zero_point=zp, half_zero_point=half)
            xs = u8_input(rng, 1, in_shape, "random", zp)
            check(libs, with_stage(rng, op, xs, False), xs)
            if half and any(padding):  # windows of 75 and 363 taps: the general path's S
                op.out = ties_at(rng, op, xs, border=True)
                check(libs, op, xs)


# -- max-pool and argmax --------------------------------------------------------------------

@CASES
@given(seed=seeds, h=st.integers(1, 10), w=st.integers(1, 10),
       c=st.one_of(st.sampled_from(WIDTHS), st.integers(1, 100)), kh=st.integers(1, 3),
       kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       mask=st.sampled_from(["random", "none", "all"]), batch=st.integers(1, 2), style=styles)
def test_maxpool2d(libs, seed, h, w, c, kh, kw, sh, sw, mask, batch, style):
    assume(kh <= h and kw <= w)
    rng = np.random.default_rng(seed)
    m = {"random": random_bits(rng, c), "none": np.zeros(c, np.uint8), "all": np.ones(c, np.uint8)}[mask]
    op = MaxPool2d("maxpool2d", (h, w, c), kernel=(kh, kw), stride=(sh, sw), or_mask=pack_bits(m))
    check(libs, op, packed_input(rng, batch, h, w, c, style))


@CASES
@given(seed=seeds, h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.one_of(st.sampled_from(WIDTHS), st.integers(1, 100)), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pad=st.lists(st.integers(0, 3), min_size=4, max_size=4),
       mask=st.sampled_from(["random", "none", "all"]), style=styles)
def test_maxpool2d_padded(libs, seed, h, w, c, kh, kw, sh, sw, pad, mask, style):
    """Padding on any side (< kernel, so every window has a real tap): padded taps skipped."""
    pt, pl, pb, pr = pad
    assume(max(pt, pb) < kh and max(pl, pr) < kw and kh <= h + pt + pb and kw <= w + pl + pr)
    rng = np.random.default_rng(seed)
    m = {"random": random_bits(rng, c), "none": np.zeros(c, np.uint8), "all": np.ones(c, np.uint8)}[mask]
    op = MaxPool2d("maxpool2d", (h, w, c), kernel=(kh, kw), stride=(sh, sw), or_mask=pack_bits(m),
                   padding=(pt, pl, pb, pr))
    check(libs, op, packed_input(rng, 2, h, w, c, style))


def test_maxpool2d_padded_skips_padded_taps(libs):
    """A 3x3 stride-2 pool with padding 1 on one 3x3 image, by hand: each window sees 4 real
    pixels and 5 padded taps. Channel 0 (AND) is -1 everywhere: 1 in every window, where a
    padded +1 (bit 0) would give 0; channel 1 (OR) is -1 only at (2, 2): 1 in the one window
    holding it, where a padded -1 would give 1 everywhere."""
    bits = np.zeros((3, 3, 2), np.uint8)
    bits[:, :, 0] = 1
    bits[2, 2, 1] = 1
    x = pack_bits(bits)[None]
    op = MaxPool2d("p", (3, 3, 2), kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1),
                   or_mask=pack_bits(np.array([0, 1], np.uint8)))
    assert op.out_shape == (2, 2, 2)
    want = np.array([[[0b01], [0b01]], [[0b01], [0b11]]], np.uint32)  # [Ho, Wo, words]
    got = emu.maxpool2d_b1(x, op)[0]
    assert np.array_equal(got, want), got.reshape(-1)
    check(libs, op, x)


@CASES
@given(scores=st.lists(st.one_of(st.integers(INT32_MIN, INT32_MAX),
                                 st.sampled_from([INT32_MIN, INT32_MAX, -1, 0, 1])),
                       min_size=1, max_size=60))
def test_argmax(libs, scores):
    s = np.array(scores, dtype=np.int32)
    want = int(emu.argmax_s32(s))
    for variant, lib in libs.items():
        got = lib.argmax(s)
        assert got == want, f"bnn_argmax_s32 [{variant}]: C={got} emulator={want} on {scores}"


def test_argmax_ties_and_empty(libs):
    for lib in libs.values():
        assert lib.argmax([5, 9, 9, 1, 9]) == 1
        assert lib.argmax([INT32_MIN] * 4) == 0
        assert lib.argmax([-3, INT32_MAX, INT32_MAX]) == 1
        assert lib.argmax([]) == -1


# -- whole models, op after op --------------------------------------------------------------

MODELS = [
    ((28, 28, 1), None),
    ((12, 10, 3), [("conv", dict(out=33, k=3, pad=1, zero_point=127)), ("pool", dict(k=2)),
                   ("conv", dict(out=40, k=3, pad=1, pad_value=-1)),
                   ("conv", dict(out=17, k=2, stride=2, pad_value=0, pad=1)),
                   ("dense", dict(out=10))]),
    ((9, 9, 1), [("dense", dict(out=100, zero_point=0)), ("dense", dict(out=65)),
                 ("dense", dict(out=3))]),
]


@pytest.mark.parametrize("index", range(len(MODELS)))
def test_random_models_layer_by_layer(libs, index):
    """Chain the C kernels over synthetic models (each op reads the previous C output) and
    compare every layer's output and the predicted class with the emulator's trace."""
    shape, layers = MODELS[index]
    model = random_model(100 + index, input_shape=shape, layers=layers)
    xs = np.random.default_rng(index).integers(0, 256, size=(3,) + shape, dtype=np.uint8)
    ref = emulator_run(model, xs, trace=True)
    for variant, lib in libs.items():
        for b in range(len(xs)):
            act = xs[b]
            for i, op in enumerate(model.ops):
                act = lib.run(op, act)
                kl.assert_same(f"{lib.kernel_name(op)} [{variant}]", f"{i}:{op.name} image {b}",
                               act, ref.layers[i][b], None if op.out_is_scores else op.out_channels)
            assert lib.argmax(act) == ref.predictions[b]


# -- Cortex-M builds ------------------------------------------------------------------------

CPUS = {
    "cortex-m0": ["-mcpu=cortex-m0", "-mfloat-abi=soft"],
    "cortex-m3": ["-mcpu=cortex-m3", "-mfloat-abi=soft"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
    "cortex-m33": ["-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mfloat-abi=hard"],
}
EXPECTED_PATH = {"cortex-m0": "V6M", "cortex-m3": "V7M", "cortex-m4": "DSP", "cortex-m7": "DSP",
                 "cortex-m33": "DSP", "cortex-m55": "DSP"}

needs_arm = pytest.mark.skipif(kl.arm_toolchain() is None,
                               reason="arm-none-eabi-gcc not installed (CI installs it)")


# what a kernel object may call: the C library's memcpy / memset (clang calls them by their
# run-time ABI names, which newlib and every Arm C library provide), nothing from libgcc
LIBC_CALLS = {"memcpy", "memset", "__aeabi_memcpy", "__aeabi_memcpy4", "__aeabi_memset",
              "__aeabi_memset4", "__aeabi_memclr", "__aeabi_memclr4"}
# the naked assembly (same code with every compiler and -O): table lookups, and the table
# build where Helium does not build it with vectors
NAKED_ASM = {"V6M": {"bnn_u8_lookups1_t1_asm", "bnn_u8_lookups2_t1_asm", "bnn_u8_lookups3_t1_asm", "bnn_u8_lookups4_t1_asm",
                     "bnn_u8_table_asm"},
             "V7M": {"bnn_u8_lookups7_asm", "bnn_u8_table_asm"},
             "DSP": {"bnn_u8_lookups7_asm", "bnn_u8_table_asm"}}


def local_functions(obj) -> set:
    r = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in r.stdout.splitlines() if line.split()[1:2] in (["t"], ["T"])}


@needs_arm
@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("cpu", list(CPUS))
@pytest.mark.parametrize("cc", list(kl.ARM_COMPILERS))
def test_cortex_m_build(tmp_path, cc, cpu, opt):
    """arm-none-eabi-gcc and clang --target=arm-none-eabi, no assembler syntax flag: warning-free
    with the contract's flags; no libgcc popcount (nor any other libgcc helper) in any kernel;
    the DSP path really uses USADA8; the naked assembly is built by both compilers."""
    if not kl.arm_compiler_available(cc):
        pytest.skip(f"{cc} not installed")
    objs, stderr = kl.arm_compile(CPUS[cpu], opt, tmp_path, cc)
    assert stderr.strip() == ""
    for obj in objs:
        undefined = kl.undefined_symbols(obj)
        assert "__popcountsi2" not in undefined, f"{obj.name} calls __popcountsi2 on {cpu} {opt}"
        assert undefined <= LIBC_CALLS, f"{obj.name} on {cpu} {opt} needs {sorted(undefined)}"
    dense_u8 = local_functions(tmp_path / "bnn_dense_u8_b1.o")
    want = NAKED_ASM[EXPECTED_PATH[cpu]] - ({"bnn_u8_table_asm"} if cpu == "cortex-m55" else set())
    assert want <= dense_u8, f"{cc} {cpu} {opt}: {sorted(want - dense_u8)} missing"
    if EXPECTED_PATH[cpu] == "DSP":
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(tmp_path / "bnn_bdense_b1.o")],
                             capture_output=True, text=True, check=True).stdout
        assert re.search(r"\busada8\b", dis), f"no usada8 in bnn_bdense_b1 on {cpu} {opt}"


@needs_arm
@pytest.mark.parametrize("cpu", ["cortex-m0", "cortex-m4"])
def test_cortex_m_build_without_assembly(tmp_path, cpu):
    """BNN_NO_ASM (for compilers without GNU asm: IAR, or to compare) builds the C twins
    only: warning-free, and no naked assembly function is left (the boards run the C twins
    in test_assembly_reads_what_its_c_twin_reads)."""
    objs, stderr = kl.arm_compile(CPUS[cpu], "-O2", tmp_path, "gcc", ["-DBNN_NO_ASM"])
    assert stderr.strip() == ""
    assert not any(name.endswith("_asm") for o in objs for name in local_functions(o))


@needs_arm
@pytest.mark.parametrize("cpu", list(CPUS))
def test_cortex_m_path_selection(tmp_path, cpu):
    """Each core compiles the path meant for it (and the M55 marks its Helium place)."""
    src = tmp_path / "probe.c"
    src.write_text('#include "bnn_popcount.h"\n'
                   "PATH DSP=BNN_PATH_DSP V7M=BNN_PATH_V7M V6M=BNN_PATH_V6M "
                   "PORTABLE=BNN_PATH_PORTABLE MVE=BNN_PATH_MVE\n")
    out = subprocess.run(["arm-none-eabi-gcc", "-E", "-P", *CPUS[cpu], "-mthumb",
                          f"-I{kl.INCLUDE_DIR}", f"-I{kl.KERNEL_DIR}", str(src)],
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("PATH "))
    paths = dict(kv.split("=") for kv in line.split()[1:])
    on = [k for k, v in paths.items() if v == "1" and k != "MVE"]
    assert on == [EXPECTED_PATH[cpu]], line
    assert paths["MVE"] == ("1" if cpu == "cortex-m55" else "0"), line



# -- QEMU boards ----------------------------------------------------------------------------

QEMU_BOARDS = ["mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547", "microbit"]


def board_cases():
    """(label, op, input) for the boards: every kernel, tails, the three paddings, odd zero
    points, ties and constant channels, and a few layers of realistic size."""
    rng = np.random.default_rng(2024)
    cases = []

    def add(label, op, x, scores=False):
        if op is not None and not isinstance(op, MaxPool2d):
            with_stage(rng, op, x[None], scores)
        cases.append((label, op, x))

    for c in (1, 31, 33, 95):
        add(f"bdense 1x1x{c}->37", BDense("b", (1, 1, c), weights=pack_bits(random_bits(rng, (37, c)))),
            packed_input(rng, 1, 1, 1, c, "random")[0])
    wb = pack_bits(random_bits(rng, (70, 9, 33))).reshape(70, -1)
    add("bdense 3x3x33->70", BDense("b", (3, 3, 33), weights=wb), packed_input(rng, 1, 3, 3, 33, "random")[0])
    wb = pack_bits(random_bits(rng, (10, 4, 65))).reshape(10, -1)
    add("bdense 2x2x65->10 scores", BDense("b", (2, 2, 65), weights=wb),
        packed_input(rng, 1, 2, 2, 65, "random")[0], scores=True)
    add("bdense 1024->1024", BDense("b", (1, 1, 1024), weights=pack_bits(random_bits(rng, (1024, 1024)))),
        packed_input(rng, 1, 1, 1, 1024, "random")[0])
    # the Harley-Seal rows: 8-word blocks, words past them, 1024-bit rows two at a time
    for words, n, cut, scores in [(8, 33, 0, False), (9, 7, 3, False), (15, 32, 31, False),
                                  (16, 64, 0, True), (17, 3, 1, False), (24, 40, 9, False),
                                  (31, 1, 0, False), (32, 64, 0, False), (32, 33, 0, False),
                                  (32, 2, 7, True), (33, 31, 0, False), (98, 10, 0, False),
                                  (249, 3, 5, False), (300, 5, 9, False), (519, 2, 0, True)]:
        c = 32 * words - cut
        add(f"bdense 1x1x{c}->{n}{' scores' if scores else ''}",
            BDense("b", (1, 1, c), weights=pack_bits(random_bits(rng, (n, c)))),
            packed_input(rng, 1, 1, 1, c, "random")[0], scores=scores)
    # passes of 4 + 4 .. + 2 tables (784), 4 + 1 (37), 4 + 4 + 2 (75), 4 + 4 + 4 + 1 (100), 4 + 3
    # (56), 2 (16): every Thumb-1 lookup function
    for shape, n, zp, scores in [((28, 28, 1), 64, 128, False), ((1, 1, 37), 9, 0, False),
                                 ((1, 1, 37), 9, 255, True), ((5, 5, 3), 10, 127, True),
                                 ((1, 1, 100), 300, 5, False), ((1, 1, 56), 40, 77, False),
                                 ((1, 1, 16), 70, 200, True)]:
        k = int(np.prod(shape))
        add(f"dense_u8 {k}->{n} zp {zp}", DenseU8("d", shape, weights=pack_bits(random_bits(rng, (n, k))),
                                                  zero_point=zp),
            u8_input(rng, 1, shape, "random", zp)[0], scores=scores)
    for pad_value in (1, -1, 0):
        add(f"bconv2d 7x6x33 k3x2 s2x1 pad_value {pad_value}",
            BConv2d("c", (7, 6, 33), kernel=(3, 2), stride=(2, 1), padding=(1, 0, 2, 1),
                    weights=pack_bits(random_bits(rng, (36, 3, 2, 33))), pad_value=pad_value),
            packed_input(rng, 1, 7, 6, 33, "random")[0])
    # 9-word windows (3 x 3 x <= 32 channels, 3 x 1 x <= 96): records, rows buffer, word tails
    for (h, w, c), kernel, stride, padding, n, pad_value in [
            ((14, 14, 32), (3, 3), (1, 1), (1, 1, 1, 1), 64, 1),
            ((9, 7, 20), (3, 3), (2, 1), (1, 0, 2, 1), 40, -1),
            ((6, 5, 70), (3, 1), (1, 2), (1, 1, 1, 1), 33, -1),
            ((5, 5, 32), (3, 3), (1, 1), (2, 2, 2, 2), 3, 1),
            ((4, 6, 31), (3, 3), (1, 1), (1, 1, 1, 1), 97, 1),
            ((5, 5, 32), (3, 3), (1, 1), (1, 1, 1, 1), 8, 0),
            ((7, 9, 20), (3, 3), (2, 2), (1, 0, 1, 1), 70, 1)]:
        add(f"bconv2d {h}x{w}x{c} k{kernel[0]}x{kernel[1]} ->{n} pad_value {pad_value}",
            BConv2d("c", (h, w, c), kernel=kernel, stride=stride, padding=padding,
                    weights=pack_bits(random_bits(rng, (n,) + kernel + (c,))), pad_value=pad_value),
            packed_input(rng, 1, h, w, c, "random")[0])
    # grouped 9-word windows (3 x 3 over more than 32 channels): partial channel words,
    # batches of fewer than 32 channels, tiny images, 3 x 1 and 3 x 2 kernels
    for (h, w, c), kernel, stride, padding, n, pad_value in [
            ((7, 9, 40), (3, 3), (2, 2), (1, 0, 1, 1), 37, -1),
            ((5, 6, 96), (3, 3), (1, 1), (1, 1, 1, 1), 33, 1),
            ((9, 7, 48), (3, 3), (2, 1), (0, 1, 2, 1), 20, 1),
            ((4, 5, 128), (3, 3), (1, 1), (1, 1, 1, 1), 40, -1),
            ((4, 4, 130), (3, 3), (1, 1), (1, 1, 1, 1), 19, 1),
            ((3, 3, 256), (3, 3), (1, 1), (1, 1, 1, 1), 9, -1),
            ((1, 1, 64), (3, 3), (1, 1), (1, 1, 1, 1), 70, -1),
            ((2, 2, 96), (3, 3), (2, 2), (1, 1, 1, 1), 5, 1),
            ((3, 3, 96), (3, 3), (1, 1), (1, 1, 1, 1), 33, -1),
            ((6, 5, 190), (3, 1), (1, 1), (1, 1, 1, 1), 17, -1),
            ((6, 7, 65), (3, 2), (2, 1), (1, 1, 1, 2), 33, 1)]:
        add(f"bconv2d {h}x{w}x{c} k{kernel[0]}x{kernel[1]} ->{n} pad_value {pad_value}",
            BConv2d("c", (h, w, c), kernel=kernel, stride=stride, padding=padding,
                    weights=pack_bits(random_bits(rng, (n,) + kernel + (c,))), pad_value=pad_value),
            packed_input(rng, 1, h, w, c, "random")[0])
    add("bconv2d 16x16x64 k3 ->64", BConv2d("c", (16, 16, 64), kernel=(3, 3), padding=(1, 1, 1, 1),
                                             weights=pack_bits(random_bits(rng, (64, 3, 3, 64)))),
        packed_input(rng, 1, 16, 16, 64, "random")[0])
    for shape, kernel, stride, padding, n, zp in [((28, 28, 1), (3, 3), (1, 1), (1, 1, 1, 1), 32, 128),
                                                  ((9, 8, 3), (5, 5), (2, 2), (2, 1, 2, 3), 20, 3),
                                                  ((1, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, 0),
                                                  ((7, 6, 3), (2, 2), (1, 2), (1, 0, 1, 1), 33, 37),
                                                  ((5, 5, 12), (1, 1), (1, 1), (0, 0, 0, 0), 7, 255),
                                                  ((9, 4, 1), (3, 3), (3, 1), (0, 2, 2, 0), 70, 0),
                                                  # 3x3x1 stride 1, row tables: 16 + 4 dummy
                                                  # channels and a tail group; 32 + 8 channels
                                                  # over column passes of 32 + 9
                                                  ((5, 7, 1), (3, 3), (1, 1), (0, 2, 1, 0), 20, 0),
                                                  ((3, 41, 1), (3, 3), (1, 1), (1, 1, 1, 1), 40, 255)]:
        add(f"conv2d_u8 {'x'.join(map(str, shape))} k{kernel[0]} ->{n} zp {zp}",
            Conv2dU8("u", shape, kernel=kernel, stride=stride, padding=padding, zero_point=zp,
                     weights=pack_bits(random_bits(rng, (n, kernel[0] * kernel[1] * shape[2])))),
            u8_input(rng, 1, shape, "random", zp)[0])
    # half zero points: per-pattern records (small windows), the general path (75 taps)
    for shape, kernel, stride, padding, n, zp in [((28, 28, 1), (3, 3), (1, 1), (1, 1, 1, 1), 16, 127),
                                                  ((28, 28, 1), (3, 3), (2, 2), (1, 1, 1, 1), 8, 127),
                                                  ((9, 8, 3), (5, 5), (2, 2), (2, 1, 2, 3), 20, 3),
                                                  ((7, 6, 3), (2, 2), (1, 2), (1, 0, 1, 1), 33, 37),
                                                  ((6, 7, 2), (3, 2), (2, 1), (2, 1, 0, 3), 40, 254)]:
        op = Conv2dU8("u", shape, kernel=kernel, stride=stride, padding=padding, zero_point=zp,
                      half_zero_point=True,
                      weights=pack_bits(random_bits(rng, (n, kernel[0] * kernel[1] * shape[2]))))
        x = u8_input(rng, 1, shape, "random", zp)[0]
        cases.append((f"conv2d_u8 {'x'.join(map(str, shape))} k{kernel[0]} s{stride[0]} ->{n} "
                      f"zp {zp}.5", op, x))
        op.out = ties_at(rng, op, x[None], border=True)
    for shape, k, s, pad in [((8, 8, 95), (2, 2), (2, 2), (0, 0, 0, 0)),
                             ((5, 7, 33), (3, 3), (1, 2), (0, 0, 0, 0)),
                             ((13, 13, 20), (3, 3), (2, 2), (1, 1, 1, 1)),  # padding 1
                             ((7, 9, 64), (2, 2), (2, 2), (0, 0, 1, 1)),  # ceil_mode
                             ((12, 12, 48), (3, 3), (2, 2), (1, 1, 2, 2))]:  # both
        add(f"maxpool2d {'x'.join(map(str, shape))}{' pad ' + 'x'.join(map(str, pad)) if any(pad) else ''}",
            MaxPool2d("p", shape, kernel=k, stride=s, padding=pad,
                      or_mask=pack_bits(random_bits(rng, shape[2]))),
            packed_input(rng, 1, *shape, "random")[0])
    add("argmax ties", None, np.array([-7, 12, INT32_MIN, 12, INT32_MAX, INT32_MAX, 3], np.int32))
    return cases


@pytest.fixture(scope="module")
def cases_for_boards():
    return board_cases()


needs_qemu = pytest.mark.skipif(
    kl.arm_toolchain() is None or __import__("shutil").which("qemu-system-arm") is None,
    reason="arm-none-eabi-gcc or qemu-system-arm not installed (CI installs both)")


@pytest.mark.qemu
@needs_qemu
@pytest.mark.parametrize("target", QEMU_BOARDS)
def test_kernels_on_qemu_boards(target, cases_for_boards, tmp_path_factory, request):
    """The firmware build of the kernels (the board's real code path) on each QEMU board,
    compared with the emulator exactly; instructions per kernel call are printed (-s)."""
    cache = getattr(request.config, "cache", None)
    build = cache.mkdir("bnn_kernels_boards") if cache is not None else tmp_path_factory.mktemp("boards")
    cases = cases_for_boards
    outputs, instructions = kl.run_on_board(target, [(op, x) for _, op, x in cases], build)
    print(f"\n{target}: instructions per kernel call")
    for (label, op, x), got, count in zip(cases, outputs, instructions):
        check_case_output(target, label, op, x, got)
        if op is not None:
            macs = f"{op.macs / count:5.2f} MAC/instr" if op.macs else ""
            print(f"  {label:40s} {count:10d} {macs}")


# One board per instruction set: Thumb-2 with DSP, and Thumb-1.
COMPILER_BOARDS = ["mps2-an386", "microbit"]


def _board_build_dir(request, tmp_path_factory, name):
    cache = getattr(request.config, "cache", None)
    return cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)


@pytest.mark.qemu
@needs_qemu
@pytest.mark.parametrize("target", COMPILER_BOARDS)
def test_kernels_built_by_clang_on_qemu(target, cases_for_boards, tmp_path_factory, request):
    """The kernels compiled by clang --target=arm-none-eabi (its C twins of the GCC inline
    assembly, the naked assembly shared) give the emulator's bits on the board."""
    if not kl.arm_compiler_available("clang"):
        pytest.skip("clang not installed")
    build = _board_build_dir(request, tmp_path_factory, "bnn_kernels_clang")
    outputs, instructions = kl.run_on_board(target, [(op, x) for _, op, x in cases_for_boards],
                                            build, cc="clang")
    for (label, op, x), got in zip(cases_for_boards, outputs):
        check_case_output(f"{target} (clang)", label, op, x, got)
    print(f"\n{target} (clang -O2): {sum(instructions):,} instructions in all cases")


@pytest.mark.qemu
@needs_qemu
def test_dense_u8_two_tables_on_v6m(cases_for_boards, tmp_path_factory, request):
    """The v6-M build option for a smaller scratch (-DBNN_U8_TABLES=2 -DBNN_U8_BATCH=128): the
    uint8 dense cases exact on the micro:bit, and the defaults (4 tables, 256 channels a pass)
    take fewer instructions on the 784->64 and 100->300 layers."""
    build = _board_build_dir(request, tmp_path_factory, "bnn_kernels_u8_options")
    picked = [c for c in cases_for_boards if c[0].startswith("dense_u8")]
    cases = [(op, x) for _, op, x in picked]
    counts = {}
    for name, flags in (("defaults", ()), ("options", ("-DBNN_U8_BATCH=128", "-DBNN_U8_TABLES=2"))):
        outputs, counts[name] = kl.run_on_board("microbit", cases, build / name, extra_cflags=flags)
        for (label, op, x), got in zip(picked, outputs):
            check_case_output(f"microbit {name}", label, op, x, got)
    labels = [label for label, _, _ in picked]
    for label in ("dense_u8 784->64 zp 128", "dense_u8 100->300 zp 5"):
        i = labels.index(label)
        assert counts["defaults"][i] < 0.95 * counts["options"][i], (label, counts)


# -Os against -O2 per kernel call. The fast paths of the README's layers (uint8 tables, the
# Harley-Seal rows, 9-word conv windows, uint8 conv windows) are assembly or held at -O2 by
# bnn_kernel_util.h's pragma: within 2 % (measured: the MLP and CNN within 0.5 %). The other
# C paths (short binary rows, conv runs with zero padding) keep part of -Os: GCC's Arm
# backend reads the global -Os in its cost model (measured: up to 8 % on M4 for calls of
# 5,000+ instructions; the calls of 37 channels over 1..33 bits, ~2,500 instructions, 16 %).
FAST_PATH_CASES = {"bdense 1024->1024", "bdense 1x1x1024->64", "bdense 1x1x3136->10",
                   "dense_u8 784->64 zp 128", "dense_u8 100->300 zp 5",
                   "bconv2d 14x14x32 k3x3 ->64 pad_value 1", "bconv2d 16x16x64 k3 ->64",
                   "conv2d_u8 28x28x1 k3 ->32 zp 128"}
OS_SLOWDOWN_FAST, OS_SLOWDOWN_OTHER = 1.02, 1.15


@pytest.mark.qemu
@needs_qemu
@pytest.mark.parametrize("target", COMPILER_BOARDS)
def test_kernels_at_os_as_fast_as_at_o2(target, cases_for_boards, tmp_path_factory, request):
    """A project built at -Os keeps the kernels' speed: the board cases at -Os and at -O2 (GCC)
    both exact; the fast paths of realistic layers at most 2 % slower at -Os, other calls of
    5,000+ instructions at most 15 %."""
    build = _board_build_dir(request, tmp_path_factory, "bnn_kernels_opt")
    cases = [(op, x) for _, op, x in cases_for_boards]
    assert FAST_PATH_CASES <= {label for label, _, _ in cases_for_boards}
    counts = {}
    for opt in ("-O2", "-Os"):
        outputs, counts[opt] = kl.run_on_board(target, cases, build, opt=opt)
        for (label, op, x), got in zip(cases_for_boards, outputs):
            check_case_output(f"{target} {opt}", label, op, x, got)
    print(f"\n{target}: instructions per kernel call at -O2 and -Os")
    slow = []
    for (label, op, _), o2, os_ in zip(cases_for_boards, counts["-O2"], counts["-Os"]):
        if op is None:
            continue
        limit = OS_SLOWDOWN_FAST if label in FAST_PATH_CASES else OS_SLOWDOWN_OTHER
        print(f"  {label:40s} {o2:10,d} {os_:10,d} {os_ / o2:6.3f}")
        if (label in FAST_PATH_CASES or o2 >= 5000) and os_ > limit * o2:
            slow.append(f"{label}: {o2:,} at -O2, {os_:,} at -Os (limit {limit:.2f}x)")
    assert not slow, f"{target}: -Os too slow:\n" + "\n".join(slow)


def check_case_output(where, label, op, x, got) -> None:
    """One output of firmware_source's program (guard words included) against the emulator."""
    guard = got.view(np.uint32)[got.size - kl.GUARD_WORDS:]
    assert np.all(guard == kl.SENTINEL), f"{where} {label}: wrote past its output"
    got = got[:got.size - kl.GUARD_WORDS]
    if op is None:
        assert int(got.view(np.int32)[0]) == int(emu.argmax_s32(x)), f"{where} {label}"
        return
    want = EMULATOR[op.kind](x[None], op)[0]
    scores = op.out_is_scores
    if not scores:
        got = got.reshape(op.out_shape[0], op.out_shape[1], -1)
    kl.assert_same(f"{kl.KernelLib.kernel_name(op)} [{where}]", label,
                   got.view(np.int32) if scores else got, want,
                   None if scores else op.out_channels, explain(op, x[None], 0))


# -- memory checks: sanitizers on the host, traced accesses on the boards -------------------

@pytest.fixture(scope="module")
def memory_cases():
    """The board cases, and 9-word windows (the edge words assembled from pad words) of every
    shape of NINE_WORD_CONVS and GROUPED_NINE_WORD_CONVS with +1 and -1 padding."""
    cases = board_cases()
    rng = np.random.default_rng(99)
    for (h, w, c), kernel, stride, padding in NINE_WORD_CONVS + GROUPED_NINE_WORD_CONVS:
        for pad_value in (1, -1):
            n = 33 if c <= 192 else 9  # flash of the smallest board
            op = BConv2d("nine", (h, w, c), kernel=kernel, stride=stride, padding=padding,
                         weights=pack_bits(random_bits(rng, (n,) + kernel + (c,))),
                         pad_value=pad_value)
            xs = packed_input(rng, 1, h, w, c, "random")
            cases.append((f"bconv2d {h}x{w}x{c} k{kernel[0]}x{kernel[1]} pad_value {pad_value}",
                          with_stage(rng, op, xs, False), xs[0]))
    return cases


@pytest.mark.parametrize("variant", list(kl.VARIANTS))
def test_kernels_build_warning_free_with_clang(variant):
    """clang, too, compiles every path warning-free with the contract's flags (it reports
    static inline functions a .c file leaves unused, which GCC does not)."""
    if __import__("shutil").which("clang") is None:
        pytest.skip("clang not installed")
    r = subprocess.run(["clang", *kl.WARNINGS, "-O2", "-fsyntax-only", *kl.VARIANTS[variant],
                        f"-I{kl.INCLUDE_DIR}", *map(str, kl.kernel_sources())],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@pytest.mark.parametrize("sanitizer", list(kl.SANITIZERS))
@pytest.mark.parametrize("variant", list(kl.VARIANTS))
def test_kernels_under_sanitizers(variant, sanitizer, memory_cases, tmp_path):
    """The memory cases in one host program per path under MemorySanitizer (no read of an
    uninitialized value that reaches a branch, an address or an output word) and under
    AddressSanitizer + UBSan (no access outside any buffer, stack arrays included; no
    undefined behaviour); outputs exact."""
    flags = kl.SANITIZERS[sanitizer]
    if not kl.sanitizer_available("clang", flags, tmp_path):
        pytest.skip(f"clang with -fsanitize={sanitizer} not available")
    cases = [(op, x) for _, op, x in memory_cases]
    exe = kl.build_host_program(variant, cases, tmp_path, "clang", tuple(flags))
    r = subprocess.run([str(exe)], capture_output=True, timeout=600)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode(errors="replace")[-6000:]
    for (label, op, x), got in zip(memory_cases, kl.case_outputs(r.stdout, len(cases))):
        check_case_output(f"{variant}, {sanitizer}", label, op, x, got)


@pytest.mark.qemu
@needs_qemu
@pytest.mark.parametrize("target", QEMU_BOARDS)
def test_assembly_reads_what_its_c_twin_reads(target, memory_cases, tmp_path_factory, request):
    """The board's build (its assembly fast paths) and the same firmware with the C twins
    (-DBNN_TEST_EMULATE_<path>, compiled for the same core), every load and store of each kernel
    call traced by a QEMU plugin: both exact; neither touches memory outside the case's
    buffers, its output words, the stack and constants, nor loads a stack byte it has not
    stored (but the one of kl.benign_unwritten_load); both read the same bytes of the case's
    buffers."""
    from bnn_mcu.targets.boards import get_board

    path = EXPECTED_PATH[get_board(target).core]
    cache = getattr(request.config, "cache", None)
    build = (cache.mkdir("bnn_kernels_traces") if cache is not None
             else tmp_path_factory.mktemp("traces")) / target
    cases = [(op, x) for _, op, x in memory_cases]
    reads = {}
    for build_kind, flags in (("assembly", []), ("C twins", [f"-DBNN_TEST_EMULATE_{path}"])):
        where = f"{target} ({build_kind})"
        outputs, trace = kl.trace_on_board(target, cases, build / build_kind.replace(" ", "_"), flags)
        for (label, op, x), got in zip(memory_cases, outputs):
            check_case_output(where, label, op, x, got)
        problems = kl.trace_problems(cases, outputs, trace, path, where)
        assert not problems, "\n".join(problems[:20])
        reads[build_kind] = kl.bytes_read(cases, trace)
    for (label, _, _), a, b in zip(memory_cases, reads["assembly"], reads["C twins"]):
        assert a == b, (f"{target} {label}: the assembly and the C twins read different bytes: "
                        + ", ".join(f"{s}: {len(a.get(s, ())) } vs {len(b.get(s, ()))}"
                                    for s in sorted(set(a) | set(b)) if a.get(s) != b.get(s)))
