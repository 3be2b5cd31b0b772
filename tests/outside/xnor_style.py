"""XNOR-Net family idioms: per-output-channel weight scale alpha = mean(|W|).

- jiecaoyu/XNOR-Net-PyTorch (MNIST/models/LeNet_5.py, MNIST/util.py): `BinActive` (an old-style
  autograd.Function returning `input.sign()` and the unused `mean(|input|)`), `BinConv2d`
  = BN -> BinActive -> Dropout -> Conv/Linear -> ReLU, BN with eps=1e-4 (affine=False after
  the first conv), biases on every conv; `BinOp.binarization()` overwrites the weights with
  `W.sign() * mean(|W|)` per output channel before testing, so the exported model holds
  +-alpha weights. The original keeps the first conv and the last Linear real-valued (see
  refusals.py); here BinOp covers them too.
- pjreddie/darknet (src/convolutional_layer.c: binarize_weights, binarize_cpu; src/batchnorm):
  weights `(w > 0) ? mean : -mean`, activations `(x > 0) ? 1 : -1` (sign(0) = -1 for both),
  `binary=1` layers binarize weights only, `xnor=1` layers also the input; batch norm by hand
  as `(x - mean) / (sqrt(var) + .000001f)`, then scales, then biases; maxpool after it.
- XNOR-Net++ (Bulat & Tzimiropoulos, BMVC 2019) / the XNOR-Net paper's `(sign(I) * sign(W)) alpha`:
  the scale multiplied into the convolution's output instead of the weights.
Written for this corpus, not copied.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Outside, plant_bn_cases
from .tutorial_style import where_ste


# -- jiecaoyu/XNOR-Net-PyTorch ----------------------------------------------------------------

class BinActive(torch.autograd.Function):
    """Binarize the input activations and calculate the mean across channel dimension."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        mean = torch.mean(input.abs(), 1, keepdim=True)
        input = input.sign()
        return input, mean

    @staticmethod
    def backward(ctx, grad_output, grad_output_mean):
        (input,) = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[input.ge(1)] = 0
        grad_input[input.le(-1)] = 0
        return grad_input


class BinConv2d(nn.Module):
    def __init__(self, input_channels, output_channels, kernel_size=-1, stride=-1, padding=-1,
                 dropout=0, Linear=False, previous_conv=False, size=0, relu=True):
        super().__init__()
        self.input_channels = input_channels
        self.dropout_ratio = dropout
        self.Linear = Linear
        self.previous_conv = previous_conv
        self.use_relu = relu
        if previous_conv:
            self.bn = nn.BatchNorm2d(input_channels // size, eps=1e-4, momentum=0.1, affine=True)
        elif Linear:
            self.bn = nn.BatchNorm1d(input_channels, eps=1e-4, momentum=0.1, affine=True)
        else:
            self.bn = nn.BatchNorm2d(input_channels, eps=1e-4, momentum=0.1, affine=True)
        if dropout != 0:
            self.dropout = nn.Dropout(dropout)
        if not Linear:
            self.conv = nn.Conv2d(input_channels, output_channels, kernel_size=kernel_size,
                                  stride=stride, padding=padding)
        else:
            self.linear = nn.Linear(input_channels, output_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.bn(x)
        x, mean = BinActive.apply(x)
        if self.dropout_ratio != 0:
            x = self.dropout(x)
        if not self.Linear:
            x = self.conv(x)
        else:
            if self.previous_conv:
                x = x.view(x.size(0), self.input_channels)
            x = self.linear(x)
        if self.use_relu:
            x = self.relu(x)
        return x


class LeNet5(nn.Module):
    """MNIST/models/LeNet_5.py, narrower (8, 16, 32): conv1 -> BN(affine=False) -> ReLU -> pool,
    BinConv2d -> pool, BinConv2d(Linear, previous_conv), and a last BinConv2d(Linear) without
    ReLU where the original has a real nn.Linear on ReLU outputs. Input uint8 N x 1 x 28 x 28,
    Normalize((0.1307,), (0.3081,)) in forward()."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5, stride=1)
        self.bn_conv1 = nn.BatchNorm2d(8, eps=1e-4, momentum=0.1, affine=False)
        self.relu_conv1 = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bin_conv2 = BinConv2d(8, 16, kernel_size=5, stride=1, padding=0)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bin_ip1 = BinConv2d(16 * 4 * 4, 32, Linear=True, previous_conv=True, size=4 * 4,
                                 dropout=0.5)
        self.bin_ip2 = BinConv2d(32, 10, Linear=True, relu=False)

    def forward(self, x):
        x = (x.float() / 255 - 0.1307) / 0.3081
        x = self.conv1(x)
        x = self.bn_conv1(x)
        x = self.relu_conv1(x)
        x = self.pool1(x)
        x = self.bin_conv2(x)
        x = self.pool2(x)
        x = self.bin_ip1(x)
        x = self.bin_ip2(x)
        return x


class BinOp:
    """MNIST/util.py BinOp.binarization(), for every conv/linear weight: W = sign(W) * mean|W|
    per output channel (written into .data, as the original does before testing)."""

    def __init__(self, model):
        self.target_modules = [m.weight for m in model.modules()
                               if isinstance(m, (nn.Conv2d, nn.Linear))]

    def binarization(self):
        for w in self.target_modules:
            n = w.data[0].nelement()
            s = w.data.size()
            if len(s) == 4:
                m = w.data.norm(1, 3, keepdim=True).sum(2, keepdim=True).sum(1, keepdim=True).div(n)
            else:
                m = w.data.norm(1, 1, keepdim=True).div(n)
            w.data = w.data.sign().mul(m.expand(s))


def _xnor_binarize(model):
    BinOp(model).binarization()


# -- pjreddie/darknet XNOR layers, ported --------------------------------------------------------

def binarize_weights(weights):
    mean = weights.abs().mean(dim=(1, 2, 3), keepdim=True)
    return torch.where(weights > 0, mean, -mean)


def binarize_cpu(input):
    return torch.where(input > 0, 1.0, -1.0)


class DarknetConv(nn.Module):
    """[convolutional] batch_normalize=1 binary=1 (weights) or xnor=1 (weights and input),
    activation=linear. Rolling statistics kept as darknet does (updated while training)."""

    def __init__(self, c, n, size, stride=1, pad=1, xnor=False):
        super().__init__()
        self.xnor, self.stride, self.pad = xnor, stride, pad
        self.weights = nn.Parameter(torch.randn(n, c, size, size) * (2.0 / (size * size * c)) ** 0.5)
        self.scales = nn.Parameter(torch.ones(n))
        self.biases = nn.Parameter(torch.zeros(n))
        self.register_buffer("rolling_mean", torch.zeros(n))
        self.register_buffer("rolling_variance", torch.ones(n))
        self.batch_stats = nn.BatchNorm2d(n, affine=False)  # training-time statistics only

    def forward(self, x):
        if self.xnor:
            x = binarize_cpu(x)
        out = F.conv2d(x, binarize_weights(self.weights), None, self.stride, self.pad)
        if self.training:
            out = self.batch_stats(out)
            self.rolling_mean.copy_(self.batch_stats.running_mean.detach())
            self.rolling_variance.copy_(self.batch_stats.running_var.detach())
        else:
            out = (out - self.rolling_mean.view(1, -1, 1, 1)) / (
                torch.sqrt(self.rolling_variance.view(1, -1, 1, 1)) + .000001)
        return out * self.scales.view(1, -1, 1, 1) + self.biases.view(1, -1, 1, 1)


class DarknetTiny(nn.Module):
    """A tiny xnor cfg: conv(binary) -> maxpool, conv(xnor) -> maxpool, conv 1x1 (xnor), flatten,
    connected (xnor weights via the same binarize). Input float 0..255 N x 28 x 28, / 255 as
    darknet's load_image does."""

    def __init__(self):
        super().__init__()
        self.c1 = DarknetConv(1, 8, 3)
        self.c2 = DarknetConv(8, 16, 3, xnor=True)
        self.c3 = DarknetConv(16, 16, 1, pad=0, xnor=True)
        self.fc = nn.Parameter(torch.randn(10, 16 * 7 * 7, 1, 1) * 0.05)
        self.fc_bias = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        x = (x / 255.).unsqueeze(1)
        x = F.max_pool2d(self.c1(x), 2, 2)
        x = F.max_pool2d(self.c2(x), 2, 2)
        x = self.c3(x)
        x = binarize_cpu(x).flatten(1)
        return F.linear(x, binarize_weights(self.fc).flatten(1), self.fc_bias)


def _darknet_finish(model):
    # zero and negative scales (gamma); no planted ties: with +-alpha weights a float32 sum of
    # zero is rounding noise, not 0 (pm1_buffer_cnn plants where(x > 0) ties on +-1 weights)
    for conv in (model.c2, model.c3):
        conv.scales[0] = 0.0
        conv.scales[1] = -conv.scales[1].abs() - 0.1


# -- XNOR-Net++: the scale multiplied into the output -------------------------------------------

class ScaledBinaryConv(nn.Conv2d):
    def forward(self, x):
        alpha = self.weight.abs().mean(dim=(1, 2, 3))
        out = F.conv2d(x, torch.sign(self.weight), self.bias, self.stride, self.padding)
        return out * alpha.view(1, -1, 1, 1)


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sign()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class XnorPlusPlus(nn.Module):
    """conv(+-1) * alpha -> BN -> sign, twice with stride 2 (no pooling), flatten, Linear * alpha.
    Input uint8 N x 28 x 28 scaled x * (2/255) - 1."""

    def __init__(self):
        super().__init__()
        self.conv1 = ScaledBinaryConv(1, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = ScaledBinaryConv(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 7 * 7, 10)
        self.bn3 = nn.BatchNorm1d(10)

    def forward(self, x):
        x = x.float() * (2 / 255) - 1
        x = SignSTE.apply(self.bn1(self.conv1(x.unsqueeze(1))))
        x = SignSTE.apply(self.bn2(self.conv2(x)))
        x = torch.flatten(x, 1)
        w = self.fc.weight
        return self.bn3(F.linear(x, torch.sign(w)) * w.abs().mean(dim=1))


def _xnorpp_finish(model):
    plant_bn_cases(model.bn2, ties=False)  # torch.sign: a tie would give 0 (see refusals.py)


# -- alpha multiplied into a dense layer's output, preprocessing baked in as buffers ------------

class Normalize(nn.Module):
    """torchvision transforms.ToTensor + Normalize((0.5,), (0.5,)) baked into the exported model,
    the constants kept as float32 buffers (issue 15 item 2)."""

    def __init__(self, mean=(0.5,), std=(0.5,)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x.float() / 255 - self.mean) / self.std


class XnorDense(nn.Linear):
    """x . sign(W) times alpha = mean|W| per output unit (the XNOR-Net paper's dense form)."""

    def forward(self, x):
        alpha = self.weight.abs().mean(dim=1)
        return F.linear(x, SignSTE.apply(self.weight)) * alpha


class XnorMLP(nn.Module):
    """uint8 N x 1 x 28 x 28 through Normalize buffers; first layer on the real pixels (sign(W),
    alpha after the product), BN(affine=False) between layers, signs by SignSTE (x.sign())."""

    def __init__(self):
        super().__init__()
        self.norm = Normalize()
        self.fc1 = nn.Linear(784, 64)
        self.bn1 = nn.BatchNorm1d(64, affine=False)
        self.fc2 = XnorDense(64, 64)
        self.bn2 = nn.BatchNorm1d(64, affine=False)
        self.fc3 = XnorDense(64, 10)
        self.bn3 = nn.BatchNorm1d(10)

    def forward(self, x):
        x = self.norm(x).flatten(1)
        alpha = self.fc1.weight.abs().mean(dim=1)
        x = self.bn1(F.linear(x, SignSTE.apply(self.fc1.weight)) * alpha)
        x = self.bn2(self.fc2(SignSTE.apply(x)))
        return self.bn3(self.fc3(SignSTE.apply(x)))


class AlexNetPools(nn.Module):
    """ImageNet-style pooling on a small BNN, with XNOR-Net LeNet's channel counts (20, 50: not
    multiples of 32): conv -> BN -> sign -> MaxPool2d(3, stride 2, padding 1) (torchvision ResNet's
    stem pool, after the sign), conv -> MaxPool2d(3, stride 2) (XNOR-Net AlexNet's pool, before
    the BN) -> BN -> sign, Linear -> BN. Signs by BinActive (x.sign()), weights by where(w >= 0).
    uint8 N x 28 x 28, (x - 128) / 128."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 20, 3, bias=False), nn.BatchNorm2d(20, eps=1e-4)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.conv2, self.bn2 = nn.Conv2d(20, 50, 3, bias=True), nn.BatchNorm2d(50, eps=1e-4)
        self.pool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.fc, self.bn3 = nn.Linear(50 * 5 * 5, 10, bias=False), nn.BatchNorm1d(10)

    def forward(self, x):
        x = ((x.float() - 128) / 128).unsqueeze(1)
        x, _ = BinActive.apply(self.bn1(F.conv2d(x, where_ste(self.conv1.weight))))
        x = self.pool1(x)  # 26 -> 13
        x = self.pool2(F.conv2d(x, where_ste(self.conv2.weight), self.conv2.bias))  # 11 -> 5
        x, _ = BinActive.apply(self.bn2(x))
        return self.bn3(F.linear(x.flatten(1), where_ste(self.fc.weight)))


class NINCeilPools(nn.Module):
    """Network-in-Network on XNOR-Net-PyTorch's blocks with Caffe's pooling arithmetic: Caffe
    rounds pooled sizes up, so PyTorch ports of Caffe models write MaxPool2d(3, stride=2,
    ceil_mode=True) (torchvision squeezenet.py, googlenet.py). conv5x5 -> BN(affine=False) ->
    ReLU, BinConv2d 1x1 (mlpconv) -> MaxPool2d(3, 2, ceil_mode) (24 -> 12, floor: 11),
    BinConv2d 3x3 -> MaxPool2d(3, 2, padding 1, ceil_mode) (12 -> 7, floor: 6), both on the ReLU
    outputs before the next block's BN and sign; BinConv2d(Linear, previous_conv) without ReLU.
    24, 40 and 48 channels (word tails). Input uint8 N x 1 x 28 x 28, Normalize((0.1307,),
    (0.3081,)) in forward(); weights binarized by BinOp before export."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, kernel_size=5, stride=1)
        self.bn1 = nn.BatchNorm2d(24, eps=1e-4, momentum=0.1, affine=False)
        self.relu1 = nn.ReLU(inplace=True)
        self.mlp1 = BinConv2d(24, 40, kernel_size=1, stride=1, padding=0)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        self.mlp2 = BinConv2d(40, 48, kernel_size=3, stride=1, padding=1)
        self.pool2 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.ip = BinConv2d(48 * 7 * 7, 10, Linear=True, previous_conv=True, size=7 * 7,
                            relu=False)

    def forward(self, x):
        x = (x.float() / 255 - 0.1307) / 0.3081
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool1(self.mlp1(x))
        x = self.pool2(self.mlp2(x))
        return self.ip(x)


def _nin_finish(model):
    plant_bn_cases(model.mlp2.bn, ties=False)  # after pool1: a flipped channel pools as OR
    plant_bn_cases(model.ip.bn, ties=False)  # after pool2


MODELS = [
    Outside(
        name="xnor_net_lenet",
        source="jiecaoyu/XNOR-Net-PyTorch MNIST/models/LeNet_5.py (BinActive, BinConv2d) + "
               "MNIST/util.py BinOp.binarization",
        idioms=("x.sign() in an autograd.Function that also returns mean(|x|)", "weights stored as "
                "sign(W) * mean(|W|) per output channel (.data overwritten)", "BN affine=False",
                "BN eps=1e-4", "conv -> ReLU -> max-pool -> BN -> sign", "biases on binary layers",
                "dropout", "view(x.size(0), N) after the sign", "input uint8 N x 1 x H x W",
                "(x/255 - mean)/std scalar", "dynamic batch export"),
        build=LeNet5, input="u8_nchw", export="dynamic", hidden=3, exact_float32=False,
        freeze=_xnor_binarize, min_accuracy=0.5,
        notes="trained with real weights (BinOp's binarize/restore loop not reproduced), "
              "binarized with BinOp before export, then evaluated as is"),
    Outside(
        name="darknet_xnor",
        source="pjreddie/darknet src/convolutional_layer.c binarize_weights / binarize_cpu, "
               "src/batchnorm_layer.c normalize_cpu",
        idioms=("where(x > 0, 1, -1): sign(0) = -1 on activations",
                "where(w > 0, alpha, -alpha) weights", "hand-written BN (x - m)/(sqrt(v) + 1e-6)",
                "BN before max-pool, then sign", "zero and negative gammas", "1x1 conv",
                "float input 0..255, x/255", "dynamic batch export"),
        build=DarknetTiny, input="f32_nhw", export="dynamic", hidden=3, exact_float32=False,
        finish=_darknet_finish, min_accuracy=0.15),
    Outside(
        name="xnor_plus_plus",
        source="XNOR-Net++ (Bulat & Tzimiropoulos 2019) / XNOR-Net paper: output scaled by "
               "alpha = mean(|W|) per output channel",
        idioms=("torch.sign(W) conv, output * alpha.view(1,-1,1,1)", "x.sign() in autograd.Function",
                "stride-2 binary conv instead of pooling", "x * (2/255) - 1", "Linear * alpha -> BN",
                "negative and zero gammas", "dynamic batch export"),
        build=XnorPlusPlus, input="u8_nhw", export="dynamic", hidden=2, exact_float32=False,
        finish=_xnorpp_finish, min_accuracy=0.15),
    Outside(
        name="xnor_alpha_mlp",
        source="XNOR-Net paper (Rastegari et al. 2016) dense form sign(x) sign(W) alpha; "
               "torchvision Normalize((0.5,), (0.5,)) baked in as buffers",
        idioms=("output * alpha = mean(|W|) per output unit", "x.sign() in autograd.Function on "
                "activations and weights",
                "BN affine=False", "(x/255 - 0.5)/0.5 with float32 buffers", "input uint8 N x 1 x H x W",
                "dynamic batch export"),
        build=XnorMLP, input="u8_nchw", export="dynamic", hidden=2, exact_float32=False,
        min_accuracy=0.5),
    Outside(
        name="alexnet_pools",
        source="jiecaoyu/XNOR-Net-PyTorch ImageNet/networks/model_list.py AlexNet (MaxPool2d(3, 2)); "
               "torchvision resnet.py stem MaxPool2d(3, 2, padding=1); XNOR-Net LeNet channel counts",
        idioms=("MaxPool2d(3, stride 2, padding 1) after the sign", "MaxPool2d(3, stride 2) before BN",
                "20 and 50 channels (word tails)", "x.sign() in autograd.Function (BinActive)",
                "bias on a binary conv", "BN eps=1e-4", "dynamic batch export"),
        build=AlexNetPools, input="u8_nhw", export="dynamic", hidden=2, exact_float32=True,
        min_accuracy=0.5),
    Outside(
        name="ceil_mode_pools",
        source="torchvision models/squeezenet.py and googlenet.py MaxPool2d(3, stride=2, "
               "ceil_mode=True) (Caffe's rounded-up pooling); jiecaoyu/XNOR-Net-PyTorch "
               "CIFAR_10/models/nin.py (NIN mlpconv blocks of BinConv2d) + MNIST/util.py BinOp",
        idioms=("MaxPool2d(3, stride 2, ceil_mode=True) on ReLU outputs before BN",
                "MaxPool2d(3, stride 2, padding 1, ceil_mode=True)", "1x1 binary conv (mlpconv)",
                "BN -> x.sign() -> conv -> ReLU blocks (BinConv2d)", "zero and negative gammas "
                "after a pool (OR)", "24, 40 and 48 channels (word tails)",
                "weights sign(W) * mean(|W|) (.data overwritten)", "dynamic batch export"),
        build=NINCeilPools, input="u8_nchw", export="dynamic", hidden=3, exact_float32=False,
        freeze=_xnor_binarize, finish=_nin_finish, min_accuracy=0.5,
        notes="trained with real weights, binarized with BinOp before export"),
]
