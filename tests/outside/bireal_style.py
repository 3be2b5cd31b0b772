"""Bi-Real-Net and ReActNet idioms (the pieces ReActNet reuses from Bi-Real-Net).

- liuzechun/Bi-Real-net (pytorch_implementation/BiReal18_34/birealnet.py): `BinaryActivation`
  = torch.sign forward with a piecewise-quadratic surrogate: `out_forward.detach() -
  out3.detach() + out3` (values of one accumulator combined; sign(0) = 0); `HardBinaryConv`
  keeps its weights flat (`nn.Parameter(torch.rand((n, 1)) * 0.001)`, viewed to the conv shape)
  and uses `scaling_factor * torch.sign(W)` with scaling_factor = mean|W| over dims 3, 2, 1
  (nested means, keepdim), plus the clipped-weight STE; blocks are act -> conv -> BN (+ the
  real-valued residual, see refusals.py); stride-2 convs downsample.
- liuzechun/ReActNet (mobilenet/2_step2/reactnet.py): `LearnableBias` = `x + self.bias.expand_as(x)`
  before the sign (RSign), RPReLU = LearnableBias -> nn.PReLU -> LearnableBias after BN.
The originals keep the first conv and the classifier real-valued; here they are binary
(HardBinaryConv on the real input, a binary Linear with bias and no BN at the end).
Written for this corpus, not copied.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Outside
from .tutorial_style import where_ste


class BinaryActivation(nn.Module):
    def forward(self, x):
        out_forward = torch.sign(x)
        mask1 = x < -1
        mask2 = x < 0
        mask3 = x < 1
        out1 = (-1) * mask1.type(torch.float32) + (x * x + 2 * x) * (1 - mask1.type(torch.float32))
        out2 = out1 * mask2.type(torch.float32) + (-x * x + 2 * x) * (1 - mask2.type(torch.float32))
        out3 = out2 * mask3.type(torch.float32) + 1 * (1 - mask3.type(torch.float32))
        return out_forward.detach() - out3.detach() + out3


class HardBinaryConv(nn.Module):
    def __init__(self, in_chn, out_chn, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.number_of_weights = in_chn * out_chn * kernel_size * kernel_size
        self.shape = (out_chn, in_chn, kernel_size, kernel_size)
        # the original: torch.rand(...) * 0.001 (all positive until trained for epochs)
        self.weights = nn.Parameter(torch.randn((self.number_of_weights, 1)) * 0.001)

    def forward(self, x):
        real_weights = self.weights.view(self.shape)
        scaling_factor = torch.mean(torch.mean(torch.mean(abs(real_weights), dim=3, keepdim=True),
                                               dim=2, keepdim=True), dim=1, keepdim=True)
        scaling_factor = scaling_factor.detach()
        binary_weights_no_grad = scaling_factor * torch.sign(real_weights)
        cliped_weights = torch.clamp(real_weights, -1.0, 1.0)
        binary_weights = binary_weights_no_grad.detach() - cliped_weights.detach() + cliped_weights
        return F.conv2d(x, binary_weights, stride=self.stride, padding=self.padding)


class BinaryLinear(nn.Linear):
    def forward(self, x):
        return F.linear(x, torch.sign(self.weight), self.bias)


class BiRealPlain(nn.Module):
    """Bi-Real building blocks in a plain stack (no shortcut): conv(stride 2) -> BN, then
    [act -> conv -> BN] with stride 2, then 1x1, flatten `x.view(x.size(0), -1)` between the
    last BN and the sign, binary Linear with bias. Input uint8 N x 28 x 28,
    ToTensor + Normalize((0.5,), (0.5,)) written as (x / 255 - 0.5) / 0.5."""

    def __init__(self):
        super().__init__()
        self.conv1 = HardBinaryConv(1, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.act2 = BinaryActivation()
        self.conv2 = HardBinaryConv(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.act3 = BinaryActivation()
        self.conv3 = HardBinaryConv(16, 16, 1, stride=1, padding=0)
        self.bn3 = nn.BatchNorm2d(16)
        self.act4 = BinaryActivation()
        self.fc = BinaryLinear(16 * 7 * 7, 10)

    def forward(self, x):
        x = (x.float() / 255 - 0.5) / 0.5
        x = self.bn1(self.conv1(x.unsqueeze(1)))
        x = self.bn2(self.conv2(self.act2(x)))
        x = self.bn3(self.conv3(self.act3(x)))
        x = x.view(x.size(0), -1)
        return self.fc(self.act4(x))


class LearnableBias(nn.Module):
    def __init__(self, out_chn):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, out_chn, 1, 1), requires_grad=True)

    def forward(self, x):
        return x + self.bias.expand_as(x)


class ReActBlock(nn.Module):
    """reactnet.py BasicBlock's binary path without the shortcut: move -> sign -> conv -> BN ->
    move -> PReLU -> move."""

    def __init__(self, inplanes, planes, kernel_size, stride):
        super().__init__()
        self.move11 = LearnableBias(inplanes)
        self.binary_activation = BinaryActivation()
        self.binary_conv = HardBinaryConv(inplanes, planes, kernel_size, stride, kernel_size // 2)
        self.bn1 = nn.BatchNorm2d(planes)
        self.move12 = LearnableBias(planes)
        self.prelu1 = nn.PReLU(planes)
        self.move13 = LearnableBias(planes)

    def forward(self, x):
        out = self.move11(x)
        out = self.binary_activation(out)
        out = self.binary_conv(out)
        out = self.bn1(out)
        out = self.move12(out)
        out = self.prelu1(out)
        return self.move13(out)


class ReActPlain(nn.Module):
    """Stem conv(stride 2) -> BN, two ReAct blocks (3x3 stride 2, then 1x1), RSign, flatten,
    binary Linear with bias. Input uint8 N x 28 x 28 scaled (x - 128) / 128."""

    def __init__(self):
        super().__init__()
        self.firstconv = HardBinaryConv(1, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.block1 = ReActBlock(8, 16, 3, 2)
        self.block2 = ReActBlock(16, 16, 1, 1)
        self.move = LearnableBias(16)
        self.act = BinaryActivation()
        self.fc = BinaryLinear(16 * 7 * 7, 10)

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = self.bn(self.firstconv(x.unsqueeze(1)))
        x = self.block2(self.block1(x))
        x = self.act(self.move(x))
        return self.fc(torch.flatten(x, 1))


def _reactnet_finish(model):
    """Trained-looking learnable biases and PReLU slopes (positive: the chain stays monotone)."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, LearnableBias):
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
        if isinstance(m, nn.PReLU):
            m.weight.copy_(0.05 + torch.rand(m.weight.shape, generator=g) * 0.4)


class BiRealActCNN(nn.Module):
    """Bi-Real's BinaryActivation (quadratic STE on torch.sign) on its own, with plain
    where(w >= 0) weights: conv 3x3 stride 2 (padding 1) -> BN -> x.view(x.size(0), -1) between
    the BN and the sign -> binary Linear -> BN. uint8 N x 28 x 28, (x - 128) / 128."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.act = BinaryActivation()
        self.fc1 = nn.Linear(8 * 14 * 14, 64, bias=False)
        self.bn2 = nn.BatchNorm1d(64)
        self.fc2 = nn.Linear(64, 10, bias=False)
        self.bn3 = nn.BatchNorm1d(10)

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = self.bn1(F.conv2d(x.unsqueeze(1), where_ste(self.conv.weight), None, 2, 1))
        x = self.act(x.view(x.size(0), -1))
        x = self.act(self.bn2(F.linear(x, where_ste(self.fc1.weight))))
        return self.bn3(F.linear(x, where_ste(self.fc2.weight)))


MODELS = [
    Outside(
        name="bireal_plain",
        source="liuzechun/Bi-Real-net pytorch_implementation/BiReal18_34/birealnet.py "
               "(BinaryActivation, HardBinaryConv)",
        idioms=("torch.sign with the quadratic STE: sign.detach() - out3.detach() + out3",
                "weights scaling_factor * torch.sign(W), nested means, clipped-weight STE",
                "weights kept flat and viewed", "stride-2 binary conv instead of pooling", "1x1 conv",
                "view(x.size(0), -1) between BN and sign", "(x/255 - 0.5)/0.5",
                "last layer binary Linear with bias, no BN", "static batch export (x[:4])"),
        build=BiRealPlain, input="u8_nhw", export="static:4", lr=1e-3, hidden=3, exact_float32=False,
        min_accuracy=0.25),
    Outside(
        name="reactnet_plain",
        source="liuzechun/ReActNet mobilenet/2_step2/reactnet.py (LearnableBias, RPReLU, "
               "BinaryActivation, HardBinaryConv)",
        idioms=("x + bias.expand_as(x) before the sign (RSign)", "BN -> bias -> PReLU -> bias chain",
                "Bi-Real sign and weights", "stride-2 conv", "1x1 conv", "(x - 128)/128",
                "torch.flatten", "dynamic batch export"),
        build=ReActPlain, input="u8_nhw", export="dynamic", lr=1e-3, hidden=3, exact_float32=False,
        finish=_reactnet_finish, min_accuracy=0.2),
    Outside(
        name="bireal_act_cnn",
        source="liuzechun/Bi-Real-net birealnet.py BinaryActivation (alone, with where(w >= 0) "
               "weights through the detach STE)",
        idioms=("torch.sign with the quadratic STE surrogate", "view(x.size(0), -1) between BN and sign",
                "stride-2 conv", "(x - 128)/128 with zero padding (pixel 128)",
                "static batch export (x[:4])"),
        build=BiRealActCNN, input="u8_nhw", export="static:4", hidden=2, exact_float32=True,
        min_accuracy=0.5),
]
