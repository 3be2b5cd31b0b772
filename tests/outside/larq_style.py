"""Larq (github.com/larq/larq) idioms, in PyTorch.

larq/quantizers.py: `sign(x) = tf.sign(tf.sign(x) + 0.1)` ("a sign function that will never be
zero": sign(0) = +1) and `ste_sign`, that sign with a gradient clipped to |x| <= 1.
QuantDense / QuantConv2d take an `input_quantizer` and a `kernel_quantizer`; the first layer
has no input quantizer (real pixels). Keras defaults carried over: padding "valid",
BatchNormalization(momentum=0.99, epsilon=1e-3), `scale=False` in the examples (gamma fixed at
1), NHWC images, Flatten in NHWC order. Written for this corpus, not copied.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Outside


class SteSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, clip_value=1.0):
        ctx.save_for_backward(x)
        ctx.clip_value = clip_value
        return torch.sign(torch.sign(x) + 0.1)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * (x.abs() <= ctx.clip_value).to(dy.dtype), None


def ste_sign(x):
    return SteSign.apply(x)


class QuantDense(nn.Linear):
    def __init__(self, in_features, units, input_quantizer=None, kernel_quantizer=None, use_bias=True):
        super().__init__(in_features, units, bias=use_bias)
        self.input_quantizer = input_quantizer
        self.kernel_quantizer = kernel_quantizer

    def forward(self, x):
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        w = self.kernel_quantizer(self.weight) if self.kernel_quantizer is not None else self.weight
        return F.linear(x, w, self.bias)


class QuantConv2d(nn.Conv2d):
    def __init__(self, in_channels, filters, kernel_size, input_quantizer=None, kernel_quantizer=None,
                 use_bias=True):
        super().__init__(in_channels, filters, kernel_size, bias=use_bias)  # Keras "valid"
        self.input_quantizer = input_quantizer
        self.kernel_quantizer = kernel_quantizer

    def forward(self, x):
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        w = self.kernel_quantizer(self.weight) if self.kernel_quantizer is not None else self.weight
        return self._conv_forward(x, w, self.bias)


def BatchNormalization(n, dims=2, scale=True):
    """Keras BatchNormalization(momentum=0.99, epsilon=1e-3); scale=False keeps gamma at 1."""
    bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(n, eps=1e-3, momentum=0.01)
    if not scale:
        bn.weight.requires_grad_(False)
    return bn


class LarqMnistCNN(nn.Module):
    """larq docs "Introduction to BNNs with Larq" (MNIST): QuantConv2d(32) -> MaxPool -> BN(scale=
    False) -> QuantConv2d(64, ste_sign in) -> MaxPool -> BN -> QuantConv2d(64) -> BN -> Flatten ->
    QuantDense(64) -> BN -> QuantDense(10) -> BN -> softmax; no biases (use_bias=False);
    images reshaped to N x 28 x 28 x 1 and scaled / 127.5 - 1. Narrower here (8, 16, 16, 32)."""

    def __init__(self):
        super().__init__()
        kw = dict(kernel_quantizer=ste_sign, use_bias=False)
        self.layers = nn.Sequential(
            QuantConv2d(1, 8, 3, **kw),
            nn.MaxPool2d(2),
            BatchNormalization(8, scale=False),
            QuantConv2d(8, 16, 3, input_quantizer=ste_sign, **kw),
            nn.MaxPool2d(2),
            BatchNormalization(16, scale=False),
            QuantConv2d(16, 16, 3, input_quantizer=ste_sign, **kw),
            BatchNormalization(16, scale=False),
        )
        self.dense = nn.Sequential(
            QuantDense(3 * 3 * 16, 32, input_quantizer=ste_sign, **kw),
            BatchNormalization(32, dims=1, scale=False),
            QuantDense(32, 10, input_quantizer=ste_sign, **kw),
            BatchNormalization(10, dims=1, scale=False),
        )

    def forward(self, images):
        x = images.float() / 127.5 - 1
        x = x.permute(0, 3, 1, 2)  # Keras NHWC -> torch NCHW
        x = self.layers(x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # Keras Flatten order (NHWC)
        return torch.softmax(self.dense(x), dim=-1)


class LarqReadmeMLP(nn.Module):
    """larq README's first model: Flatten -> QuantDense(512, kernel ste_sign) -> QuantDense(10,
    input and kernel ste_sign, softmax). No batch norm at all: the hidden sign is taken of the
    accumulator plus the Keras default bias. Width 64 here; images / 255."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.d1 = QuantDense(784, 64, kernel_quantizer=ste_sign)
        self.d2 = QuantDense(64, 10, input_quantizer=ste_sign, kernel_quantizer=ste_sign)

    def forward(self, images):
        x = self.flatten(images.float() / 255.0)
        return F.softmax(self.d2(self.d1(x)), dim=1)


MODELS = [
    Outside(
        name="larq_mnist_cnn",
        source="larq/larq docs 'Introduction to BNNs with Larq' (QuantConv2d, ste_sign) + "
               "larq/quantizers.py sign/ste_sign",
        idioms=("Larq ste_sign: torch.sign(torch.sign(x) + 0.1) in an autograd.Function",
                "same on weights", "input N x H x W x 1 (NHWC), x/127.5 - 1",
                "conv -> max-pool -> BN -> sign",
                "BN eps=1e-3, gamma frozen at 1 (scale=False)", "permute to NHWC before flatten",
                "no biases", "softmax at the end", "dynamic batch export", "nn.Sequential"),
        build=LarqMnistCNN, input="u8_nhwc", export="dynamic", output="softmax", hidden=4,
        exact_float32=False, min_accuracy=0.5),
    Outside(
        name="larq_readme_mlp",
        source="larq/larq README.md example (QuantDense with ste_sign, no batch norm)",
        idioms=("ste_sign on activations and weights", "hidden sign of accumulator + bias (no BN)",
                "x/255", "input N x H x W x 1", "nn.Flatten", "biases on binary layers",
                "softmax at the end", "static batch export (x[:1])"),
        build=LarqReadmeMLP, input="u8_nhwc", export="static:1", output="softmax", hidden=1,
        exact_float32=False, min_accuracy=0.3),
]
