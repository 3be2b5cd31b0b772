"""Model presets: MCU-sized nets and the BinaryNet paper's nets.

Every preset takes raw uint8 images and follows the BinaryNet pattern: a binary layer, batch
norm, sign; real 8-bit input to the first layer; a BN-only last layer (no sign) whose outputs
are the class scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn as nn

from ..errors import BnnError
from .layers import BinaryConv2d, BinaryLinear, InputQuant, LearnableBias, SignActivation


@dataclass
class ModelConfig:
    preset: str
    input_shape: tuple  # (H, W, C)
    num_classes: int
    width: int | None = None  # hidden units (MLPs) or base channels (CNNs)
    depth: int | None = None  # hidden layers (MLPs) or conv blocks (CNNs)
    dropout_in: float | None = None
    dropout_hidden: float | None = None
    stochastic: bool = False
    rsign: bool = False  # a learned per-channel shift before every sign (ReActNet's RSign)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


_BN_EPS = 1e-4  # BinaryNet's epsilon
_BN_MOMENTUM = 0.1


class BNNModel(nn.Module):
    """uint8 images -> class scores."""

    def __init__(self, config: ModelConfig, body: nn.Sequential):
        super().__init__()
        self.config = config
        self.quant = InputQuant(config.input_shape[2])
        self.body = body

    def forward(self, x):
        return self.body(self.quant(x))


def _bn1d(n):
    return nn.BatchNorm1d(n, eps=_BN_EPS, momentum=_BN_MOMENTUM)


def _bn2d(n):
    return nn.BatchNorm2d(n, eps=_BN_EPS, momentum=_BN_MOMENTUM)


def _sign(cfg: ModelConfig, channels: int) -> list[nn.Module]:
    """The binary activation of `channels` channels, with RSign's shift when asked for."""
    return ([LearnableBias(channels)] if cfg.rsign else []) + [SignActivation(cfg.stochastic)]


def _mlp(cfg: ModelConfig, width: int, depth: int, p_in: float, p_hidden: float) -> nn.Sequential:
    h, w, c = cfg.input_shape
    layers: list[nn.Module] = [nn.Flatten()]
    if p_in:
        layers.append(nn.Dropout(p_in))
    n_in = h * w * c
    for _ in range(depth):
        layers += [BinaryLinear(n_in, width), _bn1d(width), *_sign(cfg, width)]
        if p_hidden:
            layers.append(nn.Dropout(p_hidden))
        n_in = width
    layers += [BinaryLinear(n_in, cfg.num_classes), _bn1d(cfg.num_classes)]
    return nn.Sequential(*layers)


def _convnet(cfg: ModelConfig, channels: list[int], convs_per_block: int, fc: list[int],
             p_hidden: float) -> nn.Sequential:
    """Blocks of [conv3x3 (pool after the block's last conv) -> BN -> sign]; then binary FCs.

    Pooling sits between conv and BN like BinaryNet's CIFAR net; the converter turns it into a
    bitwise AND/OR after the threshold, exactly.
    """
    h, w, c = cfg.input_shape
    layers: list[nn.Module] = []
    n_in, first = c, True
    for ch in channels:
        for j in range(convs_per_block):
            # The first layer sees real inputs: pad with real zero (pixel value 128).
            layers.append(BinaryConv2d(n_in, ch, 3, padding=1, pad_value=0 if first else 1))
            first = False
            if j == convs_per_block - 1:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            layers += [_bn2d(ch), *_sign(cfg, ch)]
            n_in = ch
    layers.append(nn.Flatten())
    n_in = n_in * h * w
    for n in fc:
        layers += [BinaryLinear(n_in, n), _bn1d(n), *_sign(cfg, n)]
        if p_hidden:
            layers.append(nn.Dropout(p_hidden))
        n_in = n
    layers += [BinaryLinear(n_in, cfg.num_classes), _bn1d(cfg.num_classes)]
    return nn.Sequential(*layers)


def _build_mlp(cfg):
    return _mlp(cfg, cfg.width or 256, cfg.depth or 2, cfg.dropout_in or 0.0, cfg.dropout_hidden or 0.0)


def _build_binarynet_mlp(cfg):
    # Courbariaux et al. 2016, MNIST: 3 x 4096 binary units, dropout 0.2 in / 0.5 hidden.
    p_in = 0.2 if cfg.dropout_in is None else cfg.dropout_in
    p_hidden = 0.5 if cfg.dropout_hidden is None else cfg.dropout_hidden
    return _mlp(cfg, cfg.width or 4096, cfg.depth or 3, p_in, p_hidden)


def _build_cnn(cfg):
    base = cfg.width or 32
    depth = cfg.depth or 2
    return _convnet(cfg, [base * 2**i for i in range(depth)], 1, [4 * base],
                    cfg.dropout_hidden or 0.0)


def _build_binarynet_cifar(cfg):
    # 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-2x1024FC-10 (Courbariaux et al. 2016).
    base = cfg.width or 128
    depth = cfg.depth or 3
    return _convnet(cfg, [base * 2**i for i in range(depth)], 2, [8 * base, 8 * base],
                    cfg.dropout_hidden or 0.0)


PRESETS = {
    "mlp": (_build_mlp, "binary MLP 784-256-256-10 (MCU-sized; --width units, --depth layers)"),
    "cnn": (_build_cnn, "conv3x3x32-pool-conv3x3x64-pool-fc128-fc10 (MCU-sized; --width base channels)"),
    "binarynet-mlp": (_build_binarynet_mlp, "BinaryNet paper MNIST MLP: 3x4096, dropout 0.2/0.5"),
    "binarynet-cifar": (_build_binarynet_cifar, "BinaryNet paper CIFAR-10 net: 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-2x1024FC-10"),
}


def check_preset(name: str) -> None:
    if name not in PRESETS:
        raise BnnError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


def build_model(cfg: ModelConfig) -> BNNModel:
    check_preset(cfg.preset)
    h, w, _ = cfg.input_shape
    if cfg.preset in ("cnn", "binarynet-cifar"):
        blocks = cfg.depth or (2 if cfg.preset == "cnn" else 3)
        if min(h, w) >> blocks < 1:
            raise BnnError(f"preset {cfg.preset} with {blocks} pooling blocks needs images of at "
                           f"least {2**blocks}x{2**blocks}, got {h}x{w}")
    return BNNModel(cfg, PRESETS[cfg.preset][0](cfg))
