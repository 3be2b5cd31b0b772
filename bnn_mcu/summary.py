"""Model summary in deployed bytes (`bnn-mcu inspect`, the generated README)."""

from __future__ import annotations

from dataclasses import dataclass

from tabulate import tabulate

from .codegen.plan import plan_arena, scratch_bytes
from .escape import markdown_text, one_line
from .ir.ops import BConv2d, BDense, IntModel


@dataclass
class LayerRow:
    index: int
    name: str
    kernel: str
    in_shape: tuple
    out_shape: tuple
    binary_macs: int
    int8_macs: int
    weight_bits: int
    flash_bytes: int
    act_bytes: int
    peak_ram: int


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def layer_rows(model: IntModel) -> list[LayerRow]:
    rows = []
    in_bytes = model.input_bytes
    for i, op in enumerate(model.ops):
        binary = isinstance(op, (BDense, BConv2d))
        wbits = op.weights.nbytes * 8 if hasattr(op, "weights") else 0
        rows.append(LayerRow(i, op.name, op.c_function, op.in_shape, op.out_shape,
                             op.macs if binary else 0, 0 if binary else op.macs, wbits,
                             op.param_bytes, op.out_bytes, in_bytes + op.out_bytes))
        in_bytes = op.out_bytes
    return rows


def totals(model: IntModel, core: str | None = None) -> dict:
    """Whole-model figures; the RAM ones for `core` (a cores.py name: the uint8 dense tables'
    scratch depends on it), or with None the largest over the Arm cores."""
    plan = plan_arena(model)
    rows = layer_rows(model)
    scores_bytes = 4 * model.num_classes
    scratch = scratch_bytes(model, core)
    return {
        "binary_macs": sum(r.binary_macs for r in rows),
        "int8_macs": sum(r.int8_macs for r in rows),
        "weight_bits": sum(r.weight_bits for r in rows),
        "flash_bytes": model.param_bytes,
        "arena_bytes": plan.size,
        "input_bytes": model.input_bytes,
        "scores_bytes": scores_bytes,
        "scratch_bytes": scratch,
        # what the model needs in RAM: the arena, the uint8 dense scratch, the caller's input
        # image and score array
        "ram_bytes": plan.size + scratch + model.input_bytes + scores_bytes,
    }


def summary_table(model: IntModel, fmt: str = "simple", core: str | None = None) -> str:
    """The per-layer table; its total RAM for `core` (totals)."""
    rows = layer_rows(model)
    t = totals(model, core)
    name = markdown_text if fmt == "github" else one_line  # names come from model files
    body = [[r.index, name(r.name), r.kernel, _shape(r.in_shape), _shape(r.out_shape),
             f"{r.binary_macs:,}", f"{r.int8_macs:,}", f"{r.weight_bits:,}", f"{r.flash_bytes:,}",
             f"{r.act_bytes:,}", f"{r.peak_ram:,}"] for r in rows]
    body.append(["", "total", "", _shape(model.input_shape), _shape((model.num_classes,)),
                 f"{t['binary_macs']:,}", f"{t['int8_macs']:,}", f"{t['weight_bits']:,}",
                 f"{t['flash_bytes']:,}", f"arena {t['arena_bytes']:,}", f"{t['ram_bytes']:,}"])
    headers = ["#", "layer", "kernel", "input", "output", "binary MACs", "int8 MACs",
               "weight bits", "flash B", "act B", "peak RAM B"]
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True,
                    colalign=("right", "left", "left", "left", "left") + ("right",) * 6)
