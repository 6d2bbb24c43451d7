"""Memory over time as a picture: live bytes of one step, stacked by category, with the phases
as bands, the peak marked, and what is alive at the peak listed under it.

:func:`timeline_svg` needs nothing beyond the standard library; :func:`timeline_png` draws the
same chart with matplotlib (the optional ``plot`` extra) and says so when it is missing.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import escape

from advisor.core.errors import InvalidInputError
from advisor.core.io import atomic_write_bytes, atomic_write_text
from advisor.core.units import format_bytes
from profilers.timeline import MemoryTimeline

__all__ = ["timeline_png", "timeline_svg", "write_timeline"]

COLOURS = {
    "parameter": "#4c72b0",
    "buffer": "#937860",
    "optimizer": "#55a868",
    "gradient": "#dd8452",
    "input": "#ccb974",
    "activation": "#c44e52",
    "communication": "#8172b3",
}
LABELS = {
    "parameter": "parameters",
    "buffer": "buffers",
    "optimizer": "optimizer state",
    "gradient": "gradients",
    "input": "inputs",
    "activation": "activations",
    "communication": "communication buffers",
}
_BANDS = ("#f4f6fa", "#e9edf4")
_W, _H = 960, 470
_L, _R, _T, _B = 86, 190, 52, 150  # margins: left axis, right legend, title, axis + list


def _n(x: float) -> str:
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = span / ticks if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _binary_step(top: int) -> int:
    """A tick step in powers of two of KiB/MiB/GiB (so the labels read 256 MiB, 512 MiB…)."""
    step = 1
    while top / step > 7:
        step *= 2
    return step


def timeline_svg(tl: MemoryTimeline, title: str = "Memory over the step", budget_bytes: int | None = None) -> str:
    """The timeline as a standalone SVG (see the module docstring)."""
    pw, ph = _W - _L - _R, _H - _T - _B
    budget_note = ""
    if budget_bytes is not None and budget_bytes > 3 * tl.peak_bytes:  # drawn, it would flatten the step
        budget_note = f"; {tl.peak_bytes / budget_bytes:.1%} of the usable budget {format_bytes(budget_bytes)}"
        budget_bytes = None
    t0, t1 = (tl.t[0], tl.t[-1]) if tl.t else (0, 1)
    span_t = max(1, t1 - t0)
    top = max(tl.peak_bytes, budget_bytes or 0, 1)
    step = _binary_step(int(top * 1.05))
    y_max = step * math.ceil(top * 1.05 / step)

    def x(t: float) -> float:
        return _L + (t - t0) / span_t * pw

    def y(b: float) -> float:
        return _T + ph - b / y_max * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_L}" y="22" font-size="16" font-weight="bold">{escape(title)}</text>',
        f'<text x="{_L}" y="40" fill="#555">peak {escape(format_bytes(tl.peak_bytes))} in {escape(tl.peak_phase)}; '
        f'{tl.events} allocation/free events{" (downsampled, peaks kept)" if tl.downsampled else ""}'
        f"{escape(budget_note)}</text>",
    ]
    # phase bands with their names
    for i, p in enumerate(tl.phases):
        a, b = x(max(p.start, t0)), x(min(p.end, t1))
        if b <= a:
            continue
        out.append(f'<rect x="{_n(a)}" y="{_T}" width="{_n(b - a)}" height="{ph}" fill="{_BANDS[i % 2]}"/>')
        if b - a > 40:
            out.append(f'<text x="{_n((a + b) / 2)}" y="{_T + 14}" text-anchor="middle" fill="#666">{escape(p.name)}</text>')
    # y grid and labels
    tick = 0
    while tick <= y_max:
        out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{_n(y(tick))}" y2="{_n(y(tick))}" stroke="#d0d0d0" stroke-width="0.6"/>')
        out.append(f'<text x="{_L - 6}" y="{_n(y(tick) + 4)}" text-anchor="end">{escape(format_bytes(tick))}</text>')
        tick += step
    # stacked areas, drawn as steps (live bytes hold between events)
    base = [0] * len(tl.t)
    legend: list[tuple[str, str]] = []
    for ci, cat in enumerate(tl.categories):
        series = tl.live[ci]
        if not any(series):
            continue
        upper = [b + v for b, v in zip(base, series, strict=True)]
        pts: list[str] = []
        for i, t in enumerate(tl.t):
            nxt = tl.t[i + 1] if i + 1 < len(tl.t) else t1
            pts += [f"{_n(x(t))},{_n(y(upper[i]))}", f"{_n(x(nxt))},{_n(y(upper[i]))}"]
        for i in range(len(tl.t) - 1, -1, -1):
            t = tl.t[i]
            nxt = tl.t[i + 1] if i + 1 < len(tl.t) else t1
            pts += [f"{_n(x(nxt))},{_n(y(base[i]))}", f"{_n(x(t))},{_n(y(base[i]))}"]
        colour = COLOURS.get(cat, "#8c8c8c")
        out.append(f'<polygon points="{" ".join(pts)}" fill="{colour}" fill-opacity="0.9" stroke="none"><title>{escape(LABELS.get(cat, cat))}</title></polygon>')
        legend.append((LABELS.get(cat, cat), colour))
        base = upper
    # the total as a thin line on top: one-event spikes (often the peak) stay visible
    if tl.t:
        pts = []
        for i, t in enumerate(tl.t):
            nxt = tl.t[i + 1] if i + 1 < len(tl.t) else t1
            pts += [f"{_n(x(t))},{_n(y(base[i]))}", f"{_n(x(nxt))},{_n(y(base[i]))}"]
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#222" stroke-width="0.7"/>')
    # axes
    out.append(f'<line x1="{_L}" x2="{_L}" y1="{_T}" y2="{_T + ph}" stroke="#333"/>')
    out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{_T + ph}" y2="{_T + ph}" stroke="#333"/>')
    xs = _nice_step(span_t)
    tx = math.ceil(t0 / xs) * xs
    while tx <= t1:
        out.append(f'<text x="{_n(x(tx))}" y="{_T + ph + 16}" text-anchor="middle" fill="#555">{int(tx)}</text>')
        tx += xs
    out.append(f'<text x="{_L + pw / 2}" y="{_T + ph + 34}" text-anchor="middle" fill="#333">'
               "events through the step (each allocation or free is one)</text>")  # fmt: skip
    # budget line
    if budget_bytes is not None:
        by = y(budget_bytes)
        out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{_n(by)}" y2="{_n(by)}" stroke="#222" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{_L + pw - 4}" y="{_n(by - 5)}" text-anchor="end">usable budget {escape(format_bytes(budget_bytes))}</text>')
    # the peak
    px, py = x(tl.peak_t), y(tl.peak_bytes)
    out.append(f'<line x1="{_n(px)}" x2="{_n(px)}" y1="{_T}" y2="{_T + ph}" stroke="#000" stroke-width="1.2" stroke-dasharray="3,3"/>')
    out.append(f'<circle cx="{_n(px)}" cy="{_n(py)}" r="4.5" fill="#000"/>')
    anchor = "end" if px > _L + pw * 0.7 else "start"
    dx = -8 if anchor == "end" else 8
    out.append(f'<text x="{_n(px + dx)}" y="{_n(max(_T + 30, py - 8))}" text-anchor="{anchor}" font-weight="bold">'
               f"peak {escape(format_bytes(tl.peak_bytes))}</text>")  # fmt: skip
    # legend (top of the stack first)
    ly = _T + 4
    for label, colour in reversed(legend):
        out.append(f'<rect x="{_L + pw + 16}" y="{ly}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{_L + pw + 34}" y="{ly + 10}">{escape(label)}</text>')
        ly += 20
    # what is alive at the peak
    ly = _T + ph + 58
    out.append(f'<text x="{_L}" y="{ly}" font-weight="bold">Largest tensors alive at the peak</text>')
    for i, tt in enumerate(tl.top_tensors[:5]):
        out.append(
            f'<text x="{_L + (i // 3) * 380}" y="{ly + 18 + (i % 3) * 17}">'
            f'<tspan fill="{COLOURS.get(tt.category, "#333")}">■</tspan> {escape(format_bytes(tt.nbytes))} '
            f'{escape(LABELS.get(tt.category, tt.category))} — {escape(tt.op)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def timeline_png(tl: MemoryTimeline, title: str = "Memory over the step", budget_bytes: int | None = None) -> bytes:
    """The same chart drawn with matplotlib (the ``plot`` extra) as PNG bytes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidInputError(
            "PNG charts need matplotlib, which is not installed",
            "pip install 'vram-advisor[plot]', or write the chart as .svg",
        ) from None
    import io

    t = [*tl.t, tl.t[-1]] if tl.t else [0]
    if budget_bytes is not None and budget_bytes > 3 * tl.peak_bytes:
        title += f"\npeak {tl.peak_bytes / budget_bytes:.1%} of the usable budget {format_bytes(budget_bytes)}"
        budget_bytes = None
    step = _binary_step(int(max(tl.peak_bytes, budget_bytes or 0, 1) * 1.05))
    unit, div = ("GiB", 2**30) if step >= 2**28 else ("MiB", 2**20) if step >= 2**18 else ("KiB", 2**10)
    fig, ax = plt.subplots(figsize=(9.6, 4.7), dpi=100)
    width = max(1, t[-1] - t[0])
    for i, p in enumerate(tl.phases):
        ax.axvspan(p.start, p.end, color=_BANDS[i % 2], zorder=0)
        if (p.end - p.start) / width > 0.07:
            ax.text((p.start + p.end) / 2, 1.0, p.name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", color="#666")
    cats = [(c, s) for c, s in zip(tl.categories, tl.live, strict=True) if any(s)]
    ax.stackplot(
        list(tl.t), *[[v / div for v in s] for _, s in cats], step="post",
        colors=[COLOURS.get(c, "#8c8c8c") for c, _ in cats], labels=[LABELS.get(c, c) for c, _ in cats], alpha=0.9,
    )  # fmt: skip
    totals = tl.totals()
    ax.step(list(tl.t), [v / div for v in totals], where="post", color="#222", linewidth=0.6)
    ax.axvline(tl.peak_t, color="black", linestyle=":", linewidth=1)
    ax.plot([tl.peak_t], [tl.peak_bytes / div], "ko")
    ax.annotate(f"peak {format_bytes(tl.peak_bytes)}", (tl.peak_t, tl.peak_bytes / div), xytext=(6, 6),
                textcoords="offset points", fontweight="bold")  # fmt: skip
    if budget_bytes is not None:
        ax.axhline(budget_bytes / div, color="#222", linestyle="--", linewidth=1, label="usable budget")
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(0, None)
    ax.set_ylabel(f"live tensor memory ({unit})")
    ax.set_xlabel("events through the step (each allocation or free is one)")
    ax.set_title(title, loc="left", pad=18)
    top_text = "; ".join(f"{format_bytes(x.nbytes)} {LABELS.get(x.category, x.category)} ({x.op})" for x in tl.top_tensors[:2])
    fig.text(0.01, 0.01, f"alive at the peak ({tl.peak_phase}): {top_text}", fontsize=8, color="#333")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.subplots_adjust(bottom=0.17)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_timeline(
    tl: MemoryTimeline, path: str | Path, title: str = "Memory over the step", budget_bytes: int | None = None
) -> Path:
    """Write the chart atomically: PNG for ``.png`` (matplotlib), SVG otherwise."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        return atomic_write_bytes(path, timeline_png(tl, title, budget_bytes))
    return atomic_write_text(path, timeline_svg(tl, title, budget_bytes))
