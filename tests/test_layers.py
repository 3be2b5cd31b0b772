"""BinaryNet layers: sign(0), the STE, clipping, padding values, the input quantizer."""

import numpy as np
import torch

from bnn_mcu.nn.layers import (BinaryConv2d, BinaryLinear, InputQuant, SignActivation, SignSTE,
                               sign_pm1)
from bnn_mcu.nn.presets import ModelConfig, build_model
from bnn_mcu.nn.train import squared_hinge


def test_sign_of_zero_and_negative_zero_is_plus_one():
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 2.0, -2.0])
    assert sign_pm1(x).tolist() == [1.0, 1.0, 1.0, -1.0, 1.0, -1.0]
    assert SignSTE.apply(x).tolist() == [1.0, 1.0, 1.0, -1.0, 1.0, -1.0]
    act = SignActivation().eval()
    assert act(x).tolist() == [1.0, 1.0, 1.0, -1.0, 1.0, -1.0]


def test_ste_gradient_cancelled_outside_unit_interval():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0001, 3.0], requires_grad=True)
    SignActivation().train()(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_stochastic_binarization_follows_hard_sigmoid():
    torch.manual_seed(0)
    act = SignActivation(stochastic=True).train()
    x = torch.full((200000,), 0.5)
    frac_plus = (act(x) == 1).float().mean().item()
    assert abs(frac_plus - 0.75) < 0.01  # P(+1) = (0.5 + 1) / 2
    assert set(act(torch.tensor([-5.0, 5.0])).tolist()) == {-1.0, 1.0}
    assert act(torch.tensor([-5.0])).item() == -1.0 and act(torch.tensor([5.0])).item() == 1.0
    assert act.eval()(torch.tensor([0.0])).item() == 1.0  # deterministic at inference


def test_weights_binarized_and_clipped():
    lin = BinaryLinear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, -0.3, 2.5], [-7.0, 0.2, -0.0]]))
    lin.eval()
    out = lin(torch.tensor([[1.0, 10.0, 100.0]]))
    assert out.tolist() == [[1 - 10 + 100, -1 + 10 + 100]]  # sign(0) = sign(-0.0) = +1
    lin.clip_weights()
    assert lin.weight.max().item() == 1.0 and lin.weight.min().item() == -1.0


def test_training_step_keeps_weights_in_unit_interval():
    from bnn_mcu.nn.layers import binary_layers
    model = build_model(ModelConfig("mlp", (8, 8, 1), 10, width=16))
    opt = torch.optim.Adam(model.parameters(), lr=10.0)  # absurd lr: clipping must still hold
    x = torch.randint(0, 256, (32, 8, 8), dtype=torch.uint8)
    loss = squared_hinge(model(x), torch.randint(0, 10, (32,)))
    loss.backward()
    opt.step()
    for m in binary_layers(model):
        m.clip_weights()
        assert m.weight.abs().max().item() <= 1.0


def test_padding_values():
    x = torch.ones(1, 1, 1, 1)  # a single +1 pixel; a 3x3 all-(+1) kernel sees 8 padded taps
    for pad_value, expected in ((1, 9.0), (-1, 1 - 8.0), (0, 1.0)):
        conv = BinaryConv2d(1, 1, 3, padding=1, pad_value=pad_value).eval()
        with torch.no_grad():
            conv.weight.fill_(0.5)
        assert conv(x).item() == expected, pad_value


def test_input_quantizer_integers_are_exact():
    q = InputQuant(1)
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    real = q(x)
    assert real.shape == (1, 1, 16, 16)
    ints = real * 128
    assert torch.equal(ints, (torch.arange(256) - 128).float().reshape(1, 1, 16, 16))
    # any first-layer sum of such values times +-1 is exact in float32 (multiples of 1/128)
    w = torch.where(torch.rand(256) < 0.5, 1.0, -1.0)
    assert (real.reshape(-1) * w).sum().item() * 128 == float(((torch.arange(256) - 128) * w).sum())


def test_squared_hinge_matches_definition():
    s = torch.tensor([[0.5, -2.0, 1.5]])
    # targets +-1: class 2 -> [-1, -1, +1]; max(0, 1 - t*s)^2 = [1.5^2, 0, 0]
    assert abs(squared_hinge(s, torch.tensor([2])).item() - 2.25 / 3) < 1e-7


def test_cli_preset_names_match_presets():
    from bnn_mcu.cli import PRESET_NAMES
    from bnn_mcu.nn.presets import PRESETS
    assert tuple(PRESETS) == PRESET_NAMES


def test_presets_shapes():
    for preset, shape, n_params_min in (("mlp", (28, 28, 1), 784 * 256),
                                        ("cnn", (28, 28, 1), 3136 * 128),
                                        ("binarynet-cifar", (32, 32, 3), 8192 * 1024)):
        m = build_model(ModelConfig(preset, shape, 10)).eval()
        x = torch.zeros((2,) + shape if shape[2] > 1 else (2,) + shape[:2], dtype=torch.uint8)
        assert m(x).shape == (2, 10)
        assert sum(p.numel() for p in m.parameters()) >= n_params_min
    m = build_model(ModelConfig("binarynet-mlp", (28, 28, 1), 10))
    assert [l.out_features for l in m.modules() if isinstance(l, BinaryLinear)] == [4096] * 3 + [10]
    assert np.isclose(sum(isinstance(l, torch.nn.Dropout) for l in m.modules()), 4)
