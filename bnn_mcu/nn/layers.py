"""BinaryNet layers: sign with sign(0) = +1, the straight-through estimator, binary weights.

Forward values follow DESIGN.md §2 exactly: sign(x) = +1 if x >= 0 else -1 (so sign(-0.0) = +1),
never torch.sign. In eval mode every op is a plain ATen op (`where(ge(x, 0), 1, -1)`), so an
exported graph can be read back without our classes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Raw uint8 pixels x become (x - 128) / 128: exact in float32, so the device's integers
# (x - 128) reproduce training bit for bit (the zero point 128 is folded into thresholds).
INPUT_ZERO_POINT = 128
INPUT_SCALE = 128.0


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = sign(-0.0) = +1, as a plain graph op."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class SignSTE(torch.autograd.Function):
    """Deterministic binarization; gradient passed straight through where |x| <= 1, else 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign_pm1(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class ApproxSignSTE(SignSTE):
    """SignSTE's value with Bi-Real Net's ApproxSign gradient (Liu et al., 2018): the
    derivative of the piecewise quadratic 2x + x|x| on |x| <= 1, i.e. 2 - 2|x|, else 0.
    Only the gradient differs, so the trained model deploys the same way."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2 - 2 * x.abs()).clamp(min=0).to(grad.dtype)


#: The gradient estimators a deterministic sign can train with (`train --ste`).
STE_KINDS = {"clip": SignSTE, "approx": ApproxSignSTE}


class StochasticSignSTE(torch.autograd.Function):
    """Stochastic binarization: +1 with probability hard_sigmoid(x) = clip((x + 1) / 2, 0, 1)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        p = ((x + 1) / 2).clamp(0, 1)
        return torch.where(torch.rand_like(x) < p, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def binarize(x: torch.Tensor, training: bool, stochastic: bool = False,
             ste: str = "clip") -> torch.Tensor:
    """Binarize with the STE while training; a plain where() otherwise (what export sees)."""
    if not training:
        return sign_pm1(x)
    return (StochasticSignSTE if stochastic else STE_KINDS[ste]).apply(x)


class SignActivation(nn.Module):
    """Binary activation (hardtanh's gradient window, sign's value).

    `real = True` (set by the trainer, never saved) gives hardtanh's value instead: the
    real-valued activations of a first training stage or of a distillation teacher. Exported
    models are always trained to the end with real = False. `ste` (set by the trainer, never
    saved) names the gradient estimator of STE_KINDS.
    """

    def __init__(self, stochastic: bool = False):
        super().__init__()
        self.stochastic = stochastic
        self.real = False
        self.ste = "clip"

    def forward(self, x):
        if self.real:
            return F.hardtanh(x)
        return binarize(x, self.training, self.stochastic, self.ste)


class LearnableBias(nn.Module):
    """ReActNet's RSign shift: a learned per-channel offset added before the sign.

    Per channel and before the sign, so the converter folds it into the integer threshold
    exactly (the importer evaluates x + b on every attainable accumulator value). After a batch
    norm it does not enlarge what the model can express (BN's beta is a shift already); what it
    changes is the optimization: a separate, undecayed parameter that moves the threshold.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x + self.bias.view(shape)


class _BinaryWeights:
    """Mixin: a latent real weight, binarized in forward and clipped to [-1, 1] after each step."""

    stochastic = False
    real = False  # real-valued weights (a distillation teacher); set by the trainer, never saved
    lr_scale = 1.0  # BinaryNet's per-layer Glorot learning-rate scale (set by the trainer)

    def binary_weight(self) -> torch.Tensor:
        if self.real:
            return self.weight
        return binarize(self.weight, self.training, self.stochastic)

    @torch.no_grad()
    def clip_weights(self) -> None:
        if not self.real:  # latent weights of a binary layer only
            self.weight.clamp_(-1.0, 1.0)

    def glorot_scale(self) -> float:
        """1/H with H = sqrt(1.5 / (fan_in + fan_out)) (Courbariaux et al., 2016)."""
        w = self.weight
        receptive = w[0][0].numel() if w.dim() > 2 else 1
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        return 1.0 / (1.5 / (fan_in + fan_out)) ** 0.5


class BinaryLinear(nn.Linear, _BinaryWeights):
    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x):
        return F.linear(x, self.binary_weight(), self.bias)


PAD_VALUES = (1, -1, 0)


class BinaryConv2d(nn.Conv2d, _BinaryWeights):
    """Binary conv; padding with +1 (default), -1, or true zero (pad_value=0)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, pad_value: int = 1, bias: bool = False):
        if pad_value not in PAD_VALUES:
            raise ValueError(f"pad_value must be one of {PAD_VALUES}, got {pad_value}")
        super().__init__(in_ch, out_ch, kernel_size, stride=stride,
                         padding=padding if pad_value == 0 else 0, bias=bias)
        self.pad = padding if pad_value != 0 else 0
        self.pad_value = pad_value
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x):
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, value=float(self.pad_value))
        return F.conv2d(x, self.binary_weight(), self.bias, self.stride, self.padding)


class InputQuant(nn.Module):
    """Raw uint8 pixels (N x H x W or N x H x W x C) -> real NCHW input of the first layer.

    (x - 128) / 128 is exact in float32, and so is every first-layer sum of such values times
    +-1 weights (|sum| < 2^24 / 128 for any MCU-sized layer): float32 training and the device's
    integer accumulators agree on every bit.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        x = x.to(torch.float32)
        if x.dim() == 3:
            x = x.unsqueeze(-1)
        x = (x - INPUT_ZERO_POINT) / INPUT_SCALE
        return x.permute(0, 3, 1, 2)


def binary_layers(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, _BinaryWeights)]


def set_ste(model: nn.Module, kind: str) -> None:
    """Train every sign of a model with the gradient estimator `kind` (a key of STE_KINDS)."""
    for m in model.modules():
        if isinstance(m, SignActivation):
            m.ste = kind


def set_real(model: nn.Module, activations: bool, weights: bool) -> None:
    """Switch a model's activations and/or weights between real-valued and binary."""
    for m in model.modules():
        if isinstance(m, SignActivation):
            m.real = activations
        elif isinstance(m, _BinaryWeights):
            m.real = weights
