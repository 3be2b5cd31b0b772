"""Models that are not exact BNNs (or not BNNs at all), in the styles they come from.

Each must be refused in one line that names the node stopping the reading and its op; never
a traceback, never a silent float fallback. Written for this corpus, not copied.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Refusal
from .tutorial_style import dingke_mlp
from .xnor_style import BinActive


def _sign(x):
    return torch.where(x >= 0, 1.0, -1.0)


class RealHiddenLayer(nn.Module):
    """A binary first layer, then BN -> ReLU feeding the next layer: real values in a hidden layer
    (the common half-binarized 'BNN')."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 32), nn.BatchNorm1d(32)
        self.fc2, self.bn2 = nn.Linear(32, 10), nn.BatchNorm1d(10)

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = F.relu(self.bn1(F.linear(x.flatten(1), _sign(self.fc1.weight), self.fc1.bias)))
        return self.bn2(F.linear(x, _sign(self.fc2.weight), self.fc2.bias))


class RealWeightsHidden(nn.Module):
    """Binary activations everywhere, but the middle nn.Linear keeps real weights (a layer left
    out of the binarization, as in XNOR-Net's and Bi-Real's real first/last layers)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 32), nn.BatchNorm1d(32)
        self.fc2, self.bn2 = nn.Linear(32, 32), nn.BatchNorm1d(32)
        self.fc3, self.bn3 = nn.Linear(32, 10), nn.BatchNorm1d(10)

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = _sign(self.bn1(F.linear(x.flatten(1), _sign(self.fc1.weight), self.fc1.bias)))
        x = _sign(self.bn2(self.fc2(x)))
        return self.bn3(F.linear(x, _sign(self.fc3.weight), self.fc3.bias))


class AvgPoolIntoSign(nn.Module):
    """conv -> BN -> sign -> avg_pool2d -> sign: an average of +-1 values re-binarized."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = _sign(self.bn1(F.conv2d(x.unsqueeze(1), _sign(self.c1.weight), None, 1, 1)))
        x = _sign(F.avg_pool2d(x, 2))
        x = _sign(self.bn2(F.conv2d(x, _sign(self.c2.weight), None, 1, 1)))
        x = F.max_pool2d(x, 2).flatten(1)
        return F.linear(x, _sign(self.fc.weight), self.fc.bias)


class BiRealResidual(nn.Module):
    """Bi-Real's BasicBlock: out = bn(conv(sign(x))); out += residual (real values). Signs and
    weights are plain where(x >= 0) here so that the residual is the only thing refused."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = self.bn1(F.conv2d(x.unsqueeze(1), _sign(self.conv1.weight), None, 2, 1))
        residual = x
        out = self.bn2(F.conv2d(_sign(x), _sign(self.conv2.weight), None, 1, 1))
        out += residual
        out = _sign(out).flatten(1)
        return F.linear(out, _sign(self.fc.weight), self.fc.bias)


class PerChannelNormalize(nn.Module):
    """RGB input with torchvision Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    inside forward(): per-channel scaling of the pixels before a binary conv."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.c1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc, self.bn2 = nn.Linear(8 * 8 * 8, 10), nn.BatchNorm1d(10)

    def forward(self, x):  # uint8 N x 8 x 8 x 3
        x = x.permute(0, 3, 1, 2).float() / 255
        x = (x - self.mean) / self.std
        x = _sign(self.bn1(F.conv2d(x, _sign(self.c1.weight), None, 1, 1)))
        return self.bn2(F.linear(x.flatten(1), _sign(self.fc.weight)))


class XnorRealEnds(nn.Module):
    """XNOR-Net-PyTorch's LeNet-5 as written: full-precision first conv (real weights, ReLU)
    and a full-precision last nn.Linear on ReLU outputs; only the middle is binary."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5)
        self.bn_conv1 = nn.BatchNorm2d(8, eps=1e-4, affine=False)
        self.bn2 = nn.BatchNorm2d(8, eps=1e-4)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=5)
        self.ip2 = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = (x.float() / 255 - 0.1307) / 0.3081
        x = F.max_pool2d(F.relu(self.bn_conv1(self.conv1(x.unsqueeze(1)))), 2)
        x, _ = BinActive.apply(self.bn2(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.ip2(x.flatten(1))


class TorchSignZero(nn.Module):
    """torch.sign after a BN whose output is exactly 0 at an attainable accumulator (channel 3:
    mean 0, beta 0; the hidden accumulator of 32 +-1 products takes the value 0): torch.sign
    gives 0 there, which is not a bit."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 32, bias=False), nn.BatchNorm1d(32)
        self.fc2, self.bn2 = nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32)
        self.fc3, self.bn3 = nn.Linear(32, 10, bias=False), nn.BatchNorm1d(10)
        with torch.no_grad():
            self.bn1.running_mean.fill_(0.3 / 128)  # first-layer sums are k/128: never 0 after BN
            self.bn2.running_mean.fill_(1.0)  # sums of 32 +-1 are even: never 0 after BN ...
            self.bn2.running_mean[3] = 0.0  # ... except in channel 3
            self.bn2.bias[3] = 0.0

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = torch.sign(self.bn1(F.linear(x.flatten(1), torch.sign(self.fc1.weight))))
        x = torch.sign(self.bn2(F.linear(x, torch.sign(self.fc2.weight))))
        return self.bn3(F.linear(x, torch.sign(self.fc3.weight)))


class TorchSignZeroWeight(nn.Module):
    """BinaryNet.pytorch's Binarize (tensor.sign()) on a weight that is exactly 0 (a pruned or
    never-updated weight): the layer's weight is 0 there, not +-1."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 32, bias=False), nn.BatchNorm1d(32)
        self.fc2, self.bn2 = nn.Linear(32, 10, bias=False), nn.BatchNorm1d(10)
        with torch.no_grad():
            self.fc2.weight[4, 7] = 0.0

    def forward(self, x):
        x = (x.float() - 128) / 128
        x = self.bn1(F.linear(x.flatten(1), torch.where(self.fc1.weight >= 0, 1.0, -1.0)))
        return self.bn2(F.linear(_sign(x), self.fc2.weight.sign()))


class DilatedMaxPool(nn.Module):
    """conv -> BN -> sign -> nn.MaxPool2d(2, stride 2, dilation 2): a spread-out window (the
    pooling twin of an atrous convolution), on +-1 values."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, dilation=2)
        self.fc = nn.Linear(8 * 13 * 13, 10)

    def forward(self, x):
        x = ((x.float() - 128) / 128).unsqueeze(1)
        x = _sign(self.bn1(F.conv2d(x, _sign(self.c1.weight), None, 1, 1)))
        x = self.pool(x)  # 28 -> 13
        return F.linear(x.flatten(1), _sign(self.fc.weight), self.fc.bias)


REFUSALS = [
    Refusal("real_hidden_relu", "half-binarized tutorial nets: binary weights, nn.ReLU instead "
            "of a sign (e.g. DingKe/pytorch_workplace modules with ReLU for BinaryTanh)",
            "a real-valued hidden activation feeds a binary layer", RealHiddenLayer, ops=("relu",)),
    Refusal("real_weights_hidden", "a layer left out of the binarization (XNOR-Net and Bi-Real "
            "keep layers real)", "a hidden layer with real-valued weights", RealWeightsHidden,
            ops=("linear",), nth=1),
    Refusal("avgpool_into_sign", "Bi-Real-net / ReActNet downsampling (AvgPool2d) applied to "
            "+-1 activations", "avg-pool of +-1 values into a sign", AvgPoolIntoSign,
            ops=("avg_pool2d",)),
    Refusal("bireal_residual", "liuzechun/Bi-Real-net birealnet.py BasicBlock (out += residual)",
            "a residual add of real values", BiRealResidual, ops=("add",)),
    Refusal("per_channel_normalize", "torchvision transforms.Normalize(mean=(0.485, 0.456, 0.406), "
            "std=(0.229, 0.224, 0.225)) moved into forward()",
            "per-channel input normalization", PerChannelNormalize, ops=("sub", "div"),
            input="u8_nhwc", shape=(8, 8), channels=3),
    Refusal("xnor_real_first_last", "jiecaoyu/XNOR-Net-PyTorch MNIST/models/LeNet_5.py as written "
            "(conv1 and ip2 full precision)", "real-valued first and last layers",
            XnorRealEnds, ops=("conv2d", "relu", "linear")),
    Refusal("torch_sign_zero", "torch.sign on activations (BinaryNet.pytorch Binarize) where BN "
            "gives exactly 0", "torch.sign(0) = 0 on an attainable accumulator", TorchSignZero,
            ops=("sign",), extra=("channel 3",)),
    Refusal("torch_sign_zero_weight", "itayhubara/BinaryNet.pytorch Binarize (tensor.sign()) on "
            "a weight that is exactly 0", "torch.sign(0) = 0 in a weight", TorchSignZeroWeight,
            ops=("linear",), nth=1),
    Refusal("dilated_maxpool", "nn.MaxPool2d's dilation argument (a spread-out window, as "
            "dilated/atrous networks use) on +-1 activations", "max-pool with dilation",
            DilatedMaxPool, ops=("max_pool2d",),
            extra=("max-pool with dilation (2, 2) is not supported; use dilation 1",)),
    Refusal("exported_in_train_mode", "any model exported without model.eval() (here DingKe's MLP): "
            "batch norm uses the batch's statistics", "batch norm in training mode", dingke_mlp,
            ops=("batch_norm",), nth=0, extra=("eval",), train_mode=True),
]
