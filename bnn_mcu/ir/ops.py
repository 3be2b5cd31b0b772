"""The integer IR: what runs on the device, op by op (DESIGN.md §2).

A model is a straight chain of ops; op i reads op i-1's output (op 0 reads the uint8 image).
Activations are NHWC; binary activations are packed along channels into uint32 words
(`bits.py`); a dense layer after a conv reads the H x W x words buffer as one flat vector whose
per-pixel tail bits are 0 on both sides, so no repacking is needed.

Every op with weights ends in one output stage:
  Threshold: out_bit[c] = acc[c] < T[c]   (bit 1 = -1; BN, bias, gamma<0 flips folded in)
  Scores:    score[c]   = M[c] * acc[c] + B[c]   (int32, the converter proves no overflow)

Accumulators (exact integers):
  binary ops:   acc = sum over valid taps of x*w, x and w in {-1,+1}
                    = K - 2*popcount(x XOR w) when every tap is valid
  uint8 ops:    acc = sum over valid taps of w * (x - zero_point), x the raw uint8 pixel
  uint8 convs with half_zero_point (zero point zero_point + 0.5, e.g. 127.5 for x/127.5 - 1):
                acc = sum over valid taps of w * (2x - (2 zero_point + 1)), doubled to stay integral
Padding of binary convs: pad_value +1 (bit 0), -1 (bit 1) or 0 (the tap is skipped);
uint8 convs skip padded taps (= real-valued zero padding when x - zero_point is the input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Union

import numpy as np

from .bits import words_for
from .geometry import conv_out, pool_out_hw

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


@dataclass
class Threshold:
    thresholds: np.ndarray  # int32 [N]


@dataclass
class Scores:
    mult: np.ndarray  # int32 [N]
    bias: np.ndarray  # int32 [N]


OutputStage = Union[Threshold, Scores]


@dataclass
class Op:
    name: str
    in_shape: tuple  # (H, W, C) of the input this op reads

    kind = "op"
    #: Fields added after .bnn version 1, name -> default (see bnnfile.LATER_VERSION).
    LATER_FIELDS: ClassVar[dict] = {}

    # -- shapes ---------------------------------------------------------------------------
    @property
    def out_shape(self) -> tuple:
        raise NotImplementedError

    @property
    def out_is_scores(self) -> bool:
        return isinstance(getattr(self, "out", None), Scores)

    @property
    def out_bytes(self) -> int:
        """Bytes of this op's output buffer on the device."""
        h, w, c = self.out_shape
        if self.out_is_scores:
            return 4 * h * w * c
        return 4 * h * w * words_for(c)

    @property
    def out_channels(self) -> int:
        return self.out_shape[2]

    @property
    def c_function(self) -> str:
        """The runtime kernel that executes this op (emulator twin: the same name minus bnn_)."""
        return f"bnn_{self.kind}_{'s32' if self.out_is_scores else 'b1'}"

    # -- cost -----------------------------------------------------------------------------
    @property
    def macs(self) -> int:
        """Multiply-accumulates (binary or int8) per inference."""
        return 0

    @property
    def param_bytes(self) -> int:
        """Bytes of constant data (weights, thresholds, masks) in flash."""
        return 0

    def tensors(self) -> dict[str, np.ndarray]:
        """Every array the op carries, by attribute name (for the file format and hashing)."""
        out = {}
        for k, v in vars(self).items():
            if isinstance(v, np.ndarray):
                out[k] = v
        stage = getattr(self, "out", None)
        if stage is not None:
            for k, v in vars(stage).items():
                out[f"out.{k}"] = v
        return out


def _stage_bytes(out: OutputStage) -> int:
    if isinstance(out, Threshold):
        return 4 * len(out.thresholds)
    return 4 * len(out.mult) + 4 * len(out.bias)


@dataclass
class _Conv(Op):
    kernel: tuple = (3, 3)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)  # top, left, bottom, right

    @property
    def out_shape(self) -> tuple:
        h, w, _ = self.in_shape
        kh, kw = self.kernel
        sh, sw = self.stride
        pt, pl, pb, pr = self.padding
        return (conv_out(h, kh, sh, pt, pb), conv_out(w, kw, sw, pl, pr), self.weights.shape[0])

    @property
    def macs(self) -> int:
        ho, wo, n = self.out_shape
        return ho * wo * n * self.kernel[0] * self.kernel[1] * self.in_shape[2]


def u8_tap_bound(zero_point: int, half_zero_point: bool = False) -> int:
    """Largest |contribution| of one uint8 tap to the accumulator: |x - zp| for x in 0..255, or
    |2x - (2 zp + 1)| with a half zero point (one implementation: the int32 overflow proof and
    the importer's accumulator domain)."""
    if half_zero_point:
        return max(2 * zero_point + 1, 509 - 2 * zero_point)
    return max(zero_point, 255 - zero_point)


@dataclass
class DenseU8(Op):
    """First layer, dense: uint8 pixels (flattened HWC) x binary weights."""

    weights: np.ndarray = None  # uint32 [N, words_for(K)], K = H*W*C
    zero_point: int = 0
    out: OutputStage = None
    kind = "dense_u8"

    @property
    def in_features(self) -> int:
        h, w, c = self.in_shape
        return h * w * c

    @property
    def out_shape(self) -> tuple:
        return (1, 1, self.weights.shape[0])

    @property
    def macs(self) -> int:
        return self.in_features * self.weights.shape[0]

    @property
    def param_bytes(self) -> int:
        return self.weights.nbytes + _stage_bytes(self.out)


@dataclass
class Conv2dU8(_Conv):
    """First layer, conv: uint8 HWC pixels x binary weights; padded taps are skipped.

    half_zero_point: the zero point is zero_point + 0.5 (an input scaled as x/127.5 - 1 pads
    with pixel value 127.5) and the accumulator is doubled: acc = sum over valid taps of
    w * (2x - (2 zero_point + 1))."""

    weights: np.ndarray = None  # uint32 [N, words_for(kh*kw*C)], taps in (ky, kx, c) order
    zero_point: int = 0
    out: OutputStage = None
    half_zero_point: bool = False
    kind = "conv2d_u8"
    LATER_FIELDS: ClassVar[dict] = {"half_zero_point": False}

    @property
    def c_function(self) -> str:
        # its own kernel (file), so the integral one carries no code for it
        return "bnn_conv2d_u8_half_b1" if self.half_zero_point else "bnn_conv2d_u8_b1"

    @property
    def param_bytes(self) -> int:
        return self.weights.nbytes + _stage_bytes(self.out)


@dataclass
class BDense(Op):
    """Binary dense: packed bits (the whole input buffer as one vector) x binary weights."""

    weights: np.ndarray = None  # uint32 [N, in_words]
    out: OutputStage = None
    kind = "bdense"

    @property
    def in_bits(self) -> int:
        h, w, c = self.in_shape
        return h * w * c

    @property
    def in_words(self) -> int:
        h, w, c = self.in_shape
        return h * w * words_for(c)

    @property
    def out_shape(self) -> tuple:
        return (1, 1, self.weights.shape[0])

    @property
    def macs(self) -> int:
        return self.in_bits * self.weights.shape[0]

    @property
    def param_bytes(self) -> int:
        return self.weights.nbytes + _stage_bytes(self.out)


@dataclass
class BConv2d(_Conv):
    """Binary conv on packed NHWC bits."""

    weights: np.ndarray = None  # uint32 [N, kh, kw, words_for(C)]
    pad_value: int = 1  # +1, -1 or 0
    out: OutputStage = None
    kind = "bconv2d"

    @property
    def param_bytes(self) -> int:
        return self.weights.nbytes + _stage_bytes(self.out)


@dataclass
class MaxPool2d(Op):
    """Max-pool on packed bits: AND over the window (OR where or_mask has the channel's bit).

    Padded taps are skipped (PyTorch pads max-pool with -inf); ceil_mode is extra bottom/right
    padding (geometry.pool_padding). Every window holds at least one real tap (padding < kernel).
    """

    kernel: tuple = (2, 2)
    stride: tuple = (2, 2)
    or_mask: np.ndarray = None  # uint32 [words_for(C)]
    padding: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    kind = "maxpool2d"
    LATER_FIELDS: ClassVar[dict] = {"padding": (0, 0, 0, 0)}

    @property
    def out_shape(self) -> tuple:
        h, w, c = self.in_shape
        return (*pool_out_hw((h, w), self.kernel, self.stride, self.padding), c)

    @property
    def param_bytes(self) -> int:
        return self.or_mask.nbytes


@dataclass
class BinarizeU8(Op):
    """A binarized input image: uint8 pixels -> packed bits, bit 1 (= -1) where the pixel is
    below the threshold (FINN's LFC: the sign of the scaled pixel). Same H x W x C."""

    threshold: int = 128  # 0..256: pixels < threshold are -1
    kind = "binarize_u8"

    @property
    def out_shape(self) -> tuple:
        return tuple(self.in_shape)


OP_TYPES = {cls.kind: cls for cls in (DenseU8, Conv2dU8, BDense, BConv2d, MaxPool2d, BinarizeU8)}


@dataclass
class IntModel:
    """An integer-only model: the uint8 input shape, the op chain, and what it came from."""

    input_shape: tuple  # (H, W, C), uint8
    ops: list
    num_classes: int
    meta: dict = field(default_factory=dict)
    # from the importer, not stored in .bnn files: the source tensors' layouts (per-layer
    # parity against PyTorch) and how each source node was read (inspect --graph)
    trace_layouts: dict = field(default_factory=dict, compare=False, repr=False)
    reading: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def input_bytes(self) -> int:
        h, w, c = self.input_shape
        return h * w * c

    @property
    def param_bytes(self) -> int:
        return sum(op.param_bytes for op in self.ops)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)
