"""Max-pool with padding and ceil_mode on packed bits, end to end: the geometry and the emulator
against PyTorch's F.max_pool2d on random +-1 data, the importer on both pool positions (after
the sign, and on the accumulators before BN + sign, with flipped channels), and the generated
C on the host against the emulator, layer by layer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bnn_mcu import emulator
from bnn_mcu.emulator import kernels as emu
from bnn_mcu.ir.bits import pack_bits, unpack_bits
from bnn_mcu.ir.geometry import conv_out, pool_padding
from bnn_mcu.ir.ops import MaxPool2d
from bnn_mcu.ir.synthetic import random_model
from bnn_mcu.models import convert_program
from bnn_mcu.verify import verify_against_pytorch
from conftest import have


def _pool_op(hwc, k, s, p, ceil, mask):
    (pt, pb), (pl, pr) = (pool_padding(size, kk, ss, pp, ceil)
                          for size, kk, ss, pp in zip(hwc[:2], k, s, p))
    return MaxPool2d("pool", hwc, kernel=k, stride=s, or_mask=pack_bits(mask),
                     padding=(pt, pl, pb, pr))


def _torch_pool(pm1_nhwc: np.ndarray, mask: np.ndarray, k, s, p, ceil) -> np.ndarray:
    """PyTorch's pool of the +-1 values: max where the mask bit is 0, min (OR of the bits)
    where it is 1; as bits (1 = -1), NHWC."""
    t = torch.from_numpy(pm1_nhwc).permute(0, 3, 1, 2).float()
    hi = F.max_pool2d(t, k, s, p, ceil_mode=ceil)
    lo = -F.max_pool2d(-t, k, s, p, ceil_mode=ceil)
    out = torch.where(torch.from_numpy(mask.astype(bool)).view(1, -1, 1, 1), lo, hi)
    return (out.permute(0, 2, 3, 1).numpy() < 0).astype(np.uint8)


GEOMETRIES = [((h, w), (kh, kw), (sh, sw), (ph, pw), ceil)
              for h, w in ((1, 1), (2, 3), (5, 5), (6, 7), (12, 12), (13, 9))
              for kh, kw in ((1, 1), (2, 2), (3, 3), (3, 2), (4, 4))
              for sh, sw in ((1, 1), (2, 2), (3, 2))
              for ph, pw in itertools.product(range(kh // 2 + 1), range(kw // 2 + 1))
              for ceil in (False, True)
              if h + 2 * ph >= kh and w + 2 * pw >= kw]


def test_the_geometries_cover_ceil_mode_and_padding():
    """Not vacuous: ceil_mode adds a row or column in many of them, padding in most."""
    extra = [g for g in GEOMETRIES if g[4] and any(
        pool_padding(n, k, s, p, True)[1] > p for n, k, s, p in zip(*g[:4]))]
    padded = [g for g in GEOMETRIES if any(g[3])]
    assert len(GEOMETRIES) > 500 and len(extra) > 100 and len(padded) > 250


@pytest.mark.parametrize("c", [1, 37])
def test_emulator_equals_torch_max_pool2d_on_pm1_data(c):
    rng = np.random.default_rng(c)
    for (h, w), k, s, p, ceil in GEOMETRIES:
        bits = rng.integers(0, 2, (3, h, w, c), dtype=np.uint8)
        bits[0] = 1  # all -1: a padded tap read as +1 would show in the AND
        bits[1] = 0  # all +1: a padded tap read as -1 would show in the OR
        mask = rng.integers(0, 2, c, dtype=np.uint8)
        op = _pool_op((h, w, c), k, s, p, ceil, mask)
        want = _torch_pool(1 - 2 * bits.astype(np.int8), mask, k, s, p, ceil)
        assert op.out_shape == want.shape[1:], ((h, w), k, s, p, ceil)
        got = unpack_bits(emu.maxpool2d_b1(pack_bits(bits), op), c)
        assert np.array_equal(got, want), ((h, w), k, s, p, ceil)


def test_pool_padding_is_pytorchs_ceil_rule():
    """The last window starts inside the input or the padding before it, never after."""
    assert pool_padding(12, 3, 2, 1, True) == (1, 2)  # 7 windows, the last one at rows 11..13
    assert pool_padding(12, 3, 2, 1, False) == (1, 1)  # 6 windows
    assert pool_padding(5, 2, 2, 0, True) == (0, 1)  # 3 windows: 0-1, 2-3, 4
    assert pool_padding(4, 2, 2, 0, True) == (0, 0)  # exact: nothing added
    # rounded up to 3 windows, but the third would start at row 4 = in the padding after: 2
    assert pool_padding(3, 2, 2, 1, True) == (1, 1) and conv_out(3, 2, 2, 1, 1) == 2


# -- the importer, both pool positions ---------------------------------------------------------

def _sign(x):
    return torch.where(x >= 0, 1.0, -1.0)


class CeilPools(nn.Module):
    """conv -> BN -> sign -> max_pool2d(3, 2, padding 1, ceil_mode) (on the +-1 values), conv ->
    max_pool2d(2, 2, ceil_mode) (on the accumulators, before BN, some gammas < 0) -> BN -> sign,
    dense -> BN. uint8 N x 12 x 12."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(1, 20, 3, padding=1, bias=False), nn.BatchNorm2d(20)
        self.c2, self.bn2 = nn.Conv2d(20, 40, 3, bias=False), nn.BatchNorm2d(40)
        self.fc, self.bn3 = nn.Linear(40 * 3 * 3, 10, bias=False), nn.BatchNorm1d(10)

    def forward(self, x):
        x = ((x.float() - 128) / 128).unsqueeze(1)
        x = _sign(self.bn1(F.conv2d(x, _sign(self.c1.weight), None, 1, 1)))
        x = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)  # 12 -> 7
        x = F.max_pool2d(F.conv2d(x, _sign(self.c2.weight)), 2, 2, ceil_mode=True)  # 5 -> 3
        x = _sign(self.bn2(x))
        return self.bn3(F.linear(x.flatten(1), _sign(self.fc.weight)))


def test_importer_reads_padded_ceil_pools_in_both_positions():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2000, 12, 12), dtype=np.uint8)
    net = CeilPools()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(x[:1000]))
        net.bn2.weight[::3] = -net.bn2.weight[::3].abs() - 0.1  # flipped channels: OR
    net.eval()
    ep = torch.export.export(net, (torch.from_numpy(x[:4]),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    model = convert_program(ep, "ceil_pools")
    pools = [op for op in model.ops if isinstance(op, MaxPool2d)]
    assert [(op.in_shape, op.padding, op.out_shape) for op in pools] == [
        ((12, 12, 20), (1, 1, 2, 2), (7, 7, 20)), ((5, 5, 40), (0, 0, 1, 1), (3, 3, 40))]
    assert not unpack_bits(pools[0].or_mask, 20).any()  # after the sign: AND
    assert unpack_bits(pools[1].or_mask, 40)[::3].all()  # before BN, gamma < 0: OR
    rep = verify_against_pytorch(ep, model, x[1000:], rng.integers(0, 10, 1000))
    assert [lp.mismatching_bits for lp in rep.layers if lp.compared] == [0, 0, 0]
    assert rep.agree == rep.vectors == 1000


# -- generated C on the host ------------------------------------------------------------------

@pytest.mark.skipif(not have("gcc"), reason="needs gcc")
def test_generated_c_on_the_host_equals_the_emulator():
    """Padded windows on every side, ceil-style bottom/right padding, 2x2 and 3x3 windows,
    channel counts with word tails: every layer's bytes and every score."""
    from bnn_mcu.targets.dispatch import device_targets
    from bnn_mcu.targets.session import run_on_device

    model = random_model(11, input_shape=(13, 11, 3), layers=[
        ("conv", dict(out=20, k=3, pad=1)), ("pool", dict(k=3, stride=2, pad=(1, 1, 2, 1))),
        ("conv", dict(out=33, k=3, pad=1, pad_value=0)), ("pool", dict(k=2, pad=(0, 0, 1, 1))),
        ("conv", dict(out=64, k=1)), ("pool", dict(k=3, stride=1, pad=1)),
        ("dense", dict(out=10))])
    assert [op.out_shape for op in model.ops if isinstance(op, MaxPool2d)] == [
        (7, 6, 20), (4, 3, 33), (4, 3, 64)]
    x = np.random.default_rng(3).integers(0, 256, (64, 13, 11, 3), dtype=np.uint8)
    ref = emulator.run(model, x, trace=True)
    (target,) = device_targets("host", 115200)
    res = run_on_device(model, target, x, stream=32, trace=4, progress=False)
    assert np.array_equal(res.scores, ref.scores)
    assert np.array_equal(res.classes, ref.predictions)
    for i, layers in enumerate(res.traces):
        for j, want in enumerate(ref.layers):
            assert layers[j] == np.ascontiguousarray(want[i]).astype(
                want.dtype.newbyteorder("<")).tobytes(), f"layer {j} on vector {i}"
