"""`bench --report out.html`: one self-contained page with per-layer and memory charts (SVG)."""

from __future__ import annotations

import html
from pathlib import Path

from .errors import BnnError

_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")


def _bars(title: str, items: list, unit: str, width: int = 760) -> str:
    """Horizontal bar chart: items = [(label, value, note)]."""
    if not items:
        return ""
    top = max(v for _, v, _ in items) or 1
    label_w, row_h = 230, 26
    h = row_h * len(items) + 30
    out = [f'<h3>{html.escape(title)}</h3>',
           f'<svg width="{width}" height="{h}" role="img" aria-label="{html.escape(title)}">']
    for i, (label, value, note) in enumerate(items):
        y = 10 + i * row_h
        w = int((width - label_w - 170) * value / top)
        color = _COLORS[i % len(_COLORS)]
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{html.escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{row_h - 6}" fill="{color}">'
                   f'<title>{html.escape(label)}: {value:,} {unit}</title></rect>')
        out.append(f'<text x="{label_w + w + 6}" y="{y + 16}">{value:,} {html.escape(unit)}'
                   f'{html.escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_report(reports: list, model, path: Path) -> None:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>bnn-mcu bench</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}"
             "svg text{font-size:13px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>",
             f"<h1>bnn-mcu bench: {html.escape(model.meta.get('name', 'model'))}</h1>"]
    if len(reports) > 1:
        parts.append(_bars("Per inference, all boards", [
            (f"{r.board} ({r.core})", r.per_inference, "") for r in reports], reports[0].unit))
    for r in reports:
        parts.append(f"<h2>{html.escape(r.board)} ({html.escape(r.core)}): "
                     f"{r.per_inference:,} {html.escape(r.unit)} per inference</h2>")
        layers = [(f"{l.name} ({l.op})", l.count,
                   f"  {l.macs / l.count:.2f} MACs/{r.unit[:5]}." if l.count and l.macs else "")
                  for l in r.layers] + [("argmax + return", r.tail, "")]
        parts.append(_bars("Per layer", layers, r.unit))
        parts.append(_bars("Memory", [
            ("weights + thresholds (flash)", r.flash_bytes, ""),
            ("kernels + model code (flash)", r.code_bytes, ""),
            ("whole runner firmware (flash)", r.firmware_flash_bytes, ""),
            ("activation arena (RAM)", r.arena_bytes, ""),
            ("stack high-water (RAM)", r.stack_bytes, ""),
            ("runner static RAM", r.firmware_ram_bytes, "")], "B"))
    parts.append("</body></html>\n")
    try:
        path.write_text("\n".join(parts))
    except OSError as e:
        raise BnnError(f"{path}: cannot write the report ({e.strerror})") from None
