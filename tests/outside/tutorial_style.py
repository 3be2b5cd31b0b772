"""Idioms of smaller public BNN code and tutorials.

- DingKe/pytorch_workplace binary/functions.py + binary/modules.py: `BinarizeF` writes into a
  fresh tensor with masks (`output = input.new(input.size()); output[input >= 0] = 1;
  output[input < 0] = -1`), identity-gradient STE; `BinaryTanh` = Hardtanh then binarize;
  `BinaryLinear` = F.linear(input, binarize(weight), bias). Copied into many repositories
  (e.g. jeshraghian/snn-tha shd/functions.py).
- The detach STE of tutorials and blog posts: `x + (torch.sign(x) - x).detach()`.
- vadimq/binary-net binary_net.py `sign`: where(x < 0, -ones_like, ones_like) in a custom
  gradient; the PyTorch port as torch.where(torch.ge(x, 0), torch.ones_like(x), -torch.ones_like(x))
  in an autograd.Function (the exact form of the issue-15 report).
- Xilinx/brevitas (brevitas_examples/bnn_pynq/models/FC.py, brevitas/function/ops.py binary_sign,
  bnn_pynq/models/tensor_norm.py): the LFC network of FINN: `x = 2.0 * x - torch.tensor([1.0])`
  on ToTensor's [0, 1] input, 1-bit QuantIdentity (binarizes the image too), QuantLinear with
  1-bit weights and no bias, BatchNorm1d, dropout, and a TensorNorm (a scalar batch norm
  written by hand) after the last layer; binary_sign = ge(x, 0).float() - lt(x, 0).float()
  times a constant scale 1.0.
- Hand-written batch norm with constants (HLS/FPGA ports, e.g. FINN-style streamlining
  tutorials): (x - m) / sqrt(v + eps) * g + b with tensors as plain attributes.
- BinaryNet after training (`weight.data = Binarize(weight.org)`): the weights are +-1 already;
  deployment code keeps them as +-1 in a buffer.
- Keyword-spotting style 1-D BNNs (nn.Conv1d over a 1-D signal).
Written for this corpus, not copied.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Outside, plant_bn_cases


# -- DingKe/pytorch_workplace -------------------------------------------------------------------

class BinarizeF(torch.autograd.Function):
    @staticmethod
    def forward(cxt, input):
        output = input.new(input.size())
        output[input >= 0] = 1
        output[input < 0] = -1
        return output

    @staticmethod
    def backward(cxt, grad_output):
        return grad_output.clone()


binarize = BinarizeF.apply


class BinaryTanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.hardtanh = nn.Hardtanh()

    def forward(self, input):
        return binarize(self.hardtanh(input))


class BinaryLinearDK(nn.Linear):
    def forward(self, input):
        binary_weight = binarize(self.weight)
        if self.bias is None:
            return F.linear(input, binary_weight)
        return F.linear(input, binary_weight, self.bias)


def dingke_mlp():
    """binary/mnist_mlp-like: Flatten -> (BinaryLinear -> BN -> BinaryTanh) x 2 -> BinaryLinear
    -> BN, as an nn.Sequential behind a scaling module. uint8 N x 28 x 28, (x - 128) / 128."""

    class Scale(nn.Module):
        def forward(self, x):
            return (x.float() - 128) / 128

    return nn.Sequential(Scale(), nn.Flatten(),
                         BinaryLinearDK(784, 64), nn.BatchNorm1d(64), BinaryTanh(),
                         BinaryLinearDK(64, 64), nn.BatchNorm1d(64), BinaryTanh(),
                         BinaryLinearDK(64, 10), nn.BatchNorm1d(10))


def _dingke_finish(model):
    plant_bn_cases(model[6], bias=model[5].bias)


# -- detach STE -----------------------------------------------------------------------------

def sign_ste(x):
    return x + (torch.sign(x) - x).detach()


def where_ste(x):
    """The same trick on where(x >= 0, 1., -1.) (sign(0) = +1); exact on +-1 in float32."""
    return x + (torch.where(x >= 0, 1., -1.) - x).detach()


class DetachSTEMLP(nn.Module):
    """Linear layers whose weights and activations go through x + (sign(x) - x).detach();
    flattened with x.view(x.size(0), -1); BN eps 1e-3. uint8 N x 28 x 28, x * (2/255) - 1."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64, bias=False)
        self.bn1 = nn.BatchNorm1d(64, eps=1e-3)
        self.fc2 = nn.Linear(64, 64, bias=False)
        self.bn2 = nn.BatchNorm1d(64, eps=1e-3)
        self.fc3 = nn.Linear(64, 10, bias=False)
        self.bn3 = nn.BatchNorm1d(10, eps=1e-3)

    def forward(self, x):
        x = x.float() * (2 / 255) - 1
        x = x.view(x.size(0), -1)
        x = sign_ste(self.bn1(F.linear(x, sign_ste(self.fc1.weight))))
        x = sign_ste(self.bn2(F.linear(x, sign_ste(self.fc2.weight))))
        return self.bn3(F.linear(x, sign_ste(self.fc3.weight)))


# -- where(ge(x, 0), ones_like, -ones_like) in an autograd.Function ------------------------------

class SignFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(torch.ge(x, 0), torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).float()


class BinConv(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, SignFunction.apply(self.weight), self.bias)


class WhereGeCNN(nn.Module):
    """uint8 N x 28 x 28 x 1, (x - 128) / 128, permute to NCHW; conv stride 2 -> BN -> sign,
    conv stride 2 -> BN -> sign, 1x1 conv -> BN -> permute to NHWC -> sign -> reshape,
    a Linear with bias and no BN, then a learnable positive temperature on the scores."""

    def __init__(self):
        super().__init__()
        self.conv1 = BinConv(1, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = BinConv(8, 16, 3, stride=2, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = BinConv(16, 16, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(7 * 7 * 16, 10)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        x = ((x.float() - 128) / 128).permute(0, 3, 1, 2)
        x = SignFunction.apply(self.bn1(self.conv1(x)))
        x = SignFunction.apply(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x)).permute(0, 2, 3, 1)
        x = SignFunction.apply(x).reshape(x.shape[0], -1)
        return F.linear(x, SignFunction.apply(self.fc.weight), self.fc.bias) * self.scale.abs()


def _where_ge_finish(model):
    plant_bn_cases(model.bn2, bias=model.conv2.bias)
    plant_bn_cases(model.bn3)


# -- Brevitas / FINN LFC -------------------------------------------------------------------------

def binary_sign(x):
    positive_mask = torch.ge(x, 0.0)
    negative_mask = torch.lt(x, 0.0)
    return positive_mask.float() - negative_mask.float()


class BinarySignSte(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return binary_sign(x)

    @staticmethod
    def backward(ctx, g):
        return g


class QuantIdentity1b(nn.Module):
    """QuantIdentity(bit_width=1, min_val=-1, max_val=1): binary_sign(x) * scale (constant 1.0)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, x):
        return BinarySignSte.apply(x) * self.scale


class QuantLinear1b(nn.Linear):
    def __init__(self, i, o):
        super().__init__(i, o, bias=False)
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, x):
        return F.linear(x, BinarySignSte.apply(self.weight) * self.scale)


class TensorNorm(nn.Module):
    def __init__(self, eps=1e-4, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.rand(1))
        self.bias = nn.Parameter(torch.rand(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))

    def forward(self, x):
        if self.training:
            mean, var = x.mean(), x.var()
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class LFC(nn.Module):
    """FC.py with 1-bit weights and activations, 2 x 64 hidden. The float image 0..255
    N x 1 x 28 x 28 (ToTensor's / 255 moved into forward), x.view(x.shape[0], -1), 2x - 1."""

    def __init__(self):
        super().__init__()
        self.features = nn.ModuleList([QuantIdentity1b(), nn.Dropout(0.2)])
        for i, o in ((784, 64), (64, 64)):
            self.features += [QuantLinear1b(i, o), nn.BatchNorm1d(o), QuantIdentity1b(),
                              nn.Dropout(0.2)]
        self.features += [QuantLinear1b(64, 10), TensorNorm()]

    def forward(self, x):
        x = x / 255.0
        x = x.view(x.shape[0], -1)
        x = 2.0 * x - torch.tensor([1.0], device=x.device)
        for mod in self.features:
            x = mod(x)
        return x


# -- BN by hand with constants; +-1 weights in buffers; Conv1d -----------------------------------

class HandBN(nn.Module):
    """(x - m) / sqrt(v + eps) * g + b, statistics from an nn.BatchNorm1d while training, then
    frozen into plain tensor attributes (constants to torch.export)."""

    def __init__(self, n):
        super().__init__()
        self.bn = nn.BatchNorm1d(n)
        self.frozen = False

    def freeze(self):
        self.m, self.v = self.bn.running_mean.clone(), self.bn.running_var.clone()
        self.g, self.b = self.bn.weight.detach().clone(), self.bn.bias.detach().clone()
        self.eps = self.bn.eps
        self.frozen = True

    def forward(self, x):
        if not self.frozen:
            return self.bn(x)
        return (x - self.m) / torch.sqrt(self.v + self.eps) * self.g + self.b


class WhereSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1., -1.)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).float()


class HandBNMLP(nn.Module):
    """uint8 N x 28 x 28, x.flatten(1).float() / 255 * 2 - 1 (the issue-15 example); Linear
    layers with where(x >= 0, 1., -1.) weights and biases; hand-written BN; last layer BN."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 64), HandBN(64)
        self.fc2, self.bn2 = nn.Linear(64, 64), HandBN(64)
        self.fc3, self.bn3 = nn.Linear(64, 10), HandBN(10)

    def forward(self, x):
        x = x.flatten(1).float() / 255 * 2 - 1
        for fc, bn, last in ((self.fc1, self.bn1, False), (self.fc2, self.bn2, False),
                             (self.fc3, self.bn3, True)):
            x = bn(F.linear(x, WhereSign.apply(fc.weight), fc.bias))
            if not last:
                x = WhereSign.apply(x)
        return x


def _hand_bn_finish(model):
    plant_bn_cases(model.bn2.bn, bias=model.fc2.bias)
    for bn in (model.bn1, model.bn2, model.bn3):
        bn.freeze()


class Pm1BufferCNN(nn.Module):
    """Deployment copy of a trained BNN: weights stored as +-1 buffers (what BinaryNet's
    weight.data holds after training), sign as torch.where(x > 0, 1., -1.), BN -> sign ->
    max-pool (pool after sign), biases, nn.Flatten. uint8 N x 28 x 28, x / 255."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.register_buffer("w1", torch.randn(8, 1, 3, 3, generator=g).sign())
        self.register_buffer("b1", torch.randn(8, generator=g))
        self.bn1 = nn.BatchNorm2d(8)
        self.register_buffer("w2", torch.randn(16, 8, 3, 3, generator=g).sign())
        self.register_buffer("b2", torch.randn(16, generator=g))
        self.bn2 = nn.BatchNorm2d(16)
        self.flatten = nn.Flatten()
        self.register_buffer("w3", torch.randn(10, 16 * 7 * 7, generator=g).sign())
        self.bn3 = nn.BatchNorm1d(10)

    def forward(self, x):
        x = x.float().unsqueeze(1) / 255
        x = F.max_pool2d(torch.where(self.bn1(F.conv2d(x, self.w1, self.b1, padding=1)) > 0,
                                     1.0, -1.0), 2)
        x = F.max_pool2d(torch.where(self.bn2(F.conv2d(x, self.w2, self.b2, padding=1)) > 0,
                                     1.0, -1.0), 2)
        return self.bn3(F.linear(self.flatten(x), self.w3))


def _pm1_finish(model):
    plant_bn_cases(model.bn2, bias=model.b2)


class Conv1dBNN(nn.Module):
    """A 1-D BNN over the 784 pixels as one signal: Conv1d(1, 8, 7, stride 7) -> BN -> sign,
    Conv1d(8, 16, 5, stride 4) -> BN -> sign, flatten, Linear -> BN. Sign by the detach STE on
    where(x >= 0, 1., -1.), weights the same. uint8 N x 28 x 28, x / 255, x.view(N, 1, -1)."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn1 = nn.Conv1d(1, 8, 7, stride=7, bias=False), nn.BatchNorm1d(8)
        self.c2, self.bn2 = nn.Conv1d(8, 16, 5, stride=4), nn.BatchNorm1d(16)
        self.fc, self.bn3 = nn.Linear(16 * 27, 10, bias=False), nn.BatchNorm1d(10)

    def forward(self, x):
        x = (x.float() / 255).view(x.shape[0], 1, -1)
        x = where_ste(self.bn1(F.conv1d(x, where_ste(self.c1.weight), None, 7)))
        x = where_ste(self.bn2(F.conv1d(x, where_ste(self.c2.weight), self.c2.bias, 4)))
        return self.bn3(F.linear(x.flatten(1), where_ste(self.fc.weight)))


def _conv1d_finish(model):
    plant_bn_cases(model.bn2, bias=model.c2.bias)  # the detach STE keeps +-1 weights exact


MODELS = [
    Outside(
        name="dingke_mlp",
        source="DingKe/pytorch_workplace binary/functions.py BinarizeF + binary/modules.py "
               "(BinaryTanh, BinaryLinear)",
        idioms=("masked writes into input.new(input.size())", "custom autograd.Function",
                "hardtanh then sign", "same on weights", "biases on binary layers", "nn.Sequential",
                "nn.Flatten", "(x - 128)/128", "zero and negative gammas, ties (sign(0) = +1)",
                "dynamic batch export"),
        build=dingke_mlp, input="u8_nhw", export="dynamic", hidden=2, exact_float32=True,
        finish=_dingke_finish, min_accuracy=0.5),
    Outside(
        name="detach_ste_mlp",
        source="tutorial/blog STE: x + (torch.sign(x) - x).detach()",
        idioms=("STE trick x + (sign(x) - x).detach() on activations and weights",
                "torch.sign", "x * (2/255) - 1", "view(x.size(0), -1)", "BN eps=1e-3",
                "static batch export (x[:4])"),
        build=DetachSTEMLP, input="u8_nhw", export="static:4", hidden=2, exact_float32=False,
        min_accuracy=0.5),
    Outside(
        name="where_ge_cnn",
        source="vadimq/binary-net binary_net.py sign (where with ones_like), ported to PyTorch; "
               "issue 15's refused example",
        idioms=("where(ge(x, 0), ones_like(x), -ones_like(x)) in autograd.Function", "same on weights",
                "input N x H x W x 1", "(x - 128)/128", "stride-2 binary conv instead of pooling",
                "1x1 conv", "permute to NHWC between BN and sign", "reshape before the Linear",
                "last layer Linear with bias and no BN", "last layer followed by a scale",
                "ties planted (sign(0) = +1)", "dynamic batch export"),
        build=WhereGeCNN, input="u8_nhwc", export="dynamic", hidden=3, exact_float32=True,
        finish=_where_ge_finish, min_accuracy=0.4),
    Outside(
        name="finn_lfc",
        source="Xilinx/brevitas src/brevitas_examples/bnn_pynq/models/FC.py, tensor_norm.py; "
               "brevitas/function/ops.py binary_sign",
        idioms=("ge(x,0).float() - lt(x,0).float() (brevitas binary_sign)", "* constant scale 1.0",
                "binarized input image (2x - 1 then sign)", "no biases", "dropout",
                "x.view(x.shape[0], -1)", "2.0 * x - torch.tensor([1.0])",
                "float input 0..255, N x 1 x H x W", "TensorNorm: last layer followed by a scalar BN "
                "written by hand", "nn.ModuleList loop", "dynamic batch export"),
        build=LFC, input="f32_nchw", export="dynamic", hidden=2, exact_float32=False,
        min_accuracy=0.5),
    Outside(
        name="hand_bn_mlp",
        source="hand-written BN with constants (HLS/FPGA ports); issue 15's refused example "
               "x.float() / 255 * 2 - 1",
        idioms=("(x - m)/sqrt(v + eps) * g + b with constant tensors", "where(x >= 0, 1., -1.) "
                "in autograd.Function, on weights too", "x.flatten(1).float() / 255 * 2 - 1",
                "biases", "zero and negative gammas, ties", "dynamic batch export"),
        build=HandBNMLP, input="u8_nhw", export="dynamic", hidden=2, exact_float32=False,
        finish=_hand_bn_finish, min_accuracy=0.5),
    Outside(
        name="pm1_buffer_cnn",
        source="BinaryNet.pytorch after training (weight.data = Binarize(weight.org)): +-1 weights "
               "kept in buffers by deployment code; darknet-style where(x > 0, 1, -1)",
        idioms=("weights as +-1 buffers", "where(x > 0, 1., -1.): sign(0) = -1 (ties planted)",
                "BN -> sign -> max-pool (pool after sign)", "biases", "nn.Flatten", "x/255",
                "random weights, real BN statistics only", "dynamic batch export"),
        build=Pm1BufferCNN, input="u8_nhw", export="dynamic", train_steps=0, hidden=2,
        exact_float32=False, finish=_pm1_finish),
    Outside(
        name="conv1d_bnn",
        source="1-D BNNs (keyword-spotting style) with nn.Conv1d; detach STE on where(x >= 0)",
        idioms=("nn.Conv1d / F.conv1d", "x + (where(x >= 0, 1., -1.) - x).detach()", "x.view(N, 1, -1)",
                "x/255", "bias on a binary layer", "ties planted",
                "dynamic batch export with Dim.AUTO"),
        build=Conv1dBNN, input="u8_nhw", export="auto", hidden=2, exact_float32=False,
        finish=_conv1d_finish, min_accuracy=0.4),
]
