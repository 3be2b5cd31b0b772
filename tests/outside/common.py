"""What every outside model shares: how it is described, fed, given weights and exported.

The models themselves are written the way their public sources write them (one module per
style); nothing here shapes them for the importer. This module only plays the user's part
around a model: feed it Fashion-MNIST in the layout and dtype its forward() expects, train it
for a few steps, gather real batch-norm statistics, and call torch.export the way the PyTorch
docs show (a static example batch, or a dynamic batch dimension).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# How a model's forward() takes the images: dtype and layout of its one input.
#   u8_nhw   uint8  N x H x W        u8_nchw  uint8  N x 1 x H x W    u8_nhwc  uint8 N x H x W x 1
#   f32_nhw  float32 0..255 N x H x W,  f32_nchw  float32 0..255 N x 1 x H x W
INPUT_KINDS = ("u8_nhw", "u8_nchw", "u8_nhwc", "f32_nhw", "f32_nchw")


@dataclass
class Outside:
    """One outside model: how to build it and what the test may expect of it."""
    name: str
    source: str                      # public code the idioms come from (repository, file, function)
    idioms: tuple                    # the idioms it exercises, for the report
    build: Callable[[], nn.Module]
    input: str = "u8_nhw"            # one of INPUT_KINDS
    export: str = "dynamic"          # "dynamic" (Dim("batch")), "auto" (Dim.AUTO), or "static:N" =
    #                                  torch.export.export(m, (x[:N],))
    train_steps: int = 60            # 0: random weights, real BN statistics only
    lr: float = 1e-2
    output: str = "scores"           # "scores", "log_softmax" or "softmax": what forward() returns
    hidden: int = 1                  # hidden binary activations whose bits must be compared
    exact_float32: bool = True       # False: its float32 sums are not exact (input scaling such
    #                                  as x/255, or +-alpha weight scales): float64 is the reference
    min_accuracy: float = 0.0        # trained with a working STE: it must have learned something
    freeze: Callable[[nn.Module], None] | None = None  # after training, before BN statistics
    finish: Callable[[nn.Module], None] | None = None  # after BN statistics: plant ties, gamma <= 0
    notes: str = ""


def model_input(x: np.ndarray, kind: str) -> torch.Tensor:
    """Fashion-MNIST uint8 N x H x W x 1 -> the tensor the model's forward() takes."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if kind == "u8_nhwc":
        return t
    t = t[..., 0]
    if kind in ("u8_nchw", "f32_nchw"):
        t = t.unsqueeze(1)
    if kind.startswith("f32"):
        t = t.float()  # pixels as float 0..255 (what a user gets from PIL/numpy without ToTensor)
    return t.contiguous()


def _loss(out: torch.Tensor, y: torch.Tensor, output: str) -> torch.Tensor:
    if output == "softmax":
        return F.nll_loss(torch.log(out.clamp_min(1e-12)), y)
    if output == "log_softmax":
        return F.nll_loss(out, y)
    return F.cross_entropy(out, y)


def train_briefly(model: nn.Module, spec: Outside, x: np.ndarray, y: np.ndarray, seed: int) -> None:
    """A few Adam steps on real images (the weights then mean something)."""
    if spec.train_steps == 0:
        return
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=spec.lr)
    model.train()
    for _ in range(spec.train_steps):
        idx = rng.integers(0, len(y), 100)
        loss = _loss(model(model_input(x[idx], spec.input)), torch.from_numpy(y[idx]), spec.output)
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def gather_bn_statistics(model: nn.Module, spec: Outside, x: np.ndarray, batches: int = 6,
                         size: int = 500) -> None:
    """Real BN statistics: cumulative averages (momentum=None) over a few batches of real
    images, dropout off, then eval. Thresholds then sit inside the data and signs are balanced."""
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    for i in range(batches):
        model(model_input(x[i * size:(i + 1) * size], spec.input))
    model.eval()


def example_input(spec: Outside, x: np.ndarray) -> torch.Tensor:
    return model_input(x[:8], spec.input)


def export(model: nn.Module, spec: Outside, x: np.ndarray) -> torch.export.ExportedProgram:
    """torch.export as users call it: a static example batch, or a dynamic batch dimension."""
    model.eval()
    ex = example_input(spec, x)
    if spec.export.startswith("static:"):
        n = int(spec.export.split(":")[1])
        return torch.export.export(model, (ex[:n],))
    batch = torch.export.Dim.AUTO if spec.export == "auto" else torch.export.Dim("batch")
    return torch.export.export(model, (ex,), dynamic_shapes=({0: batch},))


def make(spec: Outside, fashion, seed: int = 0) -> tuple[nn.Module, torch.export.ExportedProgram]:
    """Build, train briefly, gather real BN statistics, finish, export (one torch thread:
    the models are tiny and CI machines are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _make(spec, fashion, seed)
    finally:
        torch.set_num_threads(threads)


def _make(spec: Outside, fashion, seed: int) -> tuple[nn.Module, torch.export.ExportedProgram]:
    torch.manual_seed(seed)
    model = spec.build()
    x, y = fashion.train_x[:20000], fashion.train_y[:20000]
    train_briefly(model, spec, x, y, seed)
    if spec.freeze is not None:
        with torch.no_grad():
            spec.freeze(model)
    gather_bn_statistics(model, spec, fashion.train_x[20000:23000])
    if spec.finish is not None:
        with torch.no_grad():
            spec.finish(model)
    model.eval()
    return model, export(model, spec, fashion.test_x)


# -- things a trained model may hold, planted on purpose -------------------------------------

def plant_bn_cases(bn: nn.Module, bias: torch.Tensor | None = None, ties: bool = True) -> None:
    """Channel 0: gamma = 0 (a constant channel); channel 1: gamma < 0 (a flipped channel);
    channels 2..4: BN output exactly 0 at the attainable accumulator 0, where the model's own
    sign(0) decides (+1 for where(x >= 0), -1 for where(x > 0)).

    A tie is only a tie if float32 PyTorch computes exactly 0 there: PyTorch's BN kernel folds
    to x * (g / sqrt(v + eps)) + (b - m * g / sqrt(v + eps)), so g = 1, v = 1 - eps (v + eps
    rounds to 1), m = 0, b = 0; the layer's bias (added inside the conv/linear, where partial
    sums would round a fractional bias) is set to 0 in those channels. Only for layers whose
    PyTorch weights are exactly +-1: with +-alpha weights a float32 sum of zero is not 0."""
    bn.weight[0] = 0.0
    bn.weight[1] = -bn.weight[1].abs() - 0.1
    if ties:
        for c in range(2, min(5, bn.num_features)):
            bn.weight[c], bn.bias[c] = 1.0, 0.0
            bn.running_mean[c], bn.running_var[c] = 0.0, 1.0 - bn.eps
            if bias is not None:
                bias[c] = 0.0


@dataclass
class Refusal:
    """A model that is not an exact BNN: the importer must refuse it in one line naming
    the node that stops the reading and its op."""
    name: str
    source: str
    why: str
    build: Callable[[], nn.Module]
    ops: tuple                       # ATen op names (e.g. "avg_pool2d"); the error names one of them
    input: str = "u8_nhw"
    shape: tuple = (28, 28)          # H, W of the example (a refusal needs no real data)
    channels: int = 1
    extra: tuple = field(default=())  # further words the message must hold (e.g. "channel")
    nth: int | None = None           # the culprit is the nth node running one of `ops`; None: any
    train_mode: bool = False         # exported without model.eval() (a common slip)
