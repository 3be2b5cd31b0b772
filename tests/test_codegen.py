"""Generated C: deterministic, warning-free on every core, sizes equal to the inspect table."""

import filecmp
import subprocess

import numpy as np
import pytest

from bnn_mcu.codegen.project import core_flags, generate_project
from bnn_mcu.errors import BnnError
from bnn_mcu.ir.bits import pack_bits
from bnn_mcu.ir.ops import BDense, DenseU8, IntModel, Scores, Threshold
from bnn_mcu.ir.synthetic import random_model
from bnn_mcu.summary import layer_rows, totals
from conftest import have

WARN = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Wconversion"]


def tiny_model() -> IntModel:
    """4x4x1 -> dense_u8 40 -> bdense 10 scores: every byte countable by hand."""
    rng = np.random.default_rng(0)
    l0 = DenseU8("fc1", (4, 4, 1), weights=pack_bits(rng.integers(0, 2, (40, 16))), zero_point=128,
                 out=Threshold(np.zeros(40, np.int32)))
    l1 = BDense("fc2", (1, 1, 40), weights=pack_bits(rng.integers(0, 2, (10, 40))),
                out=Scores(np.ones(10, np.int32), np.zeros(10, np.int32)))
    return IntModel((4, 4, 1), [l0, l1], 10, {"name": "tiny"})


def test_inspect_figures_by_hand():
    m = tiny_model()
    r0, r1 = layer_rows(m)
    # fc1: 40 channels x 1 word of 16 bits = 160 B weights + 40 int32 thresholds = 160 B
    assert (r0.weight_bits, r0.flash_bytes, r0.act_bytes, r0.int8_macs) == (40 * 32, 320, 8, 640)
    # fc2: 10 x 2 words = 80 B + mult/bias 2 x 40 B; output 10 int32 scores
    assert (r1.weight_bits, r1.flash_bytes, r1.act_bytes, r1.binary_macs) == (10 * 64, 160, 40, 400)
    t = totals(m)
    assert t["flash_bytes"] == 480 and t["arena_bytes"] == 8
    # fc1's static scratch: 2 tables (16 inputs = 2 groups of 8) of 128 words + 40 sums
    assert t["scratch_bytes"] == 4 * (2 * 128 + 40) == totals(m, "cortex-m0")["scratch_bytes"]
    assert totals(m, "host")["scratch_bytes"] == 4  # the portable path declares one word
    assert t["ram_bytes"] == 8 + 1184 + 16 + 40  # arena + scratch + input image + scores


@pytest.mark.skipif(not have("arm-none-eabi-gcc"), reason="needs gcc-arm-none-eabi")
@pytest.mark.parametrize("seed,layers", [
    (1, None),
    (2, [("conv", dict(out=33, k=3, pad=1)), ("pool", dict(k=2)),
         ("conv", dict(out=70, k=2, stride=2, pad=1, pad_value=-1)), ("dense", dict(out=10))]),
    (3, [("dense", dict(out=100)), ("dense", dict(out=65)), ("dense", dict(out=7))]),
    (4, [("conv", dict(out=20, k=3)), ("pool", dict(k=3, stride=2, pad=(1, 1, 2, 2))),
         ("conv", dict(out=40, k=3, pad=1)), ("pool", dict(k=2, pad=(0, 0, 1, 1))),
         ("dense", dict(out=10))]),
    (5, [("conv", dict(out=20, k=3, stride=2, pad=1, zero_point=127, half_zero_point=True)),
         ("dense", dict(out=10))]),
])
def test_compiles_warning_free_everywhere_and_sizes_match(tmp_path, seed, layers):
    model = random_model(seed, layers=layers)
    out = tmp_path / "gen"
    generate_project(model, out, core="cortex-m4", with_figures=False)
    # the runtime kernels get the same check in test_kernels.py; here: the generated code
    srcs = [str(out / "bnn_model.c")]
    inc: list = []  # one flat folder: no include path
    for core, flags in sorted(core_flags().items()):
        cc = "gcc" if core == "host" else "arm-none-eabi-gcc"
        for opt in ("-O2", "-Os"):
            for src in srcs:
                obj = tmp_path / f"{core}{opt}.o"
                p = subprocess.run([cc, *WARN, opt, *flags, *inc, "-c", src, "-o", str(obj)],
                                   capture_output=True, text=True)
                assert p.returncode == 0 and not p.stderr, (core, opt, src, p.stderr)
    # the constant data the table reports is exactly what the object file holds
    obj = tmp_path / "m4.o"
    subprocess.run(["arm-none-eabi-gcc", *WARN, "-O2", *core_flags()["cortex-m4"], *inc, "-c",
                    srcs[0], "-o", str(obj)], check=True)
    nm = subprocess.run(["arm-none-eabi-nm", "-S", str(obj)], capture_output=True, text=True).stdout
    sizes = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    data = sum(v for k, v in sizes.items() if k.startswith("L") and "_" in k and
               not k.endswith("_scratch"))
    assert data == totals(model)["flash_bytes"]
    assert sizes["arena"] == totals(model)["arena_bytes"]
    # a uint8 dense layer's static scratch: the size the figures state, on each core
    for core, flags in sorted(core_flags().items()):
        cc = "gcc" if core == "host" else "arm-none-eabi-gcc"
        subprocess.run([cc, *WARN, "-O2", *flags, *inc, "-c", srcs[0], "-o", str(obj)], check=True)
        nm = subprocess.run([cc.replace("gcc", "nm"), "-S", str(obj)], capture_output=True,
                            text=True).stdout
        scratch = sum(int(line.split()[1], 16) for line in nm.splitlines()
                      if len(line.split()) == 4 and line.split()[3].endswith("_scratch"))
        assert scratch == totals(model, core)["scratch_bytes"], core
    assert (totals(model)["scratch_bytes"] > 0) == isinstance(model.ops[0], DenseU8)


def test_pool_padding_is_emitted():
    """pad_top and pad_left go to the kernel; bottom/right padding is in out_h/out_w."""
    from bnn_mcu.codegen.generate import render_model_sources
    model = random_model(4, layers=[("conv", dict(out=20, k=3)),
                                    ("pool", dict(k=3, stride=2, pad=(1, 1, 2, 2))),
                                    ("conv", dict(out=40, k=3, pad=1)), ("pool", dict(k=2)),
                                    ("dense", dict(out=10))])
    lines = dict(render_model_sources(model))["bnn_model.c"].splitlines()
    pools = [line for line in lines if "bnn_maxpool2d" in line and "layer" in line or
             line.startswith("static const bnn_maxpool2d_t")]
    assert pools == [
        "/* layer 1: bnn_maxpool2d_b1 'pool1': 26x26x20 -> 14x14x20, 3x3 stride 2 pad 1x1x2x2 "
        "(padded taps skipped), AND/OR mask; 4 B const, 784 B output, 0 MACs */",
        "static const bnn_maxpool2d_t L1 = { 26u, 26u, 20u, 14u, 14u, 3u, 3u, 2u, 2u, 1u, 1u, "
        "L1_or_mask };",
        "/* layer 3: bnn_maxpool2d_b1 'pool3': 14x14x40 -> 7x7x40, 2x2 stride 2, AND/OR mask; "
        "8 B const, 392 B output, 0 MACs */",
        "static const bnn_maxpool2d_t L3 = { 14u, 14u, 40u, 7u, 7u, 2u, 2u, 2u, 2u, 0u, 0u, "
        "L3_or_mask };"]


def test_deterministic_output(tmp_path):
    model = random_model(4)
    generate_project(model, tmp_path / "a", core="cortex-m0")
    generate_project(model, tmp_path / "b", core="cortex-m0")
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    files = [p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(files) > 10
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert not cmp.diff_files


def test_bad_inputs(tmp_path):
    model = random_model(5)
    with pytest.raises(BnnError, match="unknown core 'cortex-m99'; choose one of cortex-m0"):
        generate_project(model, tmp_path / "x", core="cortex-m99")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(BnnError, match="folder is not empty; pass --force"):
        generate_project(model, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    t = totals(model)
    with pytest.raises(BnnError, match=f"needs {t['flash_bytes']:,} B of flash .* more than the 1 KB"):
        generate_project(model, tmp_path / "y", flash_kb=1)
    with pytest.raises(BnnError, match=f"needs {t['ram_bytes']:,} B of RAM .* more than the 2 KB"):
        generate_project(model, tmp_path / "z", ram_kb=2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BnnError, match="exists and is not a folder"):
        generate_project(model, tmp_path / "file")


def test_binary_dense_weights_in_pair_form():
    """Binary dense rows of >= 8 words are emitted with their 8-word blocks in pairs
    (w0, w0 ^ w1) and the words past the blocks as they are; shorter rows and other layers as
    in the model; the model (its hash and .bnn bytes) keeps the plain words."""
    from bnn_mcu.codegen.generate import render_model_sources
    from bnn_mcu.codegen.layout import kernel_weights, pair_form
    rows = np.array([[1, 3, 0xF0, 0x0F, 5, 5, 7, 6, 0xAB, 0xCD]], np.uint32)
    assert pair_form(rows).tolist() == [[1, 2, 0xF0, 0xFF, 5, 0, 7, 1, 0xAB, 0xCD]]
    assert pair_form(rows[:, :7]).tolist() == [[1, 3, 0xF0, 0x0F, 5, 5, 7]]
    w = np.arange(1, 1 + 2 * 9, dtype=np.uint32).reshape(2, 9) * np.uint32(0x01010101)
    big = BDense("big", (1, 1, 9 * 32), weights=w.copy(),
                 out=Scores(np.ones(2, np.int32), np.zeros(2, np.int32)))
    model = IntModel((1, 1, 9 * 32), [big], 2, {"name": "pairs"})
    text = dict(render_model_sources(model))["bnn_model.c"]
    body = text[text.index("L0_weights"):]
    body = body[body.index("{") + 1:body.index("}")]
    got = [int(v.strip().rstrip("u"), 16) for v in body.split(",")]
    want = []
    for r in w.tolist():
        want += [r[0], r[0] ^ r[1], r[2], r[2] ^ r[3], r[4], r[4] ^ r[5], r[6], r[6] ^ r[7], r[8]]
    assert got == want
    assert np.array_equal(big.weights, w)  # the op itself unchanged
    small = tiny_model()
    for op in small.ops:  # 2-word rows and a uint8 layer: as they are
        assert np.array_equal(kernel_weights(op), op.weights)
