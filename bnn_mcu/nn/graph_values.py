"""The values the importer tracks while it reads a graph (bnn_mcu/nn/importer.py).

Pixels, Acc and Bin are what an input-derived tensor can be; Expr is an Acc's value as a small
expression over the layer's preactivation, evaluated on probes of every attainable
accumulator value; index maps (`canonical`) hold where each element sits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..ir.float_ir import FloatLayer


class Batch:
    """The symbolic batch size (from sym_size on an input-derived tensor)."""


@dataclass
class Fresh:
    """A tensor made from nothing (`empty`, `zeros`, `x.new(x.size())`...): a constant when
    used with constants, the activation's shape filled with one value when written through
    masks of an activation (`out = x.new(x.size()); out[x >= 0] = 1; out[x < 0] = -1`)."""

    node: object
    value: torch.Tensor  # materialised (batch 1 when the batch is symbolic); empty -> NaN
    fill: float


# -- expressions over one accumulator --------------------------------------------------------
class Probe:
    """One evaluation of an expression: the preactivation probe [P, N(, 1, 1)] and a cache, so
    a value used by several ops (STE tricks use x three times) is computed once."""

    def __init__(self, t: torch.Tensor, f64: bool):
        self.t, self.f64, self.cache = t, f64, {}


@dataclass(eq=False)
class Expr:
    node: object  # the graph node this value is (None: the preactivation itself)
    target: object = None
    args: tuple = ()  # Expr operands, constants (already per channel) and plain values
    kwargs: dict = field(default_factory=dict)
    tuple_item: bool = False  # the op returns a tuple; the value is item 0 (native batch norm)
    empty: bool = False  # empty_like/new_empty: uninitialised memory, probed as NaN

    def eval(self, p: Probe) -> torch.Tensor:
        if self.node is None:
            return p.t
        key = id(self)
        if key not in p.cache:
            args = [self._arg(a, p) for a in self.args]
            kwargs = {k: self._arg(v, p) for k, v in self.kwargs.items()}
            out = self.target(*args, **kwargs)
            if self.tuple_item:
                out = out[0]
            if self.empty:
                out = torch.full_like(out, float("nan")) if out.is_floating_point() else out.zero_()
            p.cache[key] = out
        return p.cache[key]

    def _arg(self, a, p: Probe):
        if isinstance(a, Expr):
            return a.eval(p)
        if isinstance(a, (list, tuple)):
            return type(a)(self._arg(x, p) for x in a)
        if p.f64 and isinstance(a, torch.Tensor) and a.dtype == torch.float32:
            return a.double()
        if p.f64 and a is torch.float32:
            return torch.float64
        return a

    def nodes(self) -> list:
        """Every graph node in the expression, operands first."""
        seen, out = set(), []

        def walk(e):
            if not isinstance(e, Expr) or id(e) in seen:
                return
            seen.add(id(e))
            for a in list(e.args) + list(e.kwargs.values()):
                for x in (a if isinstance(a, (list, tuple)) else [a]):
                    walk(x)
            if e.node is not None:
                out.append(e.node)
        walk(self)
        return out


PREACTIVATION = Expr(None)


@dataclass
class Pixels:
    index: torch.Tensor  # ids of the HWC input elements (batch-encoded), shape of the value
    table: torch.Tensor  # [256] what the model computes from each pixel value
    a: float = 1.0  # intended affine real = a * x + b, tracked in float64
    b: float = 0.0
    pad: tuple = (0, 0, 0, 0)  # a pad op on the pixels (top, left, bottom, right), value 0 only
    affine: bool = True  # only affine ops so far (else the table alone says what was done)
    node: object = None  # the last op on the pixels
    nonaffine_node: object = None  # the last op that was not a scaling (e.g. the sign)


@dataclass
class Acc:
    layer: FloatLayer
    ndim: int  # 2 (dense), 3 (conv1d, NCL) or 4 (conv, NCHW): the probe's rank
    probe_f64: bool  # evaluate in float64 (inexact first-layer scaling, scaled weights)
    offset: np.ndarray | None  # per-channel constant added to scale*acc (first layer, zp 0)
    scale: np.ndarray | float = 1.0  # preactivation = scale * acc + offset (per channel)
    expr: Expr = PREACTIVATION
    index: torch.Tensor | None = None  # ids (HWC order of the layer's output) of the value
    node: object = None  # the graph node whose output the value is
    pool_node: object = None  # a max-pool inside the chain, if any
    pre_pool: tuple | None = None  # (expr, node, index) just before that max-pool
    returns_tuple: bool = False
    ignored_output_op: object = None  # softmax / log_softmax after the scores
    layer_node: object = None  # the binary layer's own node


@dataclass
class Bin:
    index: torch.Tensor  # ids (HWC order, batch-encoded) of the activation elements
    shape: tuple  # (H, W, C) of the activation
    pad: tuple = (0, 0, 0, 0)
    pad_value: int = 1
    source: FloatLayer | None = None  # the layer that produced it, while no layout op intervened


def canonical(batch: int, h: int, w: int, c: int, ndim: int = 4) -> torch.Tensor:
    """Ids of an (H, W, C) activation in PyTorch's layout: NCHW, NCL (h = 1) or NC."""
    ids = torch.arange(batch * h * w * c).reshape(batch, h, w, c).permute(0, 3, 1, 2)
    if ndim == 3:
        return ids.reshape(batch, c, h * w)
    if ndim == 2:
        return ids.reshape(batch, c)
    return ids.contiguous()  # like a conv's output, so view() works as it does in the model
