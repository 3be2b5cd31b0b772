"""Parity ladder level 1: the PyTorch model (eval) against the emulator, on every hidden bit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tabulate import tabulate

from . import emulator
from .ir.bits import popcount, unpack_bits
from .ir.ops import IntModel


@dataclass
class LayerParity:
    index: int
    name: str
    compared: bool
    bits: int = 0
    mismatching_bits: int = 0
    first_vector: int | None = None
    first_channel: int | None = None
    note: str = ""


@dataclass
class ParityReport:
    target: str
    vectors: int
    layers: list = field(default_factory=list)
    agree: int = 0  # predictions equal to the reference's
    correct_ref: int = 0
    correct_dev: int = 0
    reference: str = "PyTorch"
    notes: list = field(default_factory=list)

    @property
    def mismatching_bits(self) -> int:
        return sum(layer.mismatching_bits for layer in self.layers)

    @property
    def ok(self) -> bool:
        return self.mismatching_bits == 0 and self.agree == self.vectors


def first_mismatch(a: np.ndarray, b: np.ndarray, channels: int) -> tuple[int, int, int]:
    """(mismatching bits, first vector, first channel) between packed activations [N, H, W, words]."""
    diff = popcount(a ^ b)
    total = int(diff.sum())
    if total == 0:
        return 0, None, None
    per_vec = diff.reshape(len(diff), -1).sum(axis=1)
    v = int(np.flatnonzero(per_vec)[0])
    bits = unpack_bits(a[v] ^ b[v], channels)  # [H, W, C]
    c = int(np.argwhere(bits.reshape(-1, channels))[0][1])
    return total, v, c


def compare_layers(model: IntModel, device_layers: list, ref_words: dict, names: list) -> list:
    out = []
    for i, op in enumerate(model.ops[:-1]):
        name = names[i] if i < len(names) else None
        if name is None or name not in ref_words:
            out.append(LayerParity(i, op.name, False, note="no source tensor (pool folded)"))
            continue
        a, b = device_layers[i], ref_words[name]
        mism, v, c = first_mismatch(a, b, op.out_channels)
        out.append(LayerParity(i, op.name, True, int(np.prod(a.shape[1:-1])) * op.out_channels * len(a),
                               mism, v, c))
    return out


def verify_against_pytorch(ep, model: IntModel, x: np.ndarray, y: np.ndarray) -> ParityReport:
    """Ladder level 1. Inexact first-layer scalings are checked against a float64 evaluation
    of the model; the float32 model's rare first-layer disagreements are counted in notes."""
    from .nn.reference import run_reference

    names = list(model.meta.get("trace", []))
    hidden = [n for n in names[:-1] if n]
    emu = emulator.run(model, x, trace=True)
    exact = model.meta.get("exact_float32", True)
    layouts = getattr(model, "trace_layouts", {})
    scores, words = run_reference(ep, x, hidden, f64=not exact, layouts=layouts)
    rep = ParityReport("emulator", len(x), reference="PyTorch" if exact else "PyTorch (float64)")
    rep.layers = compare_layers(model, emu.layers, words, names)
    ref_pred = np.argmax(scores, axis=1)
    rep.agree = int((ref_pred == emu.predictions).sum())
    rep.correct_ref = int((ref_pred == y).sum())
    rep.correct_dev = int((emu.predictions == y).sum())
    if not exact:
        s32, w32 = run_reference(ep, x, hidden, f64=False, layouts=layouts)
        per_layer = []
        for i, n in enumerate(names[:-1]):
            if n and n in w32:
                mism, _, _ = first_mismatch(emu.layers[i], w32[n], model.ops[i].out_channels)
                per_layer.append((model.ops[i].name, mism))
        total = sum(m for _, m in per_layer)
        where = ", ".join(f"{name}: {m}" for name, m in per_layer if m)
        rep.notes.append(f"float32 PyTorch differs from the exact integer result on {total} "
                         f"hidden bit(s){' (' + where + ')' if where else ''}: its float32 sums "
                         "are not exact (input scaling or weight scales), the float64 "
                         "evaluation is the reference")
        rep.notes.append(f"float32 PyTorch predictions agree on "
                         f"{int((np.argmax(s32, 1) == emu.predictions).sum())}/{len(x)} vectors")
    return rep


def report_table(rep: ParityReport) -> str:
    rows = []
    for layer in rep.layers:
        if not layer.compared:
            rows.append([layer.index, layer.name, "-", "-", layer.note])
            continue
        where = "" if layer.mismatching_bits == 0 else (
            f"first: vector {layer.first_vector}, channel {layer.first_channel}")
        rows.append([layer.index, layer.name, f"{layer.bits:,}", f"{layer.mismatching_bits:,}", where])
    head = tabulate(rows, headers=["#", "layer", "bits compared", "mismatching", "where"],
                    tablefmt="simple", disable_numparse=True)
    acc_ref = rep.correct_ref / max(1, rep.vectors)
    acc_dev = rep.correct_dev / max(1, rep.vectors)
    lines = [head, "",
             f"vectors {rep.vectors:,}   layers compared {sum(l.compared for l in rep.layers)}   "
             f"mismatching bits {rep.mismatching_bits:,}",
             f"predictions agreeing with {rep.reference}: {rep.agree:,}/{rep.vectors:,}   "
             f"accuracy {rep.target} {acc_dev:.4f}   {rep.reference} {acc_ref:.4f}"]
    lines += [f"note: {n}" for n in rep.notes]
    lines.append("PARITY OK" if rep.ok else "PARITY FAILED")
    return "\n".join(lines)


# -- ladder levels 2-5: a device target against the emulator ------------------------------------

@dataclass
class DeviceParity:
    target: str
    core: str
    vectors: int
    streamed: int
    bulk: int
    score_mismatches: int  # vectors whose scores differ in any class
    class_mismatches: int
    correct: int
    traced: int = 0
    trace_bits: int = 0
    trace_mismatching_bits: int = 0
    first_vector: int | None = None
    first_layer: str | None = None
    first_channel: int | None = None
    instructions: int | None = None  # per inference (QEMU plugin)
    cycles_est: int | None = None  # per inference, the plugin's estimate for the core
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    stack_bytes: int | None = None
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.score_mismatches == 0 and self.class_mismatches == 0 and \
            self.trace_mismatching_bits == 0


def device_layer_words(op, data: bytes) -> np.ndarray:
    """A traced layer's bytes as the emulator's array for one vector."""
    if op.out_is_scores:
        return np.frombuffer(data, dtype="<i4").astype(np.int32).reshape(1, 1, 1, -1)
    h, w, _ = op.out_shape
    return np.frombuffer(data, dtype="<u4").astype(np.uint32).reshape(1, h, w, -1)


def first_layer_difference(model: IntModel, layers_dev: list, emu_layers: list, v: int):
    """(layer name, channel) of the first layer where a traced vector differs, or (None, None)."""
    for i, op in enumerate(model.ops):
        a = device_layer_words(op, layers_dev[i])
        b = emu_layers[i][v:v + 1]
        if op.out_is_scores:
            diff = np.flatnonzero(a.reshape(-1) != b.reshape(-1))
            if len(diff):
                return op.name, int(diff[0])
        else:
            mism, _, c = first_mismatch(a, b, op.out_channels)
            if mism:
                return op.name, c
    return None, None


def compare_device(model: IntModel, res, emu, y: np.ndarray) -> DeviceParity:
    """Every score of every vector, and every traced layer's bits, must equal the emulator's."""
    info = res.info
    bad = np.flatnonzero((res.scores != emu.scores).any(axis=1))
    p = DeviceParity(res.target.label, getattr(info, "core", "?"), len(res.scores), res.streamed,
                     res.bulk, len(bad), int((res.classes != emu.predictions).sum()),
                     int((res.classes == y).sum()), traced=len(res.traces))
    for v, layers in enumerate(res.traces):
        for i, op in enumerate(model.ops):
            a = device_layer_words(op, layers[i])
            b = emu.layers[i][v:v + 1]
            if op.out_is_scores:
                p.trace_bits += a.size * 32
                p.trace_mismatching_bits += int(popcount(
                    (a.view(np.uint32) ^ b.astype(np.int32).view(np.uint32))).sum())
            else:
                p.trace_bits += int(np.prod(a.shape[1:-1])) * op.out_channels
                p.trace_mismatching_bits += first_mismatch(a, b, op.out_channels)[0]
    if len(bad):
        p.first_vector = int(bad[0])
    if res.firmware is not None:
        p.flash_bytes, p.ram_bytes = res.firmware.flash_bytes, res.firmware.ram_bytes
    p.stack_bytes = getattr(info, "stack_used", None)
    return p


def device_table(rows: list) -> str:
    body = []
    for r in rows:
        where = "" if r.first_vector is None else (
            f"vector {r.first_vector}" + (f", layer {r.first_layer}, channel {r.first_channel}"
                                          if r.first_layer else ""))
        body.append([r.target, r.core, f"{r.vectors:,} ({r.streamed:,} serial)",
                     f"{r.score_mismatches:,}", f"{r.trace_mismatching_bits:,}/{r.trace_bits:,}",
                     f"{r.correct / max(1, r.vectors):.4f}",
                     "-" if r.instructions is None else f"{r.instructions:,}",
                     "-" if r.cycles_est is None else f"{r.cycles_est:,}",
                     "-" if not r.flash_bytes else f"{r.flash_bytes:,}",
                     "-" if not r.ram_bytes else f"{r.ram_bytes:,}",
                     "-" if r.stack_bytes is None else f"{r.stack_bytes:,}", where])
    return tabulate(body, headers=["target", "core", "vectors", "mismatching scores",
                                   "trace bits differing", "accuracy", "instr/inference",
                                   "est. cycles", "flash B", "RAM B", "stack B", "first mismatch"],
                    tablefmt="simple", disable_numparse=True)
