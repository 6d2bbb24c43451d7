"""A recommendation as an SVG chart: memory by plan, stacked by part, against the budget."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from advisor.core.units import format_bytes
from advisor.recommend import (
    ACTIVATIONS,
    ALLOCATOR,
    ATTENTION,
    CONTEXT,
    GRADIENTS,
    OPTIMIZER,
    PARAMETERS,
    WORKSPACES,
    Recommendation,
)

__all__ = ["chart_svg"]


_COLOURS = {
    PARAMETERS: "#4c72b0",
    GRADIENTS: "#dd8452",
    OPTIMIZER: "#55a868",
    ACTIVATIONS: "#c44e52",
    ALLOCATOR: "#8172b3",
    CONTEXT: "#937860",
    WORKSPACES: "#da8bc3",
    ATTENTION: "#ccb974",
}
_OTHER = "#8c8c8c"
_MAX_ROWS = 40


def _nice_step(span: float, target_ticks: int = 8) -> float:
    raw = span / target_ticks
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _n(x: float) -> str:
    """A coordinate with at most one decimal, no trailing zeros (deterministic text)."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def chart_svg(rec: Recommendation) -> str:
    """Memory by plan (stacked by part) with the usable budget and the GPU's memory as lines."""
    rows = [v for v in rec.ranked][:_MAX_ROWS]
    more = len(rec.ranked) - len(rows)
    memory, budget = rec.gpu.memory_bytes, rec.budget_bytes
    needs = [v.need_bytes for v in rows if v.need_bytes is not None]
    clip = memory * 2.5
    scale_max = max(memory * 1.1, min(max(needs, default=0), clip) * 1.02)
    gib = 2**30
    unit, unit_name = (gib, "GiB") if scale_max >= gib else (2**20, "MiB")
    step = _nice_step(scale_max / unit) * unit

    left, bar_w, right = 300, 520, 110
    row_h, bar_h = 24, 16
    width = left + bar_w + right
    legend_names: list[str] = []
    for v in rows:
        for p in v.need.parts if v.need else ():
            if p.name not in legend_names:
                legend_names.append(p.name)
    legend: list[tuple[float, int, str]] = []  # (x, line, name), wrapped to the chart's width
    lx, line = float(left), 0
    for name in legend_names:
        item_w = 20 + 6.2 * len(name)
        if lx + item_w > width - 8 and lx > left:
            lx, line = float(left), line + 1
        legend.append((lx, line, name))
        lx += item_w
    top = 64 + 16 * (max((ln for _, ln, _ in legend), default=0))
    height = top + row_h * max(1, len(rows)) + 56 + (16 if more else 0)

    def x(b: float) -> float:
        return left + bar_w * min(b, scale_max) / scale_max

    title = f"{rec.model} on {rec.gpu.name}: predicted memory per plan"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for lx, line, name in legend:
        colour = _COLOURS.get(name, _OTHER)
        ly = 28 + 16 * line
        out.append(f'<rect x="{_n(lx)}" y="{ly}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{_n(lx + 14)}" y="{ly + 9}" font-size="11">{escape(name)}</text>')
    # grid and axis
    axis_y = top + row_h * max(1, len(rows)) + 4
    tick = 0.0
    while tick <= scale_max + 1e-9:
        tx = x(tick)
        out.append(f'<line x1="{_n(tx)}" y1="{top - 6}" x2="{_n(tx)}" y2="{axis_y}" stroke="#e6e6e6"/>')
        out.append(
            f'<text x="{_n(tx)}" y="{axis_y + 14}" text-anchor="middle" font-size="10">{tick / unit:g}</text>'
        )
        tick += step
    out.append(
        f'<text x="{left + bar_w / 2:.0f}" y="{axis_y + 30}" text-anchor="middle" font-size="11">'
        f"predicted need ({unit_name})</text>"
    )
    for i, v in enumerate(rows):
        y = top + i * row_h
        mark = "✓" if v.fits else "✗"
        label = f"#{v.rank} {v.plan}"
        if len(label) > 44:
            label = label[:43] + "…"
        colour = "#1a7f37" if v.fits else "#b42318"
        out.append(
            f'<text x="{left - 8}" y="{y + bar_h - 3}" text-anchor="end">'
            f'<tspan fill="{colour}">{mark}</tspan> {escape(label)}</text>'
        )
        if v.need is None:
            text = (
                "out of memory (measured)" if v.trial is not None and v.trial.status.value == "oom" else "–"
            )
            out.append(f'<text x="{left + 4}" y="{y + bar_h - 3}" fill="#b42318">{escape(text)}</text>')
            continue
        acc = 0
        for p in v.need.parts:
            if p.size_bytes <= 0 or acc >= scale_max:
                acc += max(p.size_bytes, 0)
                continue
            x0, x1 = x(acc), x(acc + p.size_bytes)
            acc += p.size_bytes
            if x1 - x0 < 0.05:
                continue
            out.append(
                f'<rect x="{_n(x0)}" y="{y}" width="{_n(x1 - x0)}" height="{bar_h}" '
                f'fill="{_COLOURS.get(p.name, _OTHER)}"><title>{escape(p.name)}: '
                f"{escape(format_bytes(p.size_bytes))} ({p.provenance.value})</title></rect>"
            )
        total = v.need.total_bytes
        clipped = total > scale_max
        end = x(total)
        text = format_bytes(total) + (" ▶" if clipped else "")
        out.append(f'<text x="{_n(end + 4)}" y="{y + bar_h - 3}" font-size="11">{escape(text)}</text>')
    # the budget lines, drawn over the bars
    for value, style, text in (
        (budget, 'stroke="#b42318" stroke-dasharray="6 3"', f"usable {format_bytes(budget)}"),
        (memory, 'stroke="#222222"', f"GPU {format_bytes(memory)}"),
    ):
        bx = x(value)
        out.append(
            f'<line x1="{_n(bx)}" y1="{top - 8}" x2="{_n(bx)}" y2="{axis_y}" {style} stroke-width="1.5"/>'
        )
        anchor = "end" if value == budget else "start"
        dx = -3 if value == budget else 3
        out.append(
            f'<text x="{_n(bx + dx)}" y="{top - 10}" text-anchor="{anchor}" font-size="10">{escape(text)}</text>'
        )
    if more:
        out.append(
            f'<text x="{left}" y="{height - 8}" font-size="11">… and {more} more plans (see the table)</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
