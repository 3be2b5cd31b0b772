"""torch.export graph -> float IR, by symbolic execution of the ATen graph (not our classes).

Every node is either constant (parameters, and ops on constants only: evaluated with torch,
so any weight binarization `where(ge(w, 0), 1, -1)`, `sign`, a custom function... is folded
and then checked to be exactly +-1) or derived from the input. Input-derived values are one of:

  Pixels  the raw uint8 input after elementwise scaling (real = a*x + b) and layout ops
  Acc     a binary layer's integer accumulator followed by a chain of per-channel elementwise
          ops (bias, batch norm, hardtanh, sign-like ops, max-pool)
  Bin     +-1 activations after layout ops (flatten, view, permute, pad, dropout in eval)

When an Acc meets the next layer (or the output), its chain is evaluated by torch on every
attainable accumulator value in every channel (DESIGN.md §2): the result, the layer's
response, is what the integer passes turn into thresholds or scores.
Layout is tracked with index maps: a tensor of element ids pushed through the same layout
ops, so flatten/view/permute orders (NCHW vs NHWC) are read off, not assumed.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..errors import ModelError
from ..ir.float_ir import FloatLayer, FloatModel, Pool
from ..ir.geometry import conv_out, valid_taps

A = torch.ops.aten
_PROBE_CHUNK = 1 << 22  # elements per chain evaluation
# Bounds that keep a hostile graph from exhausting memory (sizes are checked before anything
# of that size is allocated): the input image, any tensor computed from constants or from the
# input's index map, and a layer's response table (channels x attainable accumulator values;
# BinaryNet's 784-4096 first layer needs 0.8e9).
_MAX_INPUT_ELEMENTS = 1 << 22
_MAX_TENSOR_ELEMENTS = 1 << 28
_MAX_RESPONSE_ENTRIES = 1 << 30
# What a graph may call besides ATen operators: the symbolic-shape helpers torch.export emits.
_SYM_CALLS = frozenset([operator.getitem, operator.add, operator.sub, operator.mul,
                        operator.truediv, operator.floordiv, operator.mod, operator.pow,
                        operator.neg, operator.pos, operator.eq, operator.ne, operator.lt,
                        operator.le, operator.gt, operator.ge, operator.and_, operator.or_,
                        operator.lshift, operator.rshift, math.trunc, torch.sym_max, torch.sym_min,
                        torch.sym_ite, torch.sym_not, torch.sym_float, torch.sym_int])


def _opname(node) -> str:
    t = node.target
    return getattr(t, "__name__", str(t))


def _where(node) -> str:
    return f"node {node.name!r} ({_opname(node)})"


def _is_safe_target(target) -> bool:
    """An ATen operator or a symbolic-shape helper: never an arbitrary Python callable (a
    graph from a file names its targets, and the importer runs them on constants)."""
    if isinstance(target, torch._ops.OpOverload):
        return target.namespace == "aten"
    try:
        return target in _SYM_CALLS
    except TypeError:  # unhashable
        return False


def _numel(value) -> int:
    """Elements of every tensor in a (nested) result."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_numel(v) for v in value)
    return 0


class _Batch:
    """The symbolic batch size (from sym_size on an input-derived tensor)."""


@dataclass
class Pixels:
    index: torch.Tensor  # ids of the HWC input elements, shape of the value with batch 1
    table: torch.Tensor  # [256] what the model computes from each pixel value (float32)
    a: float = 1.0  # intended affine real = a * x + b, tracked in float64
    b: float = 0.0
    pad: tuple = (0, 0, 0, 0)  # a pad op on the pixels (top, left, bottom, right), value 0 only


@dataclass
class Acc:
    layer: FloatLayer
    ndim: int  # 2 (dense) or 4 (conv, NCHW)
    probe_f64: bool  # evaluate the chain in float64 (inexact first-layer scaling)
    offset: np.ndarray | None  # per-channel constant added to a*acc (first layer, zero point 0)
    scale: float = 1.0  # preactivation = scale * acc + offset
    chain: list = field(default_factory=list)  # (node, fn) elementwise per channel
    pool_at: int | None = None  # chain position of a max-pool, if any
    pool_node: object = None
    returns_tuple: bool = False


@dataclass
class Bin:
    index: torch.Tensor  # ids (HWC order) of the activation elements, value layout, batch 1
    shape: tuple  # (H, W, C) of the activation
    pad: tuple = (0, 0, 0, 0)
    pad_value: int = 1
    source: FloatLayer | None = None  # the layer that produced it, while no layout op intervened


def _canonical_nchw(h: int, w: int, c: int) -> torch.Tensor:
    return torch.arange(h * w * c).reshape(1, h, w, c).permute(0, 3, 1, 2)


def _is_sym(v) -> bool:
    return isinstance(v, (Pixels, Acc, Bin))


def _flat_args(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat_args(a)
        else:
            yield a


def _subst_batch(v, batch: int):
    if isinstance(v, _Batch):
        return batch
    if isinstance(v, (list, tuple)):
        return type(v)(_subst_batch(x, batch) for x in v)
    return v


_LAYOUT_OPS = {"view", "reshape", "_unsafe_view", "flatten", "permute", "unsqueeze", "squeeze",
               "transpose", "contiguous", "clone", "alias", "detach", "t", "expand"}
_IDENTITY_OPS = {"dropout", "alias", "detach", "clone", "contiguous", "lift_fresh_copy",
                 "feature_dropout"}
_IGNORED = ("_assert", "sym_constrain", "_check", "_functional_assert")


class GraphImporter:
    def __init__(self, ep: torch.export.ExportedProgram, name: str):
        self.ep = ep
        self.name = name
        self.layers: list[FloatLayer] = []
        self.exact_float32 = True
        self.input_shape = None

    # -- entry ---------------------------------------------------------------------------------
    def run(self) -> FloatModel:
        env: dict = {}
        sig = self.ep.graph_signature
        consts = {}
        consts.update({k: v for k, v in self.ep.state_dict.items()})
        consts.update({k: v for k, v in self.ep.constants.items()})
        param_of = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                    **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
        user_inputs = list(sig.user_inputs)
        if len(user_inputs) != 1:
            raise ModelError(f"{self.name}: the model takes {len(user_inputs)} inputs; "
                             "bnn-mcu models take one uint8 image batch")
        result = None
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                if node.name in param_of:
                    env[node] = consts[param_of[node.name]].detach()
                else:
                    env[node] = self._input(node)
            elif node.op == "call_function":
                try:
                    env[node] = self._call(node, env)
                except ModelError:
                    raise
                except Exception as e:  # noqa: BLE001 - a graph from a file can hold anything
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                    raise ModelError(f"{self.name}: {_where(node)}: cannot convert "
                                     f"({type(e).__name__}: {first})") from None
            elif node.op == "output":
                outs = list(_flat_args(node.args))
                if len(outs) != 1:
                    raise ModelError(f"{self.name}: the model returns {len(outs)} outputs; "
                                     "expected one tensor of class scores")
                result = env[outs[0]]
            else:
                raise ModelError(f"{self.name}: {_where(node)}: unsupported node kind {node.op}")
        if not isinstance(result, Acc):
            raise ModelError(f"{self.name}: the output must be the last binary layer's scores "
                             "(binary dense, then batch norm / bias / scale)")
        self._finish_layer(result, output_node=outs[0], last=True)
        return FloatModel(self.input_shape, self.layers, {"name": self.name},
                          exact_float32=self.exact_float32)

    def _input(self, node) -> Pixels:
        val = node.meta.get("val")
        if val is None or val.dtype != torch.uint8:
            raise ModelError(f"{self.name}: the model's input is {getattr(val, 'dtype', '?')}; "
                             "bnn-mcu models take raw uint8 pixels (N x H x W or N x H x W x C) "
                             "and scale them inside the model")
        shape = tuple(int(s) for s in val.shape[1:])
        if len(shape) == 2:
            h, w, c = shape[0], shape[1], 1
        elif len(shape) == 3:
            h, w, c = shape
        else:
            raise ModelError(f"{self.name}: input shape {tuple(val.shape)} is not N x H x W [x C]")
        if min(h, w, c) < 1 or h * w * c > _MAX_INPUT_ELEMENTS:
            raise ModelError(f"{self.name}: input of {h}x{w}x{c} pixels (at most "
                             f"{_MAX_INPUT_ELEMENTS:,} values, each size at least 1)")
        self.input_shape = (h, w, c)
        index = torch.arange(h * w * c).reshape((1,) + shape)
        return Pixels(index, torch.arange(256, dtype=torch.uint8))

    # -- dispatch -------------------------------------------------------------------------------
    def _call(self, node, env):
        if not _is_safe_target(node.target):
            raise ModelError(f"{self.name}: {_where(node)}: calls {str(node.target)[:80]!r}, which "
                             "is not an ATen operator")
        args = [self._lookup(a, env) for a in node.args]
        kwargs = {k: self._lookup(v, env) for k, v in node.kwargs.items()}
        name = _opname(node).split(".")[0]
        syms = [a for a in _flat_args(list(args) + list(kwargs.values())) if _is_sym(a)]
        if name.startswith(_IGNORED):
            return None
        if not syms:
            if any(isinstance(a, _Batch) for a in _flat_args(args)):
                return _Batch() if name.startswith("sym_") else None
            self._check_const_size(node, args, kwargs)
            try:
                return node.target(*args, **kwargs)
            except Exception as e:  # a constant op torch itself cannot run
                raise ModelError(f"{self.name}: {_where(node)}: cannot evaluate ({e})") from None
        if name == "sym_size":
            if args[1] != 0:
                raise ModelError(f"{self.name}: {_where(node)}: only the batch size may be read")
            return _Batch()
        if name == "getitem":
            return self._getitem(node, args)
        x = syms[0]
        if len(syms) > 1:
            raise ModelError(f"{self.name}: {_where(node)}: combines two input-derived tensors "
                             "(branches and skip connections are not supported)")
        if name in ("linear", "conv2d", "mm", "matmul", "addmm"):
            return self._layer(node, name, args, kwargs)
        if isinstance(x, Acc):
            return self._acc_op(node, name, x, args, kwargs)
        if isinstance(x, Pixels):
            return self._pixel_op(node, name, x, args, kwargs)
        return self._bin_op(node, name, x, args, kwargs)

    def _check_const_size(self, node, args, kwargs) -> None:
        """The size of a constant op's result, found on fake tensors (nothing allocated), before
        the op runs for real: `full([10**6, 10**6])` in a file must not fill the memory."""
        from torch._subclasses.fake_tensor import FakeTensorMode

        try:
            with FakeTensorMode(allow_non_fake_inputs=True):
                n = _numel(node.target(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - an op that cannot even be shape-checked
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ModelError(f"{self.name}: {_where(node)}: cannot evaluate ({first})") from None
        if n > _MAX_TENSOR_ELEMENTS:
            raise ModelError(f"{self.name}: {_where(node)}: would compute {n:,} elements (at most "
                             f"{_MAX_TENSOR_ELEMENTS:,})")

    @staticmethod
    def _lookup(a, env):
        if isinstance(a, torch.fx.Node):
            return env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(GraphImporter._lookup(x, env) for x in a)
        return a

    def _getitem(self, node, args):
        x, i = args
        if isinstance(x, Acc) and x.returns_tuple:
            if i != 0:
                raise ModelError(f"{self.name}: {_where(node)}: uses output {i} of batch norm")
            return replace(x, returns_tuple=False, chain=list(x.chain))
        if isinstance(x, (tuple, list)):
            return x[i]
        raise ModelError(f"{self.name}: {_where(node)}: unsupported indexing")

    # -- layout ---------------------------------------------------------------------------------
    def _apply_layout(self, node, name, index, args, kwargs):
        if name in _IDENTITY_OPS or name in ("to", "_to_copy", "type_as"):
            return index
        if name not in _LAYOUT_OPS:
            return None
        rest = _subst_batch(list(args[1:]), 1)
        try:
            out = node.target(index, *rest, **_subst_batch(kwargs, 1))
        except Exception as e:
            raise ModelError(f"{self.name}: {_where(node)}: unsupported reshape ({e})") from None
        if out.numel() > _MAX_TENSOR_ELEMENTS:  # expand() allocates nothing until it is copied
            raise ModelError(f"{self.name}: {_where(node)}: expands the activation to "
                             f"{out.numel():,} elements")
        return out

    def _check_dropout(self, node, name, args):
        if name == "dropout" and len(args) > 2 and args[2]:
            raise ModelError(f"{self.name}: {_where(node)}: dropout in training mode; call "
                             "model.eval() before torch.export")

    # -- pixels -----------------------------------------------------------------------------------
    def _pixel_op(self, node, name, x: Pixels, args, kwargs):
        self._check_dropout(node, name, args)
        idx = self._apply_layout(node, name, x.index, args, kwargs)
        if name in ("to", "_to_copy", "type_as"):
            return replace(x, table=self._table_op(node, x, args, kwargs))
        if idx is not None:
            return replace(x, index=idx)
        if name in ("pad", "constant_pad_nd"):
            return replace(x, pad=self._pad(node, args, real_zero_only=True))
        if name in ("sub", "add", "mul", "div", "rsub", "neg"):
            a, b = x.a, x.b
            other = [v for v in args[:2] if v is not x]
            s = self._scalar(node, other[0]) if other else None
            alpha = float(kwargs.get("alpha", args[2] if len(args) > 2 and name in ("sub", "add", "rsub") else 1))
            if args[0] is not x and name in ("sub", "div", "rsub"):
                raise ModelError(f"{self.name}: {_where(node)}: the input must not be a divisor "
                                 "or subtrahend")
            if name == "sub":
                b -= alpha * s
            elif name == "add":
                b += alpha * s
            elif name == "mul":
                a, b = a * s, b * s
            elif name == "div":
                a, b = a / s, b / s
            elif name == "rsub":
                a, b = -alpha * a, s - alpha * b
            elif name == "neg":
                a, b = -a, -b
            return replace(x, a=a, b=b, table=self._table_op(node, x, args, kwargs))
        raise ModelError(f"{self.name}: {_where(node)}: cannot be applied to the input image "
                         "exactly (allowed: scaling by constants, type casts, reshapes)")

    def _scalar(self, node, v) -> float:
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                raise ModelError(f"{self.name}: {_where(node)}: per-channel input normalization is "
                                 "not supported; scale the input by one constant")
            return float(v.reshape(()).double())
        if isinstance(v, (int, float)):
            return float(v)
        raise ModelError(f"{self.name}: {_where(node)}: unsupported operand {v!r}")

    def _table_op(self, node, x: Pixels, args, kwargs):
        targs = [x.table if a is x else a for a in args]
        tkw = {k: (x.table if v is x else v) for k, v in kwargs.items()}
        return node.target(*targs, **tkw)

    # -- binary activations ---------------------------------------------------------------------
    def _bin_op(self, node, name, x: Bin, args, kwargs):
        self._check_dropout(node, name, args)
        if name in ("to", "_to_copy", "type_as") or name in _IDENTITY_OPS:
            return x
        idx = self._apply_layout(node, name, x.index, args, kwargs)
        if idx is not None:
            return replace(x, index=idx, source=None)
        if name in ("pad", "constant_pad_nd"):
            pad = self._pad(node, args, real_zero_only=False)
            value = args[3] if len(args) > 3 else kwargs.get("value", 0.0)
            if name == "constant_pad_nd":
                value = args[2] if len(args) > 2 else kwargs.get("value", 0.0)
            if value not in (1.0, -1.0, 0.0):
                raise ModelError(f"{self.name}: {_where(node)}: pads binary activations with "
                                 f"{value}; only +1, -1 or 0 are exact")
            return replace(x, pad=pad, pad_value=int(value), source=None)
        if name == "max_pool2d":
            src = x.source
            if src is None or src.pool is not None:
                raise ModelError(f"{self.name}: {_where(node)}: max-pool must directly follow a "
                                 "binary layer's activation")
            k, s = self._pool_args(node, args)
            src.pool = Pool(k, s, None)
            src.trace_nodes[1] = node.name
            h, w, c = x.shape
            ho, wo = conv_out(h, k[0], s[0], 0, 0), conv_out(w, k[1], s[1], 0, 0)
            return Bin(_canonical_nchw(ho, wo, c), (ho, wo, c), source=None)
        raise ModelError(f"{self.name}: {_where(node)}: cannot be applied to binary activations "
                         "exactly")

    def _pad(self, node, args, real_zero_only: bool) -> tuple:
        pads = list(args[1])
        mode = args[2] if len(args) > 2 and isinstance(args[2], str) else "constant"
        if mode != "constant" or len(pads) != 4:
            raise ModelError(f"{self.name}: {_where(node)}: only constant 2-D padding is supported")
        left, right, top, bottom = (int(p) for p in pads)
        if min(pads) < 0:
            raise ModelError(f"{self.name}: {_where(node)}: negative padding (cropping)")
        if real_zero_only:
            value = args[3] if len(args) > 3 else 0.0
            if value not in (0, 0.0, None):
                raise ModelError(f"{self.name}: {_where(node)}: pads the input image with "
                                 f"{value}; only zero padding of the input is supported")
        return (top, left, bottom, right)

    def _pool_args(self, node, args):
        def pair(v, default):
            if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
                v = default
            v = list(v) if isinstance(v, (list, tuple)) else [v]
            return tuple(int(i) for i in (v * 2 if len(v) == 1 else v))
        k = pair(args[1], None)
        s = pair(args[2] if len(args) > 2 else None, k)
        pad = pair(args[3] if len(args) > 3 else 0, 0)
        dil = pair(args[4] if len(args) > 4 else 1, 1)
        ceil = args[5] if len(args) > 5 else False
        if any(pad) or dil != (1, 1) or ceil:
            raise ModelError(f"{self.name}: {_where(node)}: max-pool with padding, dilation or "
                             "ceil_mode is not supported")
        if len(k) != 2 or len(s) != 2 or min(k + s) < 1:
            raise ModelError(f"{self.name}: {_where(node)}: max-pool kernel {k} / stride {s}")
        return k, s

    # -- accumulators -----------------------------------------------------------------------------
    def _acc_op(self, node, name, x: Acc, args, kwargs):
        self._check_dropout(node, name, args)
        if name in _IDENTITY_OPS and name not in ("clone", "contiguous"):
            return x
        if name == "max_pool2d":
            if x.ndim != 4 or x.pool_at is not None:
                raise ModelError(f"{self.name}: {_where(node)}: unsupported max-pool position")
            k, s = self._pool_args(node, args)
            x.layer.pool = Pool(k, s, None)
            return replace(x, pool_at=len(x.chain), pool_node=node, chain=list(x.chain))
        if name in ("batch_norm", "_native_batch_norm_legit_no_training"):
            if name == "batch_norm" and args[5]:
                raise ModelError(f"{self.name}: {_where(node)}: batch norm in training mode; call "
                                 "model.eval() before torch.export")
            return self._chain(node, x, args, kwargs, returns_tuple=name != "batch_norm")
        is_pointwise = isinstance(node.target, torch._ops.OpOverload) and (
            torch.Tag.pointwise in node.target.tags)
        if is_pointwise or name in ("where", "to", "_to_copy", "type_as", "hardtanh", "clamp"):
            return self._chain(node, x, args, kwargs)
        # anything else consumes the activation: finish the layer, continue as binary
        b = self._finish_layer(x, output_node=None, last=False)
        return self._bin_op(node, name, b, args, kwargs)

    def _chain(self, node, x: Acc, args, kwargs, returns_tuple=False):
        # batch norm's parameters are per channel by definition; other constants must broadcast
        # per channel (a spatially varying constant would make channels position-dependent)
        checked = [] if returns_tuple or _opname(node).startswith("batch_norm") else list(args) + list(kwargs.values())
        for a in _flat_args(checked):
            if isinstance(a, torch.Tensor) and a.numel() > 1:
                shape = (1,) * (x.ndim - a.dim()) + tuple(a.shape)
                if len(shape) != x.ndim or any(d != 1 for i, d in enumerate(shape) if i != 1):
                    raise ModelError(f"{self.name}: {_where(node)}: a constant of shape "
                                     f"{tuple(a.shape)} is not per-channel")

        def fn(t, f64, target=node.target, args=args, kwargs=kwargs, me=x):
            def conv(v):
                if v is me:
                    return t
                if isinstance(v, torch.Tensor) and v.is_floating_point() and f64:
                    return v.double()
                if f64 and v is torch.float32:
                    return torch.float64
                return v
            out = target(*[conv(v) for v in args], **{k: conv(v) for k, v in kwargs.items()})
            return out[0] if returns_tuple else out
        return replace(x, chain=list(x.chain) + [(node, fn)], returns_tuple=returns_tuple)

    # -- layers -----------------------------------------------------------------------------------
    def _layer(self, node, name, args, kwargs):
        if name in ("mm", "matmul"):
            x, w_t = args[0], args[1]
            bias = None
            if not isinstance(w_t, torch.Tensor) or w_t.dim() != 2:
                raise ModelError(f"{self.name}: {_where(node)}: the weights must be a constant matrix")
            weight = w_t.t()
        elif name == "addmm":
            bias, x, w_t = args[0], args[1], args[2]
            weight = w_t.t()
        else:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
        if isinstance(x, Acc):
            x = self._finish_layer(x, output_node=None, last=False)
        if not isinstance(weight, torch.Tensor):
            raise ModelError(f"{self.name}: {_where(node)}: the weights depend on the input")
        w = weight.detach()
        bad = ~((w == 1) | (w == -1))
        if bool(bad.any()):
            v = float(w[bad].reshape(-1)[0])
            raise ModelError(f"{self.name}: {_where(node)}: weights are not binary (found {v:g}; "
                             "a binary layer's weights must be exactly +-1, e.g. "
                             "where(w >= 0, 1, -1); torch.sign gives 0 for a zero weight)")
        if bias is not None and not isinstance(bias, torch.Tensor):
            raise ModelError(f"{self.name}: {_where(node)}: the bias depends on the input")
        if name == "conv2d":
            return self._conv(node, x, w, bias, args)
        return self._dense(node, x, w, bias)

    def _pm1(self, w: torch.Tensor) -> np.ndarray:
        return w.to(torch.int8).numpy().astype(np.int8)

    def _dense(self, node, x, w, bias) -> Acc:
        n, f = w.shape
        if isinstance(x, Pixels):
            h, wd, c = self.input_shape
            order = self._flat_order(node, x.index, f)
            weights = np.zeros((n, h * wd * c), dtype=np.int8)
            weights[:, order] = self._pm1(w)
            weights = weights.reshape(n, h, wd, c)
            if any(x.pad):
                raise ModelError(f"{self.name}: {_where(node)}: padding before a dense layer")
            return self._first_layer(node, "dense", (h, wd, c), weights, x, bias, {})
        h, wd, c = x.shape
        if any(x.pad):
            raise ModelError(f"{self.name}: {_where(node)}: padding before a dense layer")
        order = self._flat_order(node, x.index, f)
        weights = np.zeros((n, h * wd * c), dtype=np.int8)
        weights[:, order] = self._pm1(w)
        k = h * wd * c
        acc_values = np.arange(-k, k + 1, 2, dtype=np.int64)
        layer = FloatLayer(node.name, "dense", (h, wd, c), weights.reshape(n, h, wd, c),
                           acc_values, None)
        return self._start_acc(layer, 2, bias, node, scale=1.0, offset=None, f64=False)

    def _flat_order(self, node, index: torch.Tensor, f: int) -> np.ndarray:
        idx = index.reshape(index.shape[0], -1) if index.dim() > 1 else index.reshape(1, -1)
        if idx.shape != (1, f):
            raise ModelError(f"{self.name}: {_where(node)}: expects {f} features but receives "
                             f"a tensor of shape {tuple(index.shape)} (batch 1)")
        order = idx[0].numpy()
        if sorted(order.tolist()) != list(range(f)):
            raise ModelError(f"{self.name}: {_where(node)}: the input's layout is not a permutation "
                             "of the previous layer's output")
        return order

    def _conv(self, node, x, w, bias, args) -> Acc:
        stride = tuple(args[3]) if len(args) > 3 else (1, 1)
        padding = args[4] if len(args) > 4 else (0, 0)
        dilation = tuple(args[5]) if len(args) > 5 else (1, 1)
        groups = args[6] if len(args) > 6 else 1
        stride = stride * 2 if len(stride) == 1 else stride
        if tuple(dilation) not in ((1, 1), (1,)) or groups != 1:
            raise ModelError(f"{self.name}: {_where(node)}: dilated or grouped convolution is "
                             "not supported")
        n, c, kh, kw = w.shape
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            else:  # "same", stride 1: torch pads the extra row/column at the end
                ph, pw = kh - 1, kw - 1
                conv_pad = (ph // 2, pw // 2, ph - ph // 2, pw - pw // 2)
                padding = None
        if padding is not None:
            padding = tuple(padding) * 2 if len(padding) == 1 else tuple(padding)
            conv_pad = (padding[0], padding[1], padding[0], padding[1])
        weights = self._pm1(w).transpose(0, 2, 3, 1).copy()  # [N, kh, kw, C]
        geo = dict(kernel=(kh, kw), stride=tuple(int(s) for s in stride))
        if min(kh, kw) < 1 or len(geo["stride"]) != 2 or min(geo["stride"]) < 1 or \
                min(conv_pad) < 0:
            raise ModelError(f"{self.name}: {_where(node)}: convolution kernel {kh}x{kw}, "
                             f"stride {geo['stride']}, padding {conv_pad}")
        if isinstance(x, Pixels):
            h, wd, cin = self.input_shape
            self._check_nchw(node, x.index, (h, wd, cin), c)
            pad = tuple(p + q for p, q in zip(x.pad, conv_pad))
            return self._first_layer(node, "conv", (h, wd, cin), weights, x, bias,
                                     dict(geo, padding=pad))
        h, wd, cin = x.shape
        self._check_nchw(node, x.index, x.shape, c)
        if any(x.pad) and any(conv_pad):
            raise ModelError(f"{self.name}: {_where(node)}: both an explicit pad and the conv's "
                             "own padding; use one")
        if any(x.pad):
            pad, pad_value = x.pad, x.pad_value
        else:
            pad, pad_value = conv_pad, 0
        if not any(pad):
            pad_value = 1
        k = kh * kw * cin
        if pad_value == 0:
            acc_values = self._zero_pad_domain((h, wd), (kh, kw), geo["stride"], pad, cin)
        else:
            acc_values = np.arange(-k, k + 1, 2, dtype=np.int64)
        layer = FloatLayer(node.name, "conv", (h, wd, cin), weights, acc_values, None,
                           padding=pad, pad_value=pad_value, **geo)
        return self._start_acc(layer, 4, bias, node, scale=1.0, offset=None, f64=False)

    @staticmethod
    def _zero_pad_domain(hw, kernel, stride, pad, cin) -> np.ndarray:
        """Attainable dots when padded taps are skipped: K_valid varies with the position."""
        valid = valid_taps(hw, kernel, stride, pad)
        counts = np.unique(valid.reshape(valid.shape[0], valid.shape[1], -1).sum(-1))
        vals = set()
        for v in counts:
            kv = int(v) * cin
            vals.update(range(-kv, kv + 1, 2))
        return np.array(sorted(vals), dtype=np.int64)

    def _check_nchw(self, node, index, shape, c):
        h, w, cin = shape
        if c != cin or index.dim() != 4 or not torch.equal(index, _canonical_nchw(h, w, cin)):
            raise ModelError(f"{self.name}: {_where(node)}: the conv input is not the NCHW view of "
                             f"the {h}x{w}x{cin} activation (layout {tuple(index.shape)})")

    def _first_layer(self, node, kind, in_shape, weights, x: Pixels, bias, geo) -> Acc:
        """uint8 x binary: acc = sum w*(x - zp); preactivation = a*acc (+ per-channel b*sum(w))."""
        table = x.table
        if not table.is_floating_point():
            raise ModelError(f"{self.name}: {_where(node)}: the input reaches the first layer "
                             "as integers; convert it to float inside the model")
        a, b = x.a, x.b
        if a <= 0:
            raise ModelError(f"{self.name}: {_where(node)}: the input scaling must be increasing")
        pixels = np.arange(256, dtype=np.float64)
        t = table.double().numpy()
        if not np.allclose(t, a * pixels + b, rtol=1e-6, atol=1e-6 * abs(a)):
            raise ModelError(f"{self.name}: {_where(node)}: could not follow the input scaling")
        zp_real = -b / a
        zp = int(round(zp_real))
        integral = abs(zp_real - zp) < 1e-9 and 0 <= zp <= 255
        n = weights.shape[0]
        taps = int(np.prod(weights.shape[1:]))
        padded = any(geo.get("padding", (0, 0, 0, 0)))
        if integral:
            offset = None
        else:
            if padded:
                raise ModelError(f"{self.name}: {_where(node)}: zero padding of an input scaled as "
                                 f"{a:g}*x{b:+g} pads with pixel value {zp_real:g}, not an integer; "
                                 "scale the input as (x - zp) * s with an integer zp")
            zp = 0
            offset = b * weights.reshape(n, -1).sum(axis=1).astype(np.float64)
        # Exact in float32 when every scaled pixel and every partial sum is a float32 integer
        # multiple of one power of two (e.g. (x - 128) / 128).
        exact = False
        for m in range(0, 31):
            q = t * 2.0**m
            if np.all(q == np.round(q)) and np.all(t == np.float32(a * pixels + b)):
                exact = float(np.abs(q).max()) * taps < 2**24 and (offset is None)
                break
        if not exact:
            self.exact_float32 = False
        maxdev = max(zp, 255 - zp)
        bound = taps * maxdev
        acc_values = np.arange(-bound, bound + 1, dtype=np.int64)
        layer = FloatLayer(node.name, kind, in_shape, weights, acc_values, None,
                           uint8_input=True, zero_point=zp, **geo)
        return self._start_acc(layer, 2 if kind == "dense" else 4, bias, node, scale=a,
                               offset=offset, f64=not exact)

    def _start_acc(self, layer, ndim, bias, node, scale, offset, f64) -> Acc:
        entries = layer.weights.shape[0] * len(layer.acc_values)
        if entries > _MAX_RESPONSE_ENTRIES:
            raise ModelError(f"{self.name}: {_where(node)}: {layer.weights.shape[0]:,} channels x "
                             f"{len(layer.acc_values):,} accumulator values is too large a layer to "
                             f"convert exactly (at most {_MAX_RESPONSE_ENTRIES:,})")
        layer.response = np.zeros((layer.weights.shape[0], 0), dtype=np.int8)  # channel count
        layer.trace_nodes = [None, None]
        acc = Acc(layer, ndim, f64, offset, scale)
        if bias is not None:
            b = bias.detach()
            shape = (1, -1) + (1,) * (ndim - 2)

            def add_bias(t, f64, b=b, shape=shape):
                return t + (b.double() if f64 else b).reshape(shape)
            acc.chain.append((node, add_bias))
        return acc

    # -- evaluating a layer's response -----------------------------------------------------------
    def _probe(self, x: Acc, values: np.ndarray) -> torch.Tensor:
        """Preactivations for accumulator values [P] in every channel: [P, N(, 1, 1)]."""
        n = x.layer.weights.shape[0]
        pre = x.scale * values.astype(np.float64)[:, None] + (
            x.offset[None, :] if x.offset is not None else np.zeros((1, n)))
        t = torch.from_numpy(pre if x.probe_f64 else pre.astype(np.float32))
        return t.reshape(t.shape + (1,) * (x.ndim - 2))

    def _chunks(self, x: Acc, values: np.ndarray, upto: int | None = None):
        """Yield the chain's output [N, chunk] over the accumulator values, chunk by chunk."""
        chain = x.chain if upto is None else x.chain[:upto]
        n = x.layer.weights.shape[0]
        step = max(1, _PROBE_CHUNK // max(1, n))
        for i in range(0, len(values), step):
            t = self._probe(x, values[i:i + step])
            for node, fn in chain:
                try:
                    t = fn(t, x.probe_f64)
                except Exception as e:
                    raise ModelError(f"{self.name}: {_where(node)}: cannot evaluate on the "
                                     f"accumulator range ({e})") from None
            yield t.reshape(t.shape[0], n).T

    def _direction(self, x: Acc, values: np.ndarray) -> tuple[np.ndarray, bool]:
        """Per channel +1/-1: the pre-pool part is non-decreasing / non-increasing in acc;
        and whether that part already outputs only +-1 (the pool acts on binary values)."""
        inc = dec = prev = None
        binary = True
        for part in self._chunks(x, values, upto=x.pool_at):
            binary = binary and bool(((part == 1) | (part == -1)).all())
            p = part.double()
            if prev is not None:
                p = torch.cat([prev, p], dim=1)
            d = p[:, 1:] - p[:, :-1]
            ci, cd = (d >= 0).all(dim=1), (d <= 0).all(dim=1)
            inc, dec = (ci, cd) if inc is None else (inc & ci, dec & cd)
            prev = p[:, -1:]
        bad = ~(inc | dec)
        if bool(bad.any()):
            c = int(torch.nonzero(bad)[0])
            raise ModelError(f"{self.name}: {_where(x.pool_node)}: channel {c} before the max-pool "
                             "is not monotone in the accumulator, so pooling cannot move after "
                             "the sign")
        return np.where(inc.numpy(), 1, -1).astype(np.int8), binary

    def _hidden_response(self, x: Acc, last_node) -> np.ndarray:
        """int8 +-1 [N, P]; anything but exactly +-1 is an error naming the node."""
        layer, parts, done = x.layer, [], 0
        for part in self._chunks(x, layer.acc_values):
            ok = (part == 1) | (part == -1)
            if not bool(ok.all()):
                c, p = (int(v[0]) for v in torch.nonzero(~ok, as_tuple=True))
                where = _where(last_node) if last_node is not None else f"layer {layer.name!r}"
                raise ModelError(f"{self.name}: {where}: outputs {float(part[c, p]):g} for "
                                 f"accumulator {layer.acc_values[done + p]} in channel {c}; a hidden "
                                 "binary layer must output exactly +-1 (a sign with sign(0) = +1 "
                                 "after batch norm)")
            parts.append(part.to(torch.int8).numpy())
            done += part.shape[1]
        return np.concatenate(parts, axis=1)

    def _finish_layer(self, x: Acc, output_node, last: bool):
        layer = x.layer
        last_node = x.chain[-1][0] if x.chain else None
        pre_binary = False
        if x.pool_at is not None:
            layer.pool.pre_direction, pre_binary = self._direction(x, layer.acc_values)
        if last:
            layer.response = np.concatenate([p.double().numpy() for p in
                                             self._chunks(x, layer.acc_values)], axis=1)
            layer.is_output = True
            layer.trace_nodes = [output_node.name if output_node is not None else None, None]
            self.layers.append(layer)
            return None
        layer.response = self._hidden_response(x, last_node)
        trace = last_node.name if last_node is not None else None
        if x.pool_at is not None and x.pool_at == len(x.chain):
            # the pool is the last op: its output is the pooled +-1 tensor, and the tensor
            # before it is the per-position activation when that is already binary
            layer.trace_nodes = [trace if pre_binary else None, x.pool_node.name]
        elif x.pool_at is not None:
            layer.trace_nodes = [None, trace]
        else:
            layer.trace_nodes = [trace, None]
        self.layers.append(layer)
        h, w, c = self._out_shape(layer, x.ndim)
        return Bin(_canonical_nchw(h, w, c) if x.ndim == 4 else torch.arange(c).reshape(1, c),
                   (h, w, c), source=layer if x.pool_at is None else None)

    @staticmethod
    def _out_shape(layer: FloatLayer, ndim: int) -> tuple:
        n = layer.weights.shape[0]
        if ndim == 2:
            return (1, 1, n)
        h, w, _ = layer.in_shape
        pt, pl, pb, pr = layer.padding
        ho = conv_out(h, layer.kernel[0], layer.stride[0], pt, pb)
        wo = conv_out(w, layer.kernel[1], layer.stride[1], pl, pr)
        if layer.pool is not None:
            ho = conv_out(ho, layer.pool.kernel[0], layer.pool.stride[0], 0, 0)
            wo = conv_out(wo, layer.pool.kernel[1], layer.pool.stride[1], 0, 0)
        return (ho, wo, n)


def import_program(ep: torch.export.ExportedProgram, name: str = "model") -> FloatModel:
    return GraphImporter(ep, name).run()
