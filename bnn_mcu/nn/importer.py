"""torch.export graph -> float IR, by symbolic execution of the ATen graph (not our classes).

Every node is either constant (parameters, and ops on constants only: evaluated with torch,
so any weight binarization `where(ge(w, 0), 1, -1)`, `sign`, a custom function, a masked
write... is folded and then checked to be exactly +-1, or +-alpha per output channel) or
derived from the input. Input-derived values are one of:

  Pixels  the raw 8-bit input after elementwise scaling (real = a*x + b) and layout ops
  Acc     a binary layer's integer accumulator followed by per-position ops: bias, batch norm,
          hardtanh, sign idioms (`sign`, `where`, `ones_like`, masked writes, STE tricks such
          as `x + (sign(x) - x).detach()`), max-pool, layout ops. Its value is an expression
          (a small DAG over the accumulator), so ops that combine values of the same
          accumulator are followed too.
  Bin     +-1 activations after layout ops (flatten, view, permute, pad, dropout in eval)

When an Acc meets the next layer (or the output), its expression is evaluated by torch on every
attainable accumulator value in every channel (DESIGN.md §2): the result, the layer's
response, is what the integer passes turn into thresholds or scores.
Layout is tracked with index maps: a tensor of element ids pushed through the same layout
ops, so flatten/view/permute orders (NCHW vs NHWC) are read off, not assumed. Ids encode the
batch position too (id = b * size + HWC id), so a program exported with a fixed batch (its
reshapes name that batch) is followed, and a reshape that mixes images is caught.
"""

from __future__ import annotations

import math
import operator
from dataclasses import replace

import numpy as np
import torch

from ..errors import ModelError
from ..ir.float_ir import FloatLayer, FloatModel, Pool
from ..ir.geometry import conv_out, pool_padding, valid_taps
from ..ir.ops import u8_tap_bound
from .graph_values import (PREACTIVATION, Acc, Bin, Pixels, Batch, Expr, Fresh, Probe,
                           canonical)
from .program_input import program_input

A = torch.ops.aten
_PROBE_CHUNK = 1 << 22  # elements per chain evaluation
# Bounds that keep a hostile graph from exhausting memory (sizes are checked before anything
# of that size is allocated): the input image, any tensor computed from constants or from the
# input's index map, and a layer's response table (channels x attainable accumulator values;
# BinaryNet's 784-4096 first layer needs 0.8e9).
_MAX_INPUT_ELEMENTS = 1 << 22
_MAX_TENSOR_ELEMENTS = 1 << 28
_MAX_RESPONSE_ENTRIES = 1 << 30
# How far -b/a of an input scaling a*x + b may be from an integer (or an integer + 0.5) to be
# read as that zero point: the float64 rounding of a and b read from the graph.
_ZP_TOLERANCE = 1e-9
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


def _mutates_first_arg(target) -> bool:
    """An in-place ATen op (`index_put_`, `fill_`, ...): it writes into its first argument."""
    schema = getattr(target, "_schema", None)
    if schema is None or not schema.arguments:
        return False
    info = schema.arguments[0].alias_info
    return bool(info is not None and info.is_write)


def _functional(target):
    """The out-of-place twin of an in-place op (`index_put_` -> `index_put`): probes are shared
    between the branches of an expression and must not be written into."""
    if not _mutates_first_arg(target):
        return target
    base = target._schema.name.split("::")[-1].rstrip("_")
    try:
        return getattr(getattr(A, base), target._overloadname)
    except AttributeError:
        return None


def _is_sym(v) -> bool:
    return isinstance(v, (Pixels, Acc, Bin))


def _flat_args(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat_args(a)
        else:
            yield a


def _subst_batch(v, batch: int):
    if isinstance(v, Batch):
        return batch
    if isinstance(v, (list, tuple)):
        return type(v)(_subst_batch(x, batch) for x in v)
    return v


_LAYOUT_OPS = {"view", "reshape", "_unsafe_view", "flatten", "permute", "unsqueeze", "squeeze",
               "transpose", "contiguous", "clone", "alias", "detach", "t", "expand", "movedim",
               "unflatten", "view_as", "reshape_as", "expand_as"}
_IDENTITY_OPS = {"dropout", "alias", "detach", "clone", "contiguous", "lift_fresh_copy",
                 "feature_dropout", "alpha_dropout", "feature_alpha_dropout"}
_CASTS = ("to", "_to_copy", "type_as")
_IGNORED = ("_assert", "sym_constrain", "_check", "_functional_assert")
# ops whose result depends only on the shape (and dtype) of their input-derived operand
_LIKE_OPS = {"ones_like", "zeros_like", "empty_like", "full_like"}
_NEW_OPS = {"new_ones", "new_zeros", "new_empty", "new_full"}
# per-position ops that the pointwise tag does not cover
_ELEMENTWISE = {"where", "hardtanh", "clamp", "clip", "masked_fill", "index_put", "fill",
                "copy", "heaviside", "hardtanh_", "masked_fill_", "index_put_", "fill_", "copy_",
                "clamp_", "clip_"}
_CREATION = {"empty", "zeros", "ones", "full", "new_empty", "new_zeros", "new_ones", "new_full",
             "empty_like", "zeros_like", "ones_like", "full_like", "empty_strided"}
_OUTPUT_ONLY = {"softmax", "_softmax", "log_softmax", "_log_softmax"}
_POOLS = {"max_pool2d", "max_pool2d_with_indices", "max_pool1d", "max_pool1d_with_indices"}
_LAYERS = ("linear", "conv2d", "conv1d", "convolution", "mm", "matmul", "addmm")
_AVERAGES = {"avg_pool2d", "avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool1d", "mean",
             "sum", "_adaptive_avg_pool2d"}


class GraphImporter:
    def __init__(self, ep: torch.export.ExportedProgram, name: str):
        self.ep = ep
        self.name = name
        self.layers: list[FloatLayer] = []
        self.exact_float32 = True
        self.unscaled_float_input = False  # float input, no scaling: raw 0..255 (say so)
        self.input_shape = None
        self.dynamic = True
        self.batch = 1  # the batch the index maps carry (the exported one when it is fixed)
        self.binarized = None  # (threshold, traced node) of a binarized input image
        self.trace_layouts: dict = {}  # traced node -> (ids in HWC order, (H, W, C))
        self.reading: dict = {}  # node name -> what the importer made of it (inspect --graph)

    def _err(self, node, why: str) -> ModelError:
        return ModelError(f"{self.name}: {_where(node)}: {why}")

    # -- entry ---------------------------------------------------------------------------------
    def run(self) -> FloatModel:
        env: dict = {}
        sig = self.ep.graph_signature
        consts = {}
        consts.update({k: v for k, v in self.ep.state_dict.items()})
        consts.update({k: v for k, v in self.ep.constants.items()})
        param_of = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                    **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
        if len(list(sig.user_inputs)) != 1:
            raise ModelError(f"{self.name}: the model takes {len(list(sig.user_inputs))} inputs; "
                             "bnn-mcu models take one uint8 image batch")
        result = None
        live = self._live_nodes()
        for node in self.ep.graph.nodes:
            if node.op == "call_function" and node not in live:
                self.reading[node.name] = "unused (the output does not depend on it)"
                continue
            if node.op == "placeholder":
                if node.name in param_of:
                    env[node] = consts[param_of[node.name]].detach().clone()
                    self.reading[node.name] = "constant"
                else:
                    env[node] = self._input(node)
                    self.reading[node.name] = "input image"
            elif node.op == "call_function":
                try:
                    env[node] = self._call(node, env)
                except ModelError:
                    raise
                except Exception as e:  # noqa: BLE001 - a graph from a file can hold anything
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                    raise self._err(node, f"cannot convert ({type(e).__name__}: {first})") from None
                if _mutates_first_arg(node.target) and isinstance(node.args[0], torch.fx.Node):
                    env[node.args[0]] = env[node]  # later readers of the buffer see the write
                self.reading.setdefault(node.name, self._describe(env[node]))
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
                             "(binary dense, then batch norm / bias / scale); it is "
                             f"{self._describe(result)}")
        self._finish_layer(result, last=True)
        meta = {"name": self.name}
        if result.ignored_output_op is not None:  # inspect says so
            meta["ignored_output_op"] = _opname(result.ignored_output_op).split(".")[0].lstrip("_")
        if self.unscaled_float_input:
            meta["unscaled_float_input"] = True
        return FloatModel(self.input_shape, self.layers, meta,
                          exact_float32=self.exact_float32, trace_layouts=self.trace_layouts,
                          reading=self.reading, binarized_input=self.binarized)

    def _live_nodes(self) -> set:
        """Nodes the output depends on, with in-place writes into them (a masked write
        `out[m] = 1` updates `out` without being its user). Dead branches, such as XNOR-Net's
        unused mean(|x|) output, are not read at all."""
        live: set = set()
        todo = [n for n in self.ep.graph.nodes if n.op == "output"]
        changed = True
        while changed:
            while todo:
                n = todo.pop()
                if n in live:
                    continue
                live.add(n)
                todo.extend(a for a in _flat_args(list(n.args) + list(n.kwargs.values()))
                            if isinstance(a, torch.fx.Node))
            writers = [n for n in self.ep.graph.nodes if n not in live and n.op == "call_function"
                       and _mutates_first_arg(n.target) and n.args and n.args[0] in live]
            todo.extend(writers)
            changed = bool(writers)
        return live

    @staticmethod
    def _describe(v) -> str:
        if isinstance(v, Pixels):
            return f"input scaling: {v.a:.6g}*x{v.b:+.6g}"
        if isinstance(v, Acc):
            return f"per-position op after layer {v.layer.name!r}"
        if isinstance(v, Bin):
            return "binary activations: reshape / padding"
        if v is None or isinstance(v, (Batch, int)):
            return "shape check"
        return "constant, folded (weights, their binarization, parameters)"

    def _input(self, node) -> Pixels:
        spec = program_input(self.ep, self.name)
        h, w, c = spec.hwc
        if min(h, w, c) < 1 or h * w * c > _MAX_INPUT_ELEMENTS:
            raise ModelError(f"{self.name}: input of {h}x{w}x{c} pixels (at most "
                             f"{_MAX_INPUT_ELEMENTS:,} values, each size at least 1)")
        self.input_shape = (h, w, c)
        self.batch = spec.static_batch or 1
        self.dynamic = spec.static_batch is None
        if self.batch * h * w * c > _MAX_TENSOR_ELEMENTS:
            raise ModelError(f"{self.name}: exported with a batch of {self.batch}; export with a "
                             "smaller example batch")
        self._input_is_float = spec.dtype.is_floating_point
        index = torch.arange(self.batch * h * w * c).reshape((self.batch,) + spec.sample_shape)
        return Pixels(index, torch.arange(256, dtype=torch.uint8).to(spec.dtype))

    # -- dispatch -------------------------------------------------------------------------------
    def _call(self, node, env):
        if not _is_safe_target(node.target):
            raise self._err(node, f"calls {str(node.target)[:80]!r}, which is not an ATen operator")
        args = [self._lookup(a, env) for a in node.args]
        kwargs = {k: self._lookup(v, env) for k, v in node.kwargs.items()}
        name = _opname(node).split(".")[0]
        syms = [a for a in _flat_args(list(args) + list(kwargs.values())) if _is_sym(a)]
        if name.startswith(_IGNORED):
            return None
        accs = [s for s in syms if isinstance(s, Acc)]
        fresh = any(isinstance(a, Fresh) for a in _flat_args(list(args) + list(kwargs.values())))
        if fresh:  # a made-up tensor meets an activation (masked write) or constants
            args, kwargs = self._unfresh(node, args, accs[0] if accs else None), \
                {k: self._unfresh(node, v, accs[0] if accs else None) for k, v in kwargs.items()}
            syms = [a for a in _flat_args(list(args) + list(kwargs.values())) if _is_sym(a)]
        if not syms:
            if name in _CREATION and not any(isinstance(a, torch.Tensor) for a in _flat_args(args)):
                return self._fresh(node, name, args, kwargs)
            if any(isinstance(a, Batch) for a in _flat_args(args)):
                return Batch() if name.startswith("sym_") else None
            self._check_const_size(node, args, kwargs)
            try:
                return node.target(*args, **kwargs)
            except Exception as e:  # a constant op torch itself cannot run
                raise self._err(node, f"cannot evaluate ({e})") from None
        if name == "sym_size":
            if args[1] != 0:
                raise self._err(node, "only the batch size may be read")
            return Batch() if self.dynamic else self.batch
        if name == "getitem":
            return self._getitem(node, args)
        if name in _LAYERS:
            return self._layer(node, name, args, kwargs)
        kinds = {type(s) for s in syms}
        if len(syms) > 1 and not (kinds == {Acc} and self._same_value_space(syms)) and \
                not (kinds == {Pixels} and self._same_pixels(syms)):
            raise self._combine_error(node, syms)
        x = syms[0]
        if isinstance(x, Acc):
            return self._acc_op(node, name, x, args, kwargs)
        if isinstance(x, Pixels):
            return self._pixel_op(node, name, x, args, kwargs)
        return self._bin_op(node, name, x, args, kwargs)

    def _fresh(self, node, name, args, kwargs) -> Fresh:
        args = _subst_batch(list(args), self.batch)
        self._check_const_size(node, args, kwargs)
        value = node.target(*args, **kwargs)
        if name.startswith(("empty", "new_empty")):
            fill = float("nan") if value.is_floating_point() else 0
            value.fill_(fill)
        else:
            flat = value.reshape(-1)
            fill = flat[0].item() if flat.numel() else 0
        return Fresh(node, value, fill)

    def _unfresh(self, node, v, acc: Acc | None):
        """Fresh operands -> activation-shaped expressions of `acc` (same shape), else their
        constant value."""
        if isinstance(v, (list, tuple)):
            return type(v)(self._unfresh(node, a, acc) for a in v)
        if not isinstance(v, Fresh):
            return v
        if acc is None or tuple(v.value.shape) != tuple(acc.index.shape):
            return v.value
        dtype = v.value.dtype

        def made(t, fill=v.fill, dtype=dtype):
            return torch.full_like(t, fill, dtype=dtype)
        return replace(acc, expr=Expr(v.node, made, (PREACTIVATION,)), node=v.node)

    def _same_value_space(self, syms) -> bool:
        """Values of one accumulator, at the same layout and pooling (an STE trick, a masked
        write, a where over ones_like): an op on them is still per position."""
        first = syms[0]
        return all(s.layer is first.layer and s.pool_node is first.pool_node
                   and s.index.shape == first.index.shape and torch.equal(s.index, first.index)
                   for s in syms[1:])

    @staticmethod
    def _same_pixels(syms) -> bool:
        """Values of the same pixels (FINN's `ge(x, 0).float() - lt(x, 0).float()`): an op on
        them is an op on their tables."""
        first = syms[0]
        return all(s.pad == first.pad and s.index.shape == first.index.shape
                   and torch.equal(s.index, first.index) for s in syms[1:])

    def _combine_error(self, node, syms) -> ModelError:
        layers = {s.layer.name for s in syms if isinstance(s, Acc)}
        if any(isinstance(s, Pixels) for s in syms) and len(syms) > 1:
            why = "combines the input image with another input-derived tensor"
        elif len(layers) > 1 or any(isinstance(s, Bin) for s in syms):
            why = ("adds or combines the outputs of two different layers (a residual or skip "
                   "connection); bnn-mcu converts chains of binary layers: remove the shortcut")
        else:
            why = "combines the activation with a reshaped or pooled copy of itself"
        return self._err(node, why)

    def _check_const_size(self, node, args, kwargs) -> None:
        """The size of a constant op's result, found on fake tensors (nothing allocated), before
        the op runs for real: `full([10**6, 10**6])` in a file must not fill the memory."""
        from torch._subclasses.fake_tensor import FakeTensorMode

        try:
            with FakeTensorMode(allow_non_fake_inputs=True):
                n = _numel(node.target(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - an op that cannot even be shape-checked
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise self._err(node, f"cannot evaluate ({first})") from None
        if n > _MAX_TENSOR_ELEMENTS:
            raise self._err(node, f"would compute {n:,} elements (at most "
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
                raise self._err(node, f"uses output {i} of batch norm")
            return replace(x, returns_tuple=False, node=node)
        if isinstance(x, Acc) and x.pool_node is not None and x.node is x.pool_node:
            if i != 0:
                raise self._err(node, "uses the indices of a max-pool")
            return replace(x, node=node)
        if isinstance(x, Bin) and i == 0 and _opname(node.args[0]).startswith("max_pool"):
            return x  # (values, indices) of a max-pool: the values
        if isinstance(x, (tuple, list)):
            return x[i]
        raise self._err(node, "unsupported indexing")

    # -- layout ---------------------------------------------------------------------------------
    def _apply_layout(self, node, name, index, args, kwargs):
        """The index map after a layout op, or None when the op is not one."""
        if name in _IDENTITY_OPS or name in _CASTS:
            return index
        if name not in _LAYOUT_OPS:
            return None
        rest = [a.index if _is_sym(a) else a for a in _subst_batch(list(args[1:]), self.batch)]
        try:
            out = node.target(index, *rest, **_subst_batch(kwargs, self.batch))
        except Exception as e:
            raise self._err(node, f"unsupported reshape ({e})") from None
        if out.numel() > _MAX_TENSOR_ELEMENTS:  # expand() allocates nothing until it is copied
            raise self._err(node, f"expands the activation to {out.numel():,} elements")
        return out

    def _per_sample(self, node, index: torch.Tensor, size: int) -> torch.Tensor:
        """The ids of one image ([1, ...]), after checking that no layout op mixed images."""
        if index.dim() == 0 or index.shape[0] != self.batch:
            raise self._err(node, f"receives a tensor of shape {tuple(index.shape)} whose first "
                                  f"dimension is not the batch ({self.batch})")
        if self.batch > 1:
            offsets = torch.arange(self.batch).reshape((-1,) + (1,) * (index.dim() - 1)) * size
            if not torch.equal(index - offsets, index[:1].expand_as(index)):
                raise self._err(node, "a reshape mixes values of different images of the batch")
        return index[:1]

    def _check_dropout(self, node, name, args):
        if name in ("dropout", "feature_dropout") and len(args) > 2 and args[2]:
            raise self._err(node, "dropout in training mode; call model.eval() before "
                                  "torch.export")

    # -- pixels -----------------------------------------------------------------------------------
    def _pixel_op(self, node, name, x: Pixels, args, kwargs):
        self._check_dropout(node, name, args)
        idx = self._apply_layout(node, name, x.index, args, kwargs)
        if name in _CASTS:
            return replace(x, table=self._table_op(node, x, args, kwargs), node=node)
        if idx is not None:
            return replace(x, index=idx, node=node)
        if name in ("pad", "constant_pad_nd"):
            return replace(x, pad=self._pad(node, args, real_zero_only=True))
        several = sum(isinstance(v, Pixels) for v in _flat_args(list(args) + list(kwargs.values())))
        if name in ("sub", "add", "mul", "div", "rsub", "neg") and several == 1:
            a, b = x.a, x.b
            other = [v for v in args[:2] if v is not x]
            s = self._scalar(node, other[0]) if other else None
            alpha = float(kwargs.get("alpha", args[2] if len(args) > 2 and name in ("sub", "add", "rsub") else 1))
            if args[0] is not x and name in ("sub", "div", "rsub"):
                raise self._err(node, "the input must not be a divisor or subtrahend")
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
            return replace(x, a=a, b=b, table=self._table_op(node, x, args, kwargs), node=node)
        if self._is_elementwise(node, name):  # e.g. a sign: the table says what it does
            for v in list(args) + list(kwargs.values()):
                if isinstance(v, torch.Tensor) and v.numel() > 1:
                    self._scalar(node, v)  # per-pixel constants: refused there
            return replace(x, table=self._table_op(node, x, args, kwargs), affine=False, node=node,
                           nonaffine_node=node)
        raise self._err(node, "cannot be applied to the input image exactly (allowed: scaling by "
                              "constants, type casts, reshapes, zero padding)")

    def _scalar(self, node, v) -> float:
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                raise self._err(node, f"per-channel input normalization (a constant of shape "
                                      f"{tuple(v.shape)}) is not supported; scale the input by one "
                                      "constant, e.g. (x - 128) / 128")
            return float(v.reshape(()).double())
        if isinstance(v, (int, float)):
            return float(v)
        raise self._err(node, f"unsupported operand {v!r}")

    def _table_op(self, node, x: Pixels, args, kwargs):
        """The op on the pixel tables: [256] per operand, one entry per pixel value."""
        targs = [a.table if isinstance(a, Pixels) else a for a in args]
        tkw = {k: (v.table if isinstance(v, Pixels) else v) for k, v in kwargs.items()}
        return node.target(*targs, **tkw)

    # -- binary activations ---------------------------------------------------------------------
    def _bin_op(self, node, name, x: Bin, args, kwargs):
        self._check_dropout(node, name, args)
        if name in _CASTS or name in _IDENTITY_OPS:
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
                raise self._err(node, f"pads binary activations with {value}; only +1, -1 or 0 "
                                      "are exact")
            return replace(x, pad=pad, pad_value=int(value), source=None)
        if name in _POOLS:
            src = x.source
            if src is None or src.pool is not None:
                raise self._err(node, "max-pool must directly follow a binary layer's activation")
            h, w, c = x.shape
            src.pool = self._pool_args(node, name, args, (h, w))
            src.trace_nodes[1] = node.name
            ho, wo = src.pool.out_hw((h, w))
            return Bin(canonical(self.batch, ho, wo, c), (ho, wo, c), source=None)
        if name in _AVERAGES:
            raise self._err(node, "averages binary activations; the mean of +-1 values is not "
                                  "binary: use max-pool (exact as a bitwise AND) or a stride-2 "
                                  "binary convolution")
        if self._is_elementwise(node, name) and self._keeps_pm1(node, x, args, kwargs):
            return x
        raise self._err(node, "cannot be applied to binary activations exactly (allowed after "
                              "the sign: reshapes, max-pool, padding with +-1 or 0, ops that "
                              "leave +-1 unchanged)")

    def _keeps_pm1(self, node, x: Bin, args, kwargs) -> bool:
        """A per-position op on +-1 activations that maps +1 to +1 and -1 to -1 in every
        channel (hardtanh, a second sign, a cast, x * 1): it changes nothing."""
        c = x.shape[2]
        probe = torch.tensor([1.0, -1.0]).reshape(2, 1).expand(2, c)
        args = [probe if a is x else self._per_channel(node, a, x.index, c, 2) for a in args]
        kwargs = {k: probe if v is x else self._per_channel(node, v, x.index, c, 2)
                  for k, v in kwargs.items()}
        out = node.target(*args, **kwargs)
        return isinstance(out, torch.Tensor) and out.shape == probe.shape and bool(
            (out.double() == probe.double()).all())

    def _pad(self, node, args, real_zero_only: bool) -> tuple:
        pads = list(args[1])
        mode = args[2] if len(args) > 2 and isinstance(args[2], str) else "constant"
        if mode != "constant" or len(pads) != 4:
            raise self._err(node, "only constant 2-D padding is supported")
        left, right, top, bottom = (int(p) for p in pads)
        if min(pads) < 0:
            raise self._err(node, "negative padding (cropping)")
        if real_zero_only:
            value = args[3] if len(args) > 3 else 0.0
            if value not in (0, 0.0, None):
                raise self._err(node, f"pads the input image with {value}; only zero padding of "
                                      "the input is supported")
        return (top, left, bottom, right)

    def _pool_args(self, node, name, args, in_hw: tuple) -> Pool:
        """The pool of a max_pool node reading an in_hw image: kernel, stride, and padding
        (top, left, bottom, right) with ceil_mode as extra bottom/right padding."""
        one_d = name.startswith("max_pool1d")

        def pair(v, default, fill):
            if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
                v = default
            v = list(v) if isinstance(v, (list, tuple)) else [v]
            if one_d:
                return (fill, int(v[0]))
            return tuple(int(i) for i in (v * 2 if len(v) == 1 else v))
        k = pair(args[1], None, 1)
        s = pair(args[2] if len(args) > 2 else None, args[1], 1)
        pad = pair(args[3] if len(args) > 3 else 0, 0, 0)
        dil = pair(args[4] if len(args) > 4 else 1, 1, 1)
        ceil = args[5] if len(args) > 5 else False
        if len(k) != 2 or len(s) != 2 or min(k + s) < 1:
            raise self._err(node, f"max-pool kernel {k} / stride {s}")
        if dil != (1, 1):
            raise self._err(node, f"max-pool with dilation {dil[1] if one_d else dil} is not "
                                  "supported; use dilation 1 (the default)")
        if len(pad) != 2 or min(pad) < 0 or any(2 * p > kk for p, kk in zip(pad, k)):
            raise self._err(node, f"max-pool padding {pad} with kernel {k}; the padding must "
                                  "be at most half the kernel")
        (pt, pb), (pl, pr) = (pool_padding(size, kk, ss, p, bool(ceil))
                              for size, kk, ss, p in zip(in_hw, k, s, pad))
        return Pool(k, s, None, padding=(pt, pl, pb, pr))

    # -- accumulators -----------------------------------------------------------------------------
    def _acc_op(self, node, name, x: Acc, args, kwargs):
        self._check_dropout(node, name, args)
        if x.ignored_output_op is not None:
            raise self._err(node, f"follows {_where(x.ignored_output_op)}; only the class scores "
                                  "(or their softmax) may be returned")
        if name in _IDENTITY_OPS:
            return replace(x, node=node)
        if name in _POOLS:
            return self._acc_pool(node, name, x, args)
        if name in ("batch_norm", "_native_batch_norm_legit_no_training"):
            if name == "batch_norm" and args[5]:
                raise self._err(node, "batch norm in training mode; call model.eval() before "
                                      "torch.export")
            self._requirecanonical(node, x, "batch norm")
            ex = Expr(node, node.target, tuple(self._operand(a, x) for a in args),
                       {k: self._operand(v, x) for k, v in kwargs.items()},
                       tuple_item=name != "batch_norm")
            return replace(x, expr=ex, node=node, returns_tuple=name != "batch_norm")
        if name in _OUTPUT_ONLY:
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            if x.index.dim() != 2 or dim not in (1, -1):
                raise self._err(node, "softmax over another dimension than the class scores")
            return replace(x, ignored_output_op=node)
        if name == "expand_as" and args[0] is not x:  # a constant given the activation's shape
            c = self._per_channel(node, args[0], x.index, x.layer.weights.shape[0], x.ndim)
            ex = Expr(node, lambda c, t: torch.broadcast_to(c, t.shape).clone(), (c, x.expr))
            return replace(x, expr=ex, node=node)
        if name in _CASTS:
            return self._acc_elementwise(node, name, x, args, kwargs)
        idx = self._apply_layout(node, name, x.index, args, kwargs)
        if idx is not None:
            self.reading[node.name] = f"reshape of layer {x.layer.name!r}'s output (layout tracked)"
            return replace(x, index=idx, node=node)
        if name in ("pad", "constant_pad_nd"):
            b = self._finish_layer(x, last=False)
            return self._bin_op(node, name, b, args, kwargs)
        if name in _LIKE_OPS or name in _NEW_OPS:
            return self._acc_like(node, name, x, args, kwargs)
        if name == "prelu":  # ReActNet's RPReLU: one slope per channel (dim 1, as in the probe)
            if isinstance(args[1], torch.Tensor) and args[1].numel() > 1:
                self._requirecanonical(node, x, "PReLU")
            ex = Expr(node, node.target, (x.expr, self._operand(args[1], x)))
            return replace(x, expr=ex, node=node)
        if self._is_elementwise(node, name):
            return self._acc_elementwise(node, name, x, args, kwargs)
        if name in _AVERAGES:
            raise self._err(node, "averages a layer's outputs across positions; a BNN layer's "
                                  "output stays per position: use max-pool (exact as a bitwise "
                                  "AND/OR) or a stride-2 binary convolution")
        raise self._err(node, "is not a per-position op, a reshape or a max-pool, so it cannot "
                              "sit between a binary layer and the next one")

    @staticmethod
    def _is_elementwise(node, name) -> bool:
        target = node.target
        return (isinstance(target, torch._ops.OpOverload) and torch.Tag.pointwise in target.tags
                ) or name in _ELEMENTWISE or name in _CASTS

    def _acc_elementwise(self, node, name, x: Acc, args, kwargs):
        target = _functional(node.target)
        if target is None:
            raise self._err(node, "an in-place op without an out-of-place form")
        n = x.layer.weights.shape[0]
        if name in ("index_put", "index_put_"):
            indices = args[1]
            if len(indices) != 1 or not isinstance(indices[0], Acc):
                raise self._err(node, "indexed write with other indices than one mask of the "
                                      "activation's own shape")
            if isinstance(args[2], torch.Tensor) and args[2].numel() != 1:
                raise self._err(node, "masked write of a tensor; write one value per mask")
        for v in list(args) + list(kwargs.values()):
            if isinstance(v, torch.Tensor) and v.numel() > 1 and \
                    torch.broadcast_shapes(v.shape, x.index.shape) != x.index.shape:
                raise self._err(node, f"a constant of shape {tuple(v.shape)} changes the "
                                      f"activation's shape {tuple(x.index.shape)}")
        ex = Expr(node, target,
                   tuple(self._operand(a, x, n, node) for a in args),
                   {k: self._operand(v, x, n, node) for k, v in kwargs.items()})
        return replace(x, expr=ex, node=node)

    def _acc_like(self, node, name, x: Acc, args, kwargs):
        """ones_like(x), x.new_ones(x.shape), empty_like(x)...: a value of the probe's shape."""
        if name in _NEW_OPS:
            size = tuple(_subst_batch(list(args[1]), self.batch))
            if size != tuple(x.index.shape):
                raise self._err(node, f"makes a tensor of shape {size}, not the activation's "
                                      f"{tuple(x.index.shape)}")
            fill = {"new_ones": 1, "new_zeros": 0, "new_empty": 0}.get(name)
            fill = args[2] if fill is None else fill
            dtype = kwargs.get("dtype")
            target = torch.full_like

            def like(t, fill=fill, dtype=dtype):
                return target(t, fill, dtype=dtype if dtype is not None else t.dtype)
            ex = Expr(node, like, (x.expr,), empty=name == "new_empty")
        else:
            ex = Expr(node, node.target, tuple(self._operand(a, x) for a in args),
                       {k: self._operand(v, x) for k, v in kwargs.items()},
                       empty=name == "empty_like")
        return replace(x, expr=ex, node=node)

    def _operand(self, v, x: Acc, n: int | None = None, node=None):
        """An op's operand in probe space: values of the accumulator become their expression;
        constants that vary are read per channel through the activation's layout."""
        if isinstance(v, Acc):
            return v.expr
        if isinstance(v, (list, tuple)):
            return type(v)(self._operand(a, x, n, node) for a in v)
        if isinstance(v, Batch):
            return self.batch
        if n is not None:
            return self._per_channel(node, v, x.index, n, x.ndim)
        return v

    def _per_channel(self, node, v, index: torch.Tensor, n: int, ndim: int):
        """A constant broadcast over the activation -> one value per channel, shaped for the
        probe [P, N(, 1, 1)]; an error when it varies within a channel (position-dependent)."""
        if not isinstance(v, torch.Tensor) or v.numel() <= 1:
            return v
        full = torch.broadcast_to(v, index.shape).reshape(-1)
        channel = (index.reshape(-1) % n).long()
        per = torch.zeros(n, dtype=v.dtype)
        per[channel] = full
        if not torch.equal(per[channel], full):
            raise self._err(node, f"a constant of shape {tuple(v.shape)} varies within a "
                                  "channel, so the layer's output would depend on the position")
        return per.reshape((1, n) + (1,) * (ndim - 2))

    def _requirecanonical(self, node, x: Acc, what: str):
        h, w, c = self._out_shape(x.layer, pooled=x.pool_node is not None)
        if x.index.shape != canonical(self.batch, h, w, c, x.ndim).shape or not torch.equal(
                x.index, canonical(self.batch, h, w, c, x.ndim)):
            raise self._err(node, f"{what} on a reshaped or permuted activation; apply it on the "
                                  "layer's own output layout")

    def _acc_pool(self, node, name, x: Acc, args):
        if x.ndim not in (3, 4) or x.pool_node is not None:
            raise self._err(node, "unsupported max-pool position")
        self._requirecanonical(node, x, "max-pool")
        x.layer.pool = self._pool_args(node, name, args, self._out_shape(x.layer, pooled=False)[:2])
        h, w, c = self._out_shape(x.layer, pooled=True)
        return replace(x, pool_node=node, pre_pool=(x.expr, x.node, x.index), node=node,
                       index=canonical(self.batch, h, w, c, x.ndim))

    # -- layers -----------------------------------------------------------------------------------
    def _layer(self, node, name, args, kwargs):
        if name in ("mm", "matmul"):
            x, w_t = args[0], args[1]
            bias = None
            if not isinstance(w_t, torch.Tensor) or w_t.dim() != 2:
                raise self._err(node, "the weights must be a constant matrix")
            weight = w_t.t()
        elif name == "addmm":
            bias, x, w_t = args[0], args[1], args[2]
            weight = w_t.t()
        else:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
        if isinstance(x, Acc):
            x = self._finish_layer(x, last=False)
        if not isinstance(weight, torch.Tensor):
            raise self._err(node, "the weights depend on the input")
        if bias is not None and not isinstance(bias, torch.Tensor):
            raise self._err(node, "the bias depends on the input")
        if isinstance(x, Pixels) and not x.affine:
            x = self._binarized_input(node, x)
        w, alpha = self._binary_weights(node, weight.detach())
        if name in ("conv2d", "conv1d", "convolution"):
            acc = self._conv(node, name, x, w, bias, args)
        else:
            acc = self._dense(node, x, w, bias)
        if alpha is not None:  # XNOR-Net: sum(x * alpha_c * s) = alpha_c * acc, in exact arithmetic
            acc.scale = acc.scale * alpha
            if acc.offset is not None:  # the input scaling's b * sum(w) is scaled alike
                acc.offset = acc.offset * alpha
            acc.probe_f64 = True
            if not np.all(np.frexp(alpha)[0] == 0.5):  # not all powers of two
                self.exact_float32 = False
        self.reading[node.name] = (f"binary {acc.layer.kind} {acc.layer.name!r}"
                                   + (" (per-channel weight scale)" if alpha is not None else ""))
        return acc

    def _binarized_input(self, node, x: Pixels) -> Bin:
        """Pixels through a sign-like op (FINN's LFC: sign(2x/255 - 1)): when every pixel value
        gives exactly +-1, -1 below a threshold, the image is binarized on the device."""
        t = x.table.double()
        if not bool(((t == 1) | (t == -1)).all()):
            v = int(torch.nonzero((t != 1) & (t != -1))[0])
            raise self._err(x.nonaffine_node, f"the input image is neither scaled by constants nor "
                                    f"binarized (pixel {v} becomes {float(t[v]):g}); bnn-mcu's "
                                    "first layer takes 8-bit pixels scaled as a*x + b, or their "
                                    "sign")
        threshold = int((t == -1).sum())
        if not torch.equal(t == -1, torch.arange(256) < threshold):
            raise self._err(x.nonaffine_node, "binarizes the input image with -1 for bright "
                                              "pixels; write it so that pixels below a threshold "
                                              "are -1 (e.g. sign(x / 127.5 - 1))")
        if self.binarized is not None:
            raise self._err(node, "the binarized input image feeds a second layer")
        if any(x.pad):
            raise self._err(x.node, "pads the input image before binarizing it; pad in the "
                                    "convolution instead (padding=...)")
        self.binarized = (threshold, self._trace(x.node, x.index, self.input_shape))
        self.reading[x.node.name] = f"binarized input image: -1 where pixel < {threshold}"
        return Bin(x.index, self.input_shape, pad=x.pad, pad_value=0)

    def _binary_weights(self, node, w: torch.Tensor):
        """+-1 weights, or +-alpha_c per output channel (XNOR-Net's mean |W| scale, alpha > 0):
        the signs and the scales, which move into the channel's chain (None: plain +-1).

        A float32 STE such as `sign(w).detach() - w.detach() + w` rounds: some weights come out
        an ulp off +-alpha. Such weights are read as the exact +-alpha they stand for; the model's
        float64 evaluation is then the reference, as for inexact input scalings."""
        if bool(((w == 1) | (w == -1)).all()):
            return w, None
        rows = w.reshape(w.shape[0], -1).double()
        alpha = rows.abs().median(dim=1).values  # an exact element, the scale in most rows
        err = (rows.abs() - alpha[:, None]).abs()
        ulps = 4 * float(torch.finfo(w.dtype).eps) if w.is_floating_point() else 0.0
        if bool((alpha > 0).all()) and bool((err <= ulps * alpha[:, None]).all()):
            if not bool((err == 0).all()):
                self.exact_float32 = False
            return torch.sign(rows).reshape(w.shape), alpha.numpy()
        bad = err > ulps * alpha[:, None]
        v = float(rows[bad].reshape(-1)[0]) if bool(bad.any()) else float(rows.reshape(-1)[0])
        raise self._err(node, f"weights are not binary (found {v:g}; a binary layer's weights "
                              "must be exactly +-1, or +-alpha with one alpha > 0 per output "
                              "channel; torch.sign gives 0 for a zero weight: use "
                              "torch.where(w >= 0, 1.0, -1.0))")

    def _pm1(self, w: torch.Tensor) -> np.ndarray:
        return w.to(torch.int8).numpy().astype(np.int8)

    def _dense(self, node, x, w, bias) -> Acc:
        n, f = w.shape
        if isinstance(x, Pixels):
            h, wd, c = self.input_shape
            order = self._flat_order(node, x.index, f, h * wd * c)
            weights = np.zeros((n, h * wd * c), dtype=np.int8)
            weights[:, order] = self._pm1(w)
            weights = weights.reshape(n, h, wd, c)
            if any(x.pad):
                raise self._err(node, "padding before a dense layer")
            return self._first_layer(node, "dense", (h, wd, c), weights, x, bias, {})
        h, wd, c = x.shape
        if any(x.pad):
            raise self._err(node, "padding before a dense layer")
        order = self._flat_order(node, x.index, f, h * wd * c)
        weights = np.zeros((n, h * wd * c), dtype=np.int8)
        weights[:, order] = self._pm1(w)
        k = h * wd * c
        acc_values = np.arange(-k, k + 1, 2, dtype=np.int64)
        layer = FloatLayer(node.name, "dense", (h, wd, c), weights.reshape(n, h, wd, c),
                           acc_values, None)
        return self._start_acc(layer, 2, bias, node, scale=1.0, offset=None, f64=False)

    def _flat_order(self, node, index: torch.Tensor, f: int, size: int) -> np.ndarray:
        one = self._per_sample(node, index, size)
        idx = one.reshape(1, -1)
        if index.dim() != 2 or idx.shape != (1, f):
            raise self._err(node, f"expects {f} features but receives a tensor of shape "
                                  f"{tuple(index.shape)}; flatten the activation first")
        order = idx[0].numpy()
        if sorted(order.tolist()) != list(range(f)):
            raise self._err(node, "the input's layout is not a permutation of the previous "
                                  "layer's output")
        return order

    def _conv(self, node, name, x, w, bias, args) -> Acc:
        one_d = name == "conv1d" or (name == "convolution" and w.dim() == 3)
        if name == "convolution":  # (input, weight, bias, stride, padding, dilation, transposed, ...)
            if len(args) > 6 and args[6]:
                raise self._err(node, "transposed convolution is not supported")
            args = list(args[:6]) + [args[8] if len(args) > 8 else 1]
        stride = tuple(args[3]) if len(args) > 3 else (1,)
        padding = args[4] if len(args) > 4 else (0,)
        dilation = tuple(args[5]) if len(args) > 5 else (1,)
        groups = args[6] if len(args) > 6 else 1
        if one_d:  # a 1-D convolution is a 2-D one over an image of height 1
            w = w.unsqueeze(2)
            stride = (1,) + tuple(stride[-1:])
            dilation = (1,) + tuple(dilation[-1:])
            if not isinstance(padding, str):
                padding = (0,) + tuple(padding[-1:])
        stride = stride * 2 if len(stride) == 1 else stride
        if tuple(dilation) not in ((1, 1), (1,)) or groups != 1:
            raise self._err(node, "dilated or grouped convolution is not supported")
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
            raise self._err(node, f"convolution kernel {kh}x{kw}, stride {geo['stride']}, "
                                  f"padding {conv_pad}")
        ndim = 3 if one_d else 4
        if isinstance(x, Pixels):
            shape = self._rows(self.input_shape, one_d)
            self._check_nchw(node, x.index, shape, c, ndim)
            pad = tuple(p + q for p, q in zip(x.pad, conv_pad))
            return self._first_layer(node, "conv", shape, weights, x, bias,
                                     dict(geo, padding=pad), ndim)
        h, wd, cin = self._rows(x.shape, one_d)
        self._check_nchw(node, x.index, (h, wd, cin), c, ndim)
        if any(x.pad) and any(conv_pad):
            raise self._err(node, "both an explicit pad and the conv's own padding; use one")
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
        return self._start_acc(layer, ndim, bias, node, scale=1.0, offset=None, f64=False)

    @staticmethod
    def _rows(shape: tuple, one_d: bool) -> tuple:
        """A 1-D convolution reads an H x W x C activation as one row of H*W positions."""
        h, w, c = shape
        return (1, h * w, c) if one_d else shape

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

    def _check_nchw(self, node, index, shape, c, ndim=4):
        h, w, cin = shape
        want = canonical(self.batch, h, w, cin, ndim)
        if c != cin or index.shape != want.shape or not torch.equal(index, want):
            if ndim == 3 and h != 1:
                why = (f"a 1-D convolution over the {h}x{w}x{cin} activation; reshape it to "
                       f"N x C x L of one row (height 1)")
            else:
                why = (f"the conv input is not the {'NCL' if ndim == 3 else 'NCHW'} view of the "
                       f"{h}x{w}x{cin} activation (layout {tuple(index.shape)})")
            raise self._err(node, why)

    def _first_layer(self, node, kind, in_shape, weights, x: Pixels, bias, geo, ndim=None) -> Acc:
        """uint8 x binary: acc = sum w*(x - zp); preactivation = a*acc (+ per-channel b*sum(w))."""
        table = x.table
        if not table.is_floating_point():
            raise self._err(node, "the input reaches the first layer as integers; convert it to "
                                  "float inside the model")
        a, b = x.a, x.b
        if a <= 0:
            raise self._err(node, "the input scaling must be increasing")
        pixels = np.arange(256, dtype=np.float64)
        t = table.double().numpy()
        intended = a * pixels + b
        # the model's own float rounding of a*x + b (e.g. x / 127.5 - 1 in float32) is a few
        # units in the last place of the largest value: more than that is another scaling
        eps = float(torch.finfo(table.dtype).eps)
        tol = 8 * eps * max(float(np.abs(intended).max()), float(np.abs(t).max()), abs(b))
        if not np.all(np.abs(t - intended) <= tol):
            worst = int(np.argmax(np.abs(t - intended)))
            raise self._err(node, f"the input scaling is not affine: pixel {worst} becomes "
                                  f"{t[worst]:g}, the scaling {a:g}*x{b:+g} read from the graph "
                                  f"gives {intended[worst]:g}")
        if table.is_floating_point() and self._input_is_float and a == 1 and b == 0:
            self.unscaled_float_input = True
        zp_real = -b / a
        zp = int(round(zp_real))
        integral = abs(zp_real - zp) < _ZP_TOLERANCE and 0 <= zp <= 255
        n = weights.shape[0]
        taps = int(np.prod(weights.shape[1:]))
        padded = any(geo.get("padding", (0, 0, 0, 0)))
        half = False
        if integral:
            offset = None
        elif padded:
            # zero padding pads with pixel value zp_real: exact in integers when it is k + 0.5
            # (x / 127.5 - 1), with the accumulator doubled: a * sum w (x - zp_real) =
            # (a / 2) * sum w (2x - (2k + 1)) over the valid taps
            zp = int(math.floor(zp_real))
            half = abs(zp_real - (zp + 0.5)) < _ZP_TOLERANCE
            if not (half and 0 <= zp <= 254):
                why = ("outside 0..255" if half or abs(zp_real - round(zp_real)) < _ZP_TOLERANCE
                       else "neither an integer nor an integer + 0.5")
                raise self._err(node, f"zero padding of an input scaled as {a:g}*x{b:+g} pads with "
                                      f"pixel value {zp_real:.6g}, {why}; scale the input as "
                                      "(x - zp) * s with zp an integer or an integer + 0.5 in "
                                      "0..255 (e.g. (x - 128) / 128 or x / 127.5 - 1)")
            offset = None
        else:
            zp = 0
            offset = b * weights.reshape(n, -1).sum(axis=1).astype(np.float64)
        # Exact in float32 when every scaled pixel and every partial sum is a float32 integer
        # multiple of one power of two (e.g. (x - 128) / 128).
        exact = False
        for m in range(0, 31):
            q = t * 2.0**m
            if np.all(q == np.round(q)) and np.all(t == np.float32(intended)):
                exact = float(np.abs(q).max()) * taps < 2**24 and (offset is None)
                break
        if not exact:
            self.exact_float32 = False
        bound = taps * u8_tap_bound(zp, half)
        acc_values = np.arange(-bound, bound + 1, dtype=np.int64)
        layer = FloatLayer(node.name, kind, in_shape, weights, acc_values, None,
                           uint8_input=True, zero_point=zp, half_zero_point=half, **geo)
        return self._start_acc(layer, ndim or (2 if kind == "dense" else 4), bias, node,
                               scale=a / 2 if half else a, offset=offset, f64=not exact)

    def _start_acc(self, layer, ndim, bias, node, scale, offset, f64) -> Acc:
        entries = layer.weights.shape[0] * len(layer.acc_values)
        if entries > _MAX_RESPONSE_ENTRIES:
            raise self._err(node, f"{layer.weights.shape[0]:,} channels x "
                                  f"{len(layer.acc_values):,} accumulator values is too large a "
                                  f"layer to convert exactly (at most {_MAX_RESPONSE_ENTRIES:,})")
        layer.response = np.zeros((layer.weights.shape[0], 0), dtype=np.int8)  # channel count
        layer.trace_nodes = [None, None]
        h, w, c = self._out_shape(layer, pooled=False)
        acc = Acc(layer, ndim, f64, offset, scale, index=canonical(self.batch, h, w, c, ndim),
                  node=node, layer_node=node)
        if bias is not None:
            n = layer.weights.shape[0]
            ex = Expr(node, torch.add, (PREACTIVATION,
                                         bias.detach().reshape((1, n) + (1,) * (ndim - 2))))
            acc = replace(acc, expr=ex)
        return acc

    # -- evaluating a layer's response -----------------------------------------------------------
    def _probe(self, x: Acc, values: np.ndarray) -> torch.Tensor:
        """Preactivations for accumulator values [P] in every channel: [P, N(, 1, 1)]."""
        n = x.layer.weights.shape[0]
        scale = np.broadcast_to(np.asarray(x.scale, dtype=np.float64), (n,))
        pre = scale[None, :] * values.astype(np.float64)[:, None] + (
            x.offset[None, :] if x.offset is not None else np.zeros((1, n)))
        t = torch.from_numpy(pre if x.probe_f64 else pre.astype(np.float32))
        return t.reshape(t.shape + (1,) * (x.ndim - 2))

    def _chunks(self, x: Acc, values: np.ndarray, expr: Expr | None = None):
        """Yield the expression's output [N, chunk] over the accumulator values, chunk by chunk."""
        expr = x.expr if expr is None else expr
        n = x.layer.weights.shape[0]
        step = max(1, _PROBE_CHUNK // max(1, n))
        for i in range(0, len(values), step):
            p = Probe(self._probe(x, values[i:i + step]), x.probe_f64)
            try:
                t = expr.eval(p)
            except Exception as e:
                raise ModelError(f"{self.name}: {_where(expr.node)}: cannot evaluate on the "
                                 f"accumulator range ({str(e).splitlines()[0][:200]})") from None
            if t.dim() != x.ndim or t.shape[0] != p.t.shape[0] or t.shape[1] != n or \
                    t.numel() != p.t.numel():
                raise ModelError(f"{self.name}: {_where(expr.node)}: does not keep one value per "
                                 "channel and position")
            yield t.reshape(t.shape[0], n).T

    def _direction(self, x: Acc, values: np.ndarray) -> tuple[np.ndarray, bool]:
        """Per channel +1/-1: the pre-pool part is non-decreasing / non-increasing in acc;
        and whether that part already outputs only +-1 (the pool acts on binary values)."""
        inc = dec = prev = None
        binary = True
        for part in self._chunks(x, values, expr=x.pre_pool[0]):
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

    def _hidden_response(self, x: Acc) -> np.ndarray:
        """int8 +-1 [N, P]; anything but exactly +-1 is an error naming the node."""
        layer, parts, done = x.layer, [], 0
        for part in self._chunks(x, layer.acc_values):
            ok = (part == 1) | (part == -1)
            if not bool(ok.all()):
                c, p = (int(v[0]) for v in torch.nonzero(~ok, as_tuple=True))
                raise ModelError(self._not_binary(x, float(part[c, p]),
                                                  int(layer.acc_values[done + p]), c))
            parts.append(part.to(torch.int8).numpy())
            done += part.shape[1]
        return np.concatenate(parts, axis=1)

    def _not_binary(self, x: Acc, value: float, acc: int, channel: int) -> str:
        node = x.expr.node or x.node
        signs = [nd for nd in x.expr.nodes() if _opname(nd).split(".")[0] in ("sign", "sgn")]
        if value == 0 and signs:
            return (f"{self.name}: {_where(signs[-1])}: torch.sign gives 0 for accumulator {acc} "
                    f"in channel {channel} of layer {x.layer.name!r} (sign(0) = 0 is not a binary "
                    "value); use torch.where(x >= 0, 1.0, -1.0), which gives +1 at 0")
        what = "a NaN (an unwritten element of a masked write)" if value != value else f"{value:g}"
        return (f"{self.name}: {_where(node)}: outputs {what} for accumulator {acc} in channel "
                f"{channel} of layer {x.layer.name!r}; a hidden binary layer must output exactly "
                "+-1 (a sign with sign(0) = +1, e.g. torch.where(x >= 0, 1.0, -1.0), after batch "
                "norm); a real-valued hidden layer cannot be converted")

    def _read_chain(self, x: Acc, what: str) -> None:
        """inspect --graph: the nodes the layer's response was evaluated through."""
        for nd in x.expr.nodes():
            if nd is not x.layer_node:
                self.reading[nd.name] = what
        if x.pool_node is not None:
            self.reading[x.pool_node.name] = (f"max-pool of layer {x.layer.name!r} "
                                              "(bitwise AND/OR after the threshold)")

    def _trace(self, node, index: torch.Tensor, hwc: tuple) -> str | None:
        if node is None:
            return None
        size = hwc[0] * hwc[1] * hwc[2]
        one = self._per_sample(node, index, size)[0]
        self.trace_layouts[node.name] = (one.reshape(-1).numpy().astype(np.int64), tuple(hwc))
        return node.name

    def _finish_layer(self, x: Acc, last: bool):
        layer = x.layer
        if x.returns_tuple:
            raise self._err(x.node, "its tuple output is used whole")
        pre_binary = False
        if x.pool_node is not None:
            layer.pool.pre_direction, pre_binary = self._direction(x, layer.acc_values)
        out_hwc = self._out_shape(layer, pooled=True)
        value_node = x.expr.node if x.expr.node is not None else None
        if last:
            n = layer.weights.shape[0]
            if x.index.dim() != 2 or not torch.equal(self._per_sample(x.node, x.index, n)[0],
                                                      torch.arange(n)):
                raise self._err(x.node, "the class scores must be returned as N x classes")
            layer.response = np.concatenate([p.double().numpy() for p in
                                             self._chunks(x, layer.acc_values)], axis=1)
            layer.is_output = True
            self._read_chain(x, f"class scores of layer {layer.name!r} (integer affine)")
            out_node = x.ignored_output_op if x.ignored_output_op is not None else x.node
            layer.trace_nodes = [out_node.name if out_node is not None else None, None]
            if x.ignored_output_op is not None:
                self.reading[x.ignored_output_op.name] = (
                    f"{_opname(x.ignored_output_op).split('.')[0]} of the scores: ignored (it "
                    "keeps the order of the scores, so the predicted class)")
            self.layers.append(layer)
            return None
        if value_node is None:
            raise self._err(x.node, f"layer {layer.name!r} feeds the next layer without a sign; "
                                    "a hidden binary layer must output +-1")
        layer.response = self._hidden_response(x)
        self._read_chain(x, f"threshold of layer {layer.name!r}")
        if x.pool_node is not None:
            pre_expr, pre_node, pre_index = x.pre_pool
            pre_hwc = self._out_shape(layer, pooled=False)
            before = self._trace(pre_node, pre_index, pre_hwc) if pre_binary and \
                pre_expr.node is not None else None
            layer.trace_nodes = [before, self._trace(x.node, x.index, out_hwc)]
        else:
            layer.trace_nodes = [self._trace(x.node, x.index, out_hwc), None]
        self.layers.append(layer)
        h, w, c = out_hwc
        in_order = x.index.shape == canonical(self.batch, h, w, c, x.ndim).shape and \
            torch.equal(x.index, canonical(self.batch, h, w, c, x.ndim))
        return Bin(x.index, out_hwc, source=layer if x.pool_node is None and in_order and
                   x.ndim == 4 else None)

    @staticmethod
    def _out_shape(layer: FloatLayer, pooled: bool) -> tuple:
        n = layer.weights.shape[0]
        if layer.kind == "dense":
            return (1, 1, n)
        h, w, _ = layer.in_shape
        pt, pl, pb, pr = layer.padding
        ho = conv_out(h, layer.kernel[0], layer.stride[0], pt, pb)
        wo = conv_out(w, layer.kernel[1], layer.stride[1], pl, pr)
        if pooled and layer.pool is not None:
            ho, wo = layer.pool.out_hw((ho, wo))
        return (ho, wo, n)


def import_program(ep: torch.export.ExportedProgram, name: str = "model") -> FloatModel:
    return GraphImporter(ep, name).run()
