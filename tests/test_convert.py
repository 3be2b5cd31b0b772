"""Converter + emulator = PyTorch, bit for bit (ladder level 1), on random BNN architectures."""

import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnn_mcu.errors import ModelError
from bnn_mcu.models import convert_program
from bnn_mcu.nn.export import export_module
from bnn_mcu.nn.layers import BinaryConv2d, BinaryLinear, InputQuant, SignActivation
from bnn_mcu.emulator.runner import run as emulator_run
from bnn_mcu.verify import report_table, verify_against_pytorch


class Net(nn.Module):
    def __init__(self, channels, body):
        super().__init__()
        self.quant = InputQuant(channels)
        self.body = body

    def forward(self, x):
        return self.body(self.quant(x))


def _randomize_bn(bn: nn.Module, rng: np.random.Generator, k: int, ties: bool) -> None:
    """Random statistics, gamma < 0 and gamma = 0 channels, and exact ties at attainable values."""
    n = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(rng.normal(0, 1, n)).float())
        bn.bias.copy_(torch.from_numpy(rng.normal(0, 1, n)).float())
        bn.running_mean.copy_(torch.from_numpy(rng.normal(0, max(1.0, k ** 0.5), n)).float())
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.1, 2.0 * k + 1, n)).float())
        bn.weight[0] = 0.0  # constant channel
        if n > 1:
            bn.weight[1] = -abs(float(bn.weight[1])) - 0.1  # flipped channel
        if ties and n > 2:
            # BN(acc) = acc - mean exactly: output 0 (-> +1) at an attainable accumulator
            for c in range(2, min(n, 6)):
                bn.weight[c] = 1.0 if c % 2 else -1.0
                bn.bias[c] = 0.0
                bn.running_var[c] = 1.0 - bn.eps
                bn.running_mean[c] = float(rng.integers(-k, k + 1))


@st.composite
def architectures(draw):
    h = draw(st.integers(4, 11))
    w = draw(st.integers(4, 11))
    c = draw(st.sampled_from([1, 3]))
    n_conv = draw(st.integers(0, 2))
    n_dense = draw(st.integers(0, 2))
    convs = []
    for i in range(n_conv):
        convs.append(dict(out=draw(st.integers(1, 70)), k=draw(st.integers(1, 3)),
                          stride=draw(st.integers(1, 2)), pad=draw(st.integers(0, 1)),
                          pad_value=0 if i == 0 else draw(st.sampled_from([1, -1, 0])),
                          pool=draw(st.sampled_from([None, "before_bn", "after_sign"])),
                          bias=draw(st.booleans())))
    dense = [dict(out=draw(st.integers(1, 70)), bias=draw(st.booleans())) for _ in range(n_dense)]
    classes = draw(st.integers(2, 12))
    return (h, w, c), convs, dense, classes, draw(st.integers(0, 2**16))


def build(arch):
    (h, w, c), convs, dense, classes, seed = arch
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    layers, bns = [], []
    cin, hh, ww = c, h, w
    for spec in convs:
        k, s, p = spec["k"], spec["stride"], spec["pad"]
        if (hh + 2 * p - k) // s + 1 < 1 or (ww + 2 * p - k) // s + 1 < 1:
            continue
        layers.append(BinaryConv2d(cin, spec["out"], k, stride=s, padding=p,
                                   pad_value=spec["pad_value"], bias=spec["bias"]))
        hh, ww = (hh + 2 * p - k) // s + 1, (ww + 2 * p - k) // s + 1
        pool = spec["pool"] if min(hh, ww) >= 2 else None
        bn = nn.BatchNorm2d(spec["out"])
        kacc = k * k * cin * (128 if not bns else 1)
        if pool == "before_bn":
            layers.append(nn.MaxPool2d(2))
        layers += [bn, SignActivation()]
        if pool == "after_sign":
            layers.append(nn.MaxPool2d(2))
        if pool:
            hh, ww = hh // 2, ww // 2
        bns.append((bn, kacc))
        cin = spec["out"]
    layers.append(nn.Flatten())
    nin = cin * hh * ww
    for spec in dense:
        bn = nn.BatchNorm1d(spec["out"])
        layers += [BinaryLinear(nin, spec["out"], bias=spec["bias"]), bn, SignActivation()]
        bns.append((bn, nin * (128 if len(bns) == 0 else 1)))
        nin = spec["out"]
    last_bn = nn.BatchNorm1d(classes)
    layers += [BinaryLinear(nin, classes), last_bn]
    net = Net(c, nn.Sequential(*layers))
    for i, (bn, k) in enumerate(bns):
        _randomize_bn(bn, rng, k, ties=i > 0 or k < 2**12)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (BinaryConv2d, BinaryLinear)):
                m.weight.uniform_(-1, 1)
                if m.bias is not None:
                    m.bias.copy_(torch.from_numpy(rng.normal(0, 2, m.bias.shape)).float())
    _randomize_bn(last_bn, rng, nin, ties=False)
    return net.eval(), (h, w, c)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(architectures())
def test_random_bnn_bit_exact_on_every_layer(arch):
    net, shape = build(arch)
    ep = export_module(net, shape)
    model = convert_program(ep, "random")
    rng = np.random.default_rng(arch[-1])
    x = rng.integers(0, 256, (96,) + shape, dtype=np.uint8)
    x[:4] = 128  # all-zero real input: every first-layer accumulator is 0
    x[4:8] = 0
    rep = verify_against_pytorch(ep, model, x, np.zeros(len(x), dtype=np.int64))
    bad = [(l.name, l.mismatching_bits, l.first_vector, l.first_channel) for l in rep.layers
           if l.mismatching_bits]
    assert not bad, bad
    assert rep.agree == rep.vectors


def test_plain_pytorch_bnn_on_fashion_mnist(fashion):
    from plain_bnn import export_plain, train_plain
    # 300 steps: at 120, one torch thread ended at 44.5 % and two at 79.2 % (float sums differ)
    model = train_plain(fashion.train_x[:20000, ..., 0], fashion.train_y[:20000], steps=300)
    ep = export_plain(model)
    im = convert_program(ep, "plain")
    kinds = [op.kind for op in im.ops]
    assert kinds == ["conv2d_u8", "maxpool2d", "bconv2d", "maxpool2d", "bdense", "bdense"]
    assert im.ops[2].pad_value == 0 and im.ops[0].zero_point == 128
    rep = verify_against_pytorch(ep, im, fashion.test_x, fashion.test_y)
    assert rep.mismatching_bits == 0 and rep.agree == 10000
    assert sum(l.compared for l in rep.layers) == 3
    assert rep.correct_dev / 10000 > 0.6  # it learned something: the check is not vacuous


def _export(module, shape=(8, 8, 1)):
    return export_module(module, shape)


def test_relu_network_is_refused_naming_the_node():
    body = nn.Sequential(nn.Flatten(), BinaryLinear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         BinaryLinear(16, 4), nn.BatchNorm1d(4))
    with pytest.raises(ModelError, match=r"node 'relu' \(relu.default\): outputs 0 for accumulator"):
        convert_program(_export(Net(1, body)), "relu")


def test_float_weights_are_refused():
    body = nn.Sequential(nn.Flatten(), nn.Linear(64, 4, bias=False), nn.BatchNorm1d(4))
    with pytest.raises(ModelError, match=r"node 'linear' \(linear.default\): weights are not binary"):
        convert_program(_export(Net(1, body)), "float")


def test_torch_sign_zero_weight_is_refused():
    class SignLinear(nn.Linear):
        def forward(self, x):
            return nn.functional.linear(x, torch.sign(self.weight))
    lin = SignLinear(64, 4, bias=False)
    with torch.no_grad():
        lin.weight[0, 0] = 0.0
    body = nn.Sequential(nn.Flatten(), lin, nn.BatchNorm1d(4))
    with pytest.raises(ModelError, match="torch.sign gives 0 for a zero weight"):
        convert_program(_export(Net(1, body)), "sign")


def test_input_dtype_and_whole_image_ops_are_refused():
    """float pixels 0..255 are read like uint8 ones; other dtypes and ops over the whole image
    (a sum: not per pixel) are refused, naming the op."""
    class SumIn(nn.Module):
        def forward(self, x):
            return x.sum(dim=(1, 2)).unsqueeze(1)
    ep = torch.export.export(SumIn(), (torch.zeros(2, 8, 8, dtype=torch.int16),))
    with pytest.raises(ModelError, match="input is torch.int16; bnn-mcu models take 8-bit"):
        convert_program(ep, "int16-input")
    ep = torch.export.export(SumIn(), (torch.zeros(2, 8, 8),))
    with pytest.raises(ModelError, match=r"node 'sum\w*' \(sum.dim_IntList\): cannot be applied "
                                         "to the input image exactly"):
        convert_program(ep, "float-input")


def test_inexact_input_scaling_uses_exact_integers():
    """x / 255 is not exact in float32: thresholds come from float64 and verify says so."""
    class Div255(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = BinaryLinear(64, 24)
            self.bn = nn.BatchNorm1d(24)
            self.out = BinaryLinear(24, 3)
            self.bn2 = nn.BatchNorm1d(3)

        def forward(self, x):
            x = x.float().reshape(x.shape[0], -1) / 255.0
            return self.bn2(self.out(SignActivation()(self.bn(self.fc(x)))))
    net = Div255().eval()
    rng = np.random.default_rng(3)
    _randomize_bn(net.bn, rng, 64 * 255, ties=False)
    ep = _export(net)
    model = convert_program(ep, "div255")
    assert model.meta["exact_float32"] is False and model.ops[0].zero_point == 0
    x = rng.integers(0, 256, (500, 8, 8, 1), dtype=np.uint8)
    rep = verify_against_pytorch(ep, model, x, np.zeros(500, dtype=np.int64))
    assert rep.reference == "PyTorch (float64)"
    assert rep.mismatching_bits == 0
    assert any(re.match(r"float32 PyTorch differs from the exact integer result on \d+ hidden "
                        r"bit\(s\)", n) for n in rep.notes)


@pytest.mark.parametrize("style", ["hardtanh_sign", "lt_where", "gt_where"])
def test_other_activation_styles(style):
    """Activations written other ways convert exactly: hardtanh then torch.sign (no exact zero
    reached), where(x < 0, -1, 1), and a sign with sign(0) = -1 (x > 0)."""
    class Act(nn.Module):
        def forward(self, x):
            if style == "hardtanh_sign":
                return torch.sign(nn.functional.hardtanh(x))
            if style == "lt_where":
                return torch.where(x < 0, -1.0, 1.0)
            return torch.where(x > 0, 1.0, -1.0)
    body = nn.Sequential(nn.Flatten(), BinaryLinear(64, 37, bias=True), nn.BatchNorm1d(37), Act(),
                         BinaryLinear(37, 5), nn.BatchNorm1d(5))
    net = Net(1, body).eval()
    rng = np.random.default_rng(5)
    _randomize_bn(body[2], rng, 64 * 128, ties=False)
    with torch.no_grad():
        body[1].bias.copy_(torch.from_numpy(rng.normal(0, 3, 37)).float() + 0.5)
    if style == "gt_where":  # make ties: BN(acc) exactly 0 at attainable accumulators
        _randomize_bn(body[2], rng, 64, ties=True)
        with torch.no_grad():
            body[1].bias.zero_()
    ep = _export(net)
    model = convert_program(ep, style)
    x = rng.integers(0, 256, (300, 8, 8, 1), dtype=np.uint8)
    x[:50] = 128
    rep = verify_against_pytorch(ep, model, x, np.zeros(300, dtype=np.int64))
    assert rep.mismatching_bits == 0 and rep.agree == 300


def test_torch_sign_reaching_zero_is_refused():
    """torch.sign(0) = 0 is not a binary value: refused when an attainable accumulator hits it."""
    class SignAct(nn.Module):
        def forward(self, x):
            return torch.sign(x)
    bn = nn.BatchNorm1d(8)
    body = nn.Sequential(nn.Flatten(), BinaryLinear(64, 8), bn, SignAct(), BinaryLinear(8, 3),
                         nn.BatchNorm1d(3))
    _randomize_bn(bn, np.random.default_rng(0), 64, ties=True)
    with pytest.raises(ModelError, match=r"node 'sign' \(sign.default\): torch.sign gives 0 for accumulator \d+ in channel"):
        convert_program(_export(Net(1, body).eval()), "sign0")


class _Normalize(nn.Module):
    """torchvision's ToTensor + Normalize((0.5,), (0.5,)) with the statistics as float32
    buffers: (x / 255 - mean) / std."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5]).reshape(1, 1, 1))
        self.register_buffer("std", torch.tensor([0.5]).reshape(1, 1, 1))

    def forward(self, x):
        return (x / 255.0 - self.mean) / self.std


# Input scalings whose zero padding pads with pixel value 127.5 (exact: the last one only)
HALF_SCALINGS = {
    "x/127.5-1": lambda x: x / 127.5 - 1.0,
    "(x-127.5)/127.5": lambda x: (x - 127.5) / 127.5,
    "normalize(0.5,0.5)": _Normalize(),
    "x/255*2-1": lambda x: x / 255.0 * 2.0 - 1.0,
    "(x-127.5)/128": lambda x: (x - 127.5) / 128.0,
}


class _PaddedFirstConv(nn.Module):
    """scaling -> zero-padded binary conv 3x3 (stride `stride`) -> BN -> sign -> binary linear
    -> BN: the first conv's padded taps are real zeros, i.e. pixel value -b/a."""

    def __init__(self, scale, stride=1, n=24, classes=5, hw=8):
        super().__init__()
        self.scale = scale
        self.conv = BinaryConv2d(1, n, 3, stride=stride, padding=1, pad_value=0)
        self.bn = nn.BatchNorm2d(n)
        self.act = SignActivation()
        out = (hw - 1) // stride + 1
        self.fc = BinaryLinear(n * out * out, classes)
        self.bn2 = nn.BatchNorm1d(classes)

    def forward(self, x):
        x = self.scale(x.float().unsqueeze(1))
        x = self.act(self.bn(self.conv(x)))
        return self.bn2(self.fc(x.flatten(1)))


def _half_bn(bn: nn.BatchNorm2d, rng, unit: float) -> None:
    """Statistics inside the preactivations' range (|pre| <= 9 for 3x3 taps of +-1), a gamma = 0
    and a gamma < 0 channel, and channels whose BN output is exactly 0 at a preactivation that
    is a multiple of `unit` (ties, where the threshold's side decides)."""
    n = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(rng.normal(0, 1, n)).float())
        bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.5, n)).float())
        bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 1.5, n)).float())
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 4.0, n)).float())
        bn.weight[0] = 0.0
        bn.weight[1] = -0.7
        for c in range(2, 8):
            bn.weight[c] = 1.0 if c % 2 else -1.0
            bn.bias[c] = 0.0
            bn.running_var[c] = 1.0 - bn.eps
            bn.running_mean[c] = float(rng.integers(-300, 301)) * unit


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("scaling", list(HALF_SCALINGS))
def test_padded_first_conv_with_a_half_integer_zero_point(scaling, stride):
    """Zero padding of an input scaled as x/127.5 - 1 (and the same written four other ways)
    pads with pixel value 127.5: the first conv gets the half zero point (127 + 0.5, the
    accumulator doubled) and converts with 0 mismatching bits against PyTorch, at border and
    interior pixels, on random images and flat ones at the zero point's neighbours."""
    torch.manual_seed(stride)
    rng = np.random.default_rng(list(HALF_SCALINGS).index(scaling) + 10 * stride)
    net = _PaddedFirstConv(HALF_SCALINGS[scaling], stride=stride).eval()
    _half_bn(net.bn, rng, 1 / 256 if scaling == "(x-127.5)/128" else 1 / 127.5)
    _randomize_bn(net.bn2, rng, 24 * 16, ties=False)
    ep = _export(net)
    model = convert_program(ep, scaling)
    op = model.ops[0]
    assert (op.kind, op.zero_point, op.half_zero_point, op.padding) == ("conv2d_u8", 127, True, (1, 1, 1, 1))
    assert model.meta["exact_float32"] is (scaling == "(x-127.5)/128")
    x = rng.integers(0, 256, (400, 8, 8, 1), dtype=np.uint8)
    for i, v in enumerate((127, 128, 0, 255)):
        x[i] = v
    rep = verify_against_pytorch(ep, model, x, np.zeros(len(x), dtype=np.int64))
    assert rep.reference == ("PyTorch" if model.meta["exact_float32"] else "PyTorch (float64)")
    assert rep.layers[0].compared > 0 and rep.mismatching_bits == 0, report_table(rep)
    assert rep.agree == rep.vectors
    bits = emulator_run(model, x, trace=True).layers[0]
    assert len(np.unique(bits.reshape(len(x), -1), axis=0)) > 100  # the layer is not constant


def test_padded_first_conv_with_another_zero_point_is_refused():
    """A zero point neither integral nor half-integral (100.3) cannot pad exactly in integers."""
    net = _PaddedFirstConv(lambda x: (x - 100.3) / 100.0).eval()
    with pytest.raises(ModelError) as e:
        convert_program(_export(net), "zp100.3")
    assert str(e.value).endswith(
        ": zero padding of an input scaled as 0.01*x-1.003 pads with pixel value 100.3, neither an "
        "integer nor an integer + 0.5; scale the input as (x - zp) * s with zp an integer or an "
        "integer + 0.5 in 0..255 (e.g. (x - 128) / 128 or x / 127.5 - 1)"), str(e.value)
