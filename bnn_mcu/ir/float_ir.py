"""The float IR: a source model's layers, described without any framework.

The importer (bnn_mcu/nn/importer.py) turns a graph into these layers. Instead of carrying
batch-norm parameters, each layer carries its *response*: the source model's own output
for every attainable accumulator value, computed by the source framework exactly as it
computes it at inference (same ops, same float32 arithmetic). The passes (passes.py) read
thresholds, flips, pool modes and integer score affines off that table, so integer inference
agrees with the source model on every input, not just on average.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import pool_out_hw


@dataclass
class Pool:
    kernel: tuple
    stride: tuple
    # per channel: +1 when the part of the activation before the pool is non-decreasing in the
    # accumulator, -1 when non-increasing, 0 when the pool acts on the final +-1 values
    pre_direction: np.ndarray | None = None
    # top, left, bottom, right: padded taps are skipped (PyTorch pads max-pool with -inf);
    # ceil_mode is extra bottom/right padding (geometry.pool_padding)
    padding: tuple = (0, 0, 0, 0)

    def out_hw(self, in_hw: tuple) -> tuple:
        return pool_out_hw(in_hw, self.kernel, self.stride, self.padding)


@dataclass
class FloatLayer:
    name: str  # the source node that produced the layer's accumulator (e.g. "conv2d_1")
    kind: str  # "dense" or "conv"
    in_shape: tuple  # (H, W, C) of the layer input (NHWC)
    weights: np.ndarray  # int8 +-1: dense [N, H, W, C] (input order HWC), conv [N, kh, kw, C]
    acc_values: np.ndarray  # int64 [P], ascending: every attainable accumulator value
    response: np.ndarray  # [N, P]: int8 +-1 output (hidden) or float64 score (last layer)
    uint8_input: bool = False  # first layer: acc = sum w * (x - zero_point) on raw pixels
    zero_point: int = 0
    half_zero_point: bool = False  # conv: zero point zero_point + 0.5, acc = sum w * (2x - 2zp - 1)
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    pad_value: int = 1  # binary convs: +1, -1, 0 (skip)
    pool: Pool | None = None
    # source nodes whose values the integer layers reproduce (for per-layer parity):
    # [before pool, after pool]; None where the source has no such tensor
    trace_nodes: list = field(default_factory=lambda: [None, None])
    is_output: bool = False


@dataclass
class FloatModel:
    input_shape: tuple  # (H, W, C) uint8
    layers: list
    meta: dict = field(default_factory=dict)
    # first-layer preactivations are exact in float32 (see DESIGN.md §2); when False the
    # response was computed in float64 and float32 PyTorch may differ on rare bits
    exact_float32: bool = True
    # traced source node -> (element ids in HWC order, (H, W, C)): how to read its tensor when
    # the model permuted or flattened it (e.g. to NHWC) before the next layer
    trace_layouts: dict = field(default_factory=dict)
    # source node name -> how the importer read it (`bnn-mcu inspect --graph`)
    reading: dict = field(default_factory=dict)
    # a binarized input image: (threshold, traced node): pixels below the threshold are -1
    binarized_input: tuple | None = None
