"""`bench --report` / `verify --report`: one self-contained HTML page per run, a validation
record to keep (no script, no external file: inline CSS and SVG only).

It holds what identifies the run (model hash, tool version, compiler and flags, board and core,
clock, date), the per-layer table (instructions, estimated cycles, time at the clock, MACs per
instruction, flash and activation bytes), memory, parity and accuracy when verified, and bar
charts that start at zero with a labelled axis, flash and RAM on separate scales.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from .bench import fmt_seconds
from .errors import BnnError
from .summary import layer_rows

_BAR = "#4e79a7"
_BAR_EST = "#f28e2b"

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;font-variant-numeric:tabular-nums}
table.layers,table.parity{font-size:.85em}table.layers td{white-space:nowrap}
.scroll{overflow-x:auto}
th{background:#f3f3f3}td.l,th.l{text-align:left}
table.record td{text-align:left}table.record th{text-align:left;width:14em}
.pass{color:#176b2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}
.note{color:#555;font-size:.9em}svg text{font-size:12px;font-family:system-ui,sans-serif}
"""


def clock_hz(mhz: float | None) -> int:
    """--clock-mhz in Hz (0: each board's default clock)."""
    return int(round(mhz * 1e6)) if mhz else 0


def _e(v) -> str:
    return html.escape(str(v))


def _nice_step(top: float) -> float:
    """A round axis step giving about 5 ticks up to `top`."""
    raw = top / 5 or 1
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def bar_chart(title: str, items: list, unit: str, chart_id: str, width: int = 900) -> str:
    """Horizontal bars from zero on a linear axis with round ticks; items = [(label, value)]."""
    if not items:
        return ""
    top = max(v for _, v in items) or 1
    step = _nice_step(top)
    axis_max = step * math.ceil(top / step)
    label_w, value_w, row_h = 240, 110, 22
    plot_w = width - label_w - value_w
    h = row_h * len(items) + 46

    def x(v):
        return label_w + plot_w * v / axis_max

    out = [f'<h3>{_e(title)}</h3>',
           f'<svg id="{_e(chart_id)}" class="chart" width="{width}" height="{h}" role="img" '
           f'aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg">']
    ticks = int(round(axis_max / step))
    base = row_h * len(items) + 8
    for k in range(ticks + 1):
        v = k * step
        out.append(f'<line x1="{x(v):.1f}" y1="4" x2="{x(v):.1f}" y2="{base}" stroke="#ddd"/>')
        out.append(f'<text x="{x(v):.1f}" y="{base + 14}" text-anchor="middle">{v:,.10g}</text>')
    out.append(f'<text x="{label_w + plot_w / 2:.1f}" y="{base + 32}" '
               f'text-anchor="middle">{_e(unit)} (axis from 0)</text>')
    for i, (label, value) in enumerate(items):
        y = 6 + i * row_h
        w = plot_w * value / axis_max
        out.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end">{_e(label)}</text>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{max(w, 0.5):.1f}" '
                   f'height="{row_h - 6}" fill="{_BAR}"><title>{_e(label)}: {value:,} {_e(unit)}'
                   f'</title></rect>')
        out.append(f'<text x="{label_w + w + 5:.1f}" y="{y + 13}">{value:,}</text>')
    out.append(f'<line x1="{label_w}" y1="4" x2="{label_w}" y2="{base}" stroke="#444"/>')
    out.append("</svg>")
    return "\n".join(out)


def _table(headers: list, rows: list, cls: str = "", left: int = 0) -> str:
    """An HTML table; the first `left` columns are left-aligned (names)."""
    def cell(tag, i, v):
        return f'<{tag}{" class=l" if i < left else ""}>{v}</{tag}>'
    head = "".join(cell("th", i, _e(h)) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def _record(items: list) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in items if v not in (None, ""))
    return f'<table class="record">{rows}</table>'


def _verdict(ok: bool) -> str:
    return '<span class="pass">PASS</span>' if ok else '<span class="fail">FAIL</span>'


def _board_section(r, model, clock_hz: int, idx: int) -> str:
    clock = clock_hz or r.clock_hz
    est = r.cycles_est is not None
    # time: estimated (QEMU) or measured (a board's DWT) cycles at the clock, or the firmware
    # timer's ticks at their own rate (host: ns)
    time_basis = (lambda l: l.cycles_est) if est else \
        ((lambda l: l.count) if r.unit in ("cycles", "ticks") else None)
    if r.unit == "ticks" and not est:
        clock = r.counter_hz
    geo = {row.name: row for row in layer_rows(model)}
    rows = []
    for i, l in enumerate(r.layers):
        g = geo.get(l.name)
        cyc = time_basis(l) if time_basis else None
        rows.append([i, _e(l.name), _e(l.op), _e(l.in_shape), _e(l.out_shape), f"{l.macs:,}",
                     f"{l.count:,}", f"{l.cycles_est:,}" if est else "-",
                     fmt_seconds(cyc / clock) if (cyc is not None and clock) else "-",
                     f"{l.macs / l.count:.2f}" if l.count and l.macs else "-",
                     f"{g.flash_bytes:,}" if g else "-", f"{g.peak_ram:,}" if g else "-"])
    total_cyc = r.cycles_est if est else (r.per_inference if time_basis else None)
    rows.append(["", "argmax + return", "", "", "", "", f"{r.tail:,}",
                 f"{r.tail_cycles_est:,}" if est else "-", "", "", "", ""])
    rows.append(["", "<b>per inference</b>", "", "", "", f"<b>{sum(l.macs for l in r.layers):,}</b>",
                 f"<b>{r.per_inference:,}</b>", f"<b>{r.cycles_est:,}</b>" if est else "-",
                 f"<b>{fmt_seconds(total_cyc / clock)}</b>" if (total_cyc and clock) else "-",
                 f"{sum(l.macs for l in r.layers) / max(1, r.per_inference):.2f}",
                 f"{r.flash_bytes:,}", f"arena {r.arena_bytes:,}"])
    unit = r.unit
    headers = ["#", "layer", "kernel", "input", "output", "MACs", unit,
               "cycles (estimated)",
               ("time (ticks at their rate)" if r.unit == "ticks" and not est else
                f"{'est. ' if est else ''}time at {clock / 1e6:g} MHz") if clock else "time",
               f"MACs/{unit[:5]}.", "flash B", "activations B (in+out)"]
    parts = [f'<h2 id="board-{idx}">{_e(r.board)} ({_e(r.core)})</h2>',
             _table(headers, rows, "layers", left=5)]
    if est:
        parts.append('<p class="note">Instructions are exact (QEMU TCG plugin, identical run to '
                     'run). Cycles are an estimate: each executed instruction weighed by the '
                     "core's published timings (loads, stores, LDM/STM N+1, taken branches with "
                     "pipeline refill, multiplies, divides); no wait states, no dual issue. "
                     "See docs/performance.md.</p>")
    chart_items = [(f"{l.name} ({l.op})", l.cycles_est if est else l.count) for l in r.layers]
    parts.append(bar_chart(f"Per layer: {'estimated cycles' if est else unit}", chart_items,
                           "estimated cycles" if est else unit, f"layers-{idx}"))
    parts.append("<h3>Memory</h3>" + _table(
        ["", "bytes"], [
            ["weights + thresholds (flash)", f"{r.flash_bytes:,}"],
            ["kernels + model code (flash)", f"{r.code_bytes:,}"],
            ["whole runner firmware (flash)", f"{r.firmware_flash_bytes:,}"],
            ["activation arena (RAM)", f"{r.arena_bytes:,}"],
            ["stack high-water, whole inference (RAM)", f"{r.stack_bytes:,}"],
            ["runner static RAM incl. stack reserve", f"{r.firmware_ram_bytes:,}"]],
        "memory", left=1))
    parts.append(bar_chart("Flash", [
        ("weights + thresholds", r.flash_bytes), ("kernels + model code", r.code_bytes),
        ("whole runner firmware", r.firmware_flash_bytes)], "bytes of flash", f"flash-{idx}"))
    parts.append(bar_chart("RAM", [
        ("activation arena", r.arena_bytes), ("stack high-water", r.stack_bytes),
        ("runner static RAM", r.firmware_ram_bytes)], "bytes of RAM", f"ram-{idx}"))
    return "\n".join(parts)


def _parity_section(parity: list) -> str:
    rows = []
    for p in parity:
        rows.append([_e(p.target), _e(p.core), f"{p.vectors:,}", f"{p.score_mismatches:,}",
                     f"{p.class_mismatches:,}",
                     f"{p.trace_mismatching_bits:,} of {p.trace_bits:,}" if p.traced else "-",
                     f"{100.0 * p.correct / max(1, p.vectors):.2f} %", _verdict(p.ok)])
    first = [p for p in parity if p.first_vector is not None]
    note = "".join(f"<p class='fail'>{_e(p.target)}: first difference at vector {p.first_vector}, "
                   f"layer {_e(p.first_layer)}, channel {_e(p.first_channel)}</p>" for p in first)
    return ("<h2 id='parity'>Parity with the emulator (the specification)</h2>" +
            _table(["target", "core", "vectors", "vectors with differing scores",
                    "differing classes", "differing trace bits", "accuracy (device)", "result"],
                   rows, "parity", left=2) + note)


def write_report(path: Path, model, reports: list, *, kind: str = "bench", parity: list = (),
                 data_name: str = "", clock_hz: int = 0, input_note: str = "") -> None:
    """Write the page. `reports`: bench.BenchReport per board; `parity`: verify.DeviceParity."""
    first = reports[0] if reports else None
    from . import __version__
    from .ir.bnnfile import model_hash

    ok = all(p.ok for p in parity) if parity else None
    targets = ", ".join(f"{r.board} ({r.core})" for r in reports) or \
        ", ".join(f"{p.target} ({p.core})" for p in parity)
    clocks = ", ".join(sorted({f"{(clock_hz or r.clock_hz) / 1e6:g} MHz"
                               for r in reports if clock_hz or r.clock_hz}))
    date = first.date if first and first.date else None
    if date is None:
        from .bench import run_record
        date = run_record(model)["date"]
    name = model.meta.get("name", "model")
    record = [
        ("model", _e(name)),
        ("model hash (SHA-256)", f"<code>{_e(model_hash(model))}</code>"),
        ("bnn-mcu version", _e(first.tool_version if first else __version__)),
        ("date", _e(date)),
        ("target", _e(targets)),
        ("clock for times", _e(clocks + (" (--clock-mhz)" if clock_hz else " (board default)"))
         if clocks else ""),
        ("compiler and flags", "<br>".join(sorted({f"<code>{_e(r.compiler)}</code>"
                                                   for r in reports if r.compiler}))),
        ("input", _e(input_note)),
        ("data set", _e(data_name)),
        ("parity", (_verdict(ok) + (" (every score of every vector, per-layer bits of the traced "
                                    "vectors, equal to the emulator)" if ok else ""))
         if ok is not None else ""),
        ("accuracy", "; ".join(f"{_e(p.target)} {100.0 * p.correct / max(1, p.vectors):.2f} % "
                               f"of {p.vectors:,}" for p in parity)),
    ]
    title = f"bnn-mcu {kind} report: {name}"
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1>", _record(record)]
    if parity:
        parts.append(_parity_section(list(parity)))
    est = all(r.cycles_est is not None for r in reports)
    if len(reports) > 1 and (est or len({r.unit for r in reports}) == 1):  # one unit per axis
        parts.append(bar_chart("Per inference, all boards" + (" (estimated cycles)" if est else ""),
                               [(f"{r.board} ({r.core})", r.cycles_est if est else r.per_inference)
                                for r in reports],
                               "estimated cycles" if est else reports[0].unit, "boards"))
    for i, r in enumerate(reports):
        parts.append(_board_section(r, model, clock_hz, i))
    parts.append("</body></html>\n")
    try:
        path.write_text("\n".join(parts))
    except OSError as e:
        raise BnnError(f"{path}: cannot write the report ({e.strerror})") from None
