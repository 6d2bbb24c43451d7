"""What the TUI shows for a recommendation: table rows and the detail of one plan (Rich markup).

Values are rendered with the CLI's and the report's own formatters (``money``, ``duration``, the
max-micro-batch cell), so the TUI never says ``0`` where the CLI says ``none``. The table keeps
to the terminal's width: each column has a drop rank, and what a narrow table leaves out is in
the detail pane.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.markup import escape

from advisor.core.units import format_bytes, format_rate
from advisor.report.snippets import snippet_for

# ``_batch_cell`` is the CLI's and the Markdown report's "max micro-batch" cell ("none" for 0,
# "(est.)" when not checked by a trial): one implementation, used here as it is.
from advisor.report.text import _batch_cell as batch_cell
from advisor.report.text import duration, money

__all__ = [
    "BAR_WIDTH",
    "CELL_PADDING",
    "COLUMNS",
    "Column",
    "ResultRow",
    "bar",
    "detail_text",
    "fit_columns",
    "plan_cell",
    "result_rows",
    "sort_key",
]

BAR_WIDTH = 20
CELL_PADDING = 1  # the DataTable's padding on each side of a cell
MIN_PLAN_WIDTH = 12  # a plan name is cut (with "…") no shorter than this; the detail has it whole


@dataclass(frozen=True)
class Column:
    """A results-table column; ``drop`` > 0 is the order in which a narrow table leaves it out
    (highest first), 0 is always shown."""

    key: str
    header: str
    drop: int = 0


COLUMNS: tuple[Column, ...] = (
    Column("#", "#"),
    Column("plan", "plan"),
    Column("fits", "fits"),
    Column("need", "need"),
    Column("share", "of budget", drop=2),
    Column("batch", "max batch"),
    Column("speed", "tok/s"),
    Column("train", "train%", drop=3),
    Column("time", "time"),
    Column("cost", "cost"),
    Column("source", "source", drop=1),
)


@dataclass(frozen=True)
class ResultRow:
    """One row of the results table: its plan, a cell per column key, and whether it fits
    (``None``: excluded)."""

    plan: str
    cells: dict[str, str]
    fits: bool | None


def bar(part: int, whole: int, width: int = BAR_WIDTH) -> str:
    """A text bar of ``part`` against ``whole``; overflows are capped and marked with ``>``."""
    if whole <= 0:
        return " " * width
    share = part / whole
    filled = min(width, round(share * width))
    text = "█" * filled + "·" * (width - filled)
    return text[:-1] + ">" if share > 1 else text


def _need_cell(v: Any) -> str:
    if v.need_bytes is not None:
        return format_bytes(v.need_bytes)
    return "out of memory" if v.trial is not None and v.trial.status.value == "oom" else "–"


def _share_cell(need: int | None, budget: int) -> str:
    if need is None or budget <= 0:
        return "–"
    return f"{bar(need, budget, 10)} {100 * need / budget:.0f}%"


def result_rows(rec: Any) -> list[ResultRow]:
    """A row per ranked plan, then the excluded ones (``fits`` ``None``)."""
    rows: list[ResultRow] = []
    budget = rec.budget_bytes
    for v in rec.ranked:
        trained = v.trial.params.trainable_percent if v.trial and v.trial.params else None
        cells = {
            "#": str(v.rank),
            "plan": v.plan + (" ★" if v.pareto else ""),
            "fits": "yes" if v.fits else "no",
            "need": _need_cell(v),
            "share": _share_cell(v.need_bytes, budget),
            "batch": batch_cell(v),
            "speed": format_rate(v.tokens_per_s, "").strip() + (" noisy" if v.noisy else ""),
            "train": "–" if trained is None else f"{trained:.3g}%",
            "time": duration(v.train_time_s),
            "cost": money(v.cost_usd),
            "source": v.need.provenance.value if v.need is not None else "–",
        }
        rows.append(ResultRow(v.plan, cells, bool(v.fits)))
    for v in rec.excluded:
        cells = {c.key: "–" for c in COLUMNS}
        cells.update(plan=v.plan, need="excluded", source=_cut(v.excluded_reason or "", 24))
        rows.append(ResultRow(v.plan, cells, None))
    return rows


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, ending in "…" when it was cut."""
    if cell_len(text) <= width:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def fit_columns(rows: list[ResultRow], width: int) -> tuple[list[Column], int]:
    """The columns that fit in ``width`` cells and the width left for the plan names.

    Droppable columns go, highest ``drop`` first, until the natural widths fit; then the plan
    column shrinks (not below MIN_PLAN_WIDTH). Returns ``(columns, plan_width)``.
    """

    def natural(col: Column) -> int:
        return max([cell_len(col.header), *(cell_len(r.cells[col.key]) for r in rows)])

    shown = list(COLUMNS)
    total = sum(natural(c) + 2 * CELL_PADDING for c in shown)
    for col in sorted((c for c in COLUMNS if c.drop), key=lambda c: -c.drop):
        if total <= width:
            break
        shown.remove(col)
        total -= natural(col) + 2 * CELL_PADDING
    plan = natural(COLUMNS[1])
    plan_width = max(MIN_PLAN_WIDTH, plan - max(0, total - width)) if total > width else plan
    return shown, plan_width


_UNITS = {"B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40,
          "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "days": 86400.0,
          "years": 365.25 * 86400}  # fmt: skip
_SUFFIXES = {"k": 1e3, "M": 1e6, "G": 1e9}
_NUMBER = re.compile(r"^[<$]*([0-9][0-9,]*(?:\.[0-9]+)?)([kMG%]?)(?: ([A-Za-zµ]+))?")


def sort_key(text: str) -> tuple[int, float, str]:
    """How a results cell sorts: numbers (with their unit: ``538.2 MiB`` < ``1.2 GiB``,
    ``50.2k`` < ``1.2M``, ``<$0.01`` < ``$0.02``) before text, text alphabetically."""
    if text == "none":  # no micro-batch fits: 0
        return (0, 0.0, text)
    match = _NUMBER.match(text.lstrip("█·> "))
    if match is None:
        return (1, 0.0, text)
    value = float(match[1].replace(",", "")) * _SUFFIXES.get(match[2], 1.0)
    return (0, value * _UNITS.get(match[3] or "", 1.0), text)


def plan_cell(text: str, width: int) -> str:
    """A plan name cut to ``width`` cells, keeping its Pareto star."""
    if cell_len(text) <= width:
        return text
    star = text.endswith(" ★")
    name = text[:-2] if star else text
    return _cut(name, width - 2) + " ★" if star else _cut(name, width)


def detail_text(rec: Any, plan: str) -> str:
    """Memory breakdown bars against the budget, counts, why, and the snippet, for one plan."""
    try:
        v = rec.verdict(plan)
    except KeyError:
        return f"no plan {escape(plan)}"
    budget = rec.budget_bytes
    lines = [f"[b]{escape(v.plan)}[/b]"]
    if v.excluded_reason:
        lines.append(f"[red]excluded:[/red] {escape(v.excluded_reason)}")
        return "\n".join(lines)
    if v.need is not None:
        verdict = "[green]fits[/green]" if v.fits else "[red]does not fit[/red]"
        lines.append(
            f"{verdict}: needs {format_bytes(v.need.total_bytes, 2)} of a {format_bytes(budget, 2)} budget "
            f"({escape(v.need.provenance.value)})"
        )
        width = max(len(p.name) for p in v.need.parts)
        for part in v.need.parts:
            lines.append(
                f"  {part.name:<{width}} {bar(part.size_bytes, budget)} {format_bytes(part.size_bytes, 2):>11}"
                f"  [dim]{part.provenance.value}[/dim]"
            )
        lines.append(f"  {'total':<{width}} {bar(v.need.total_bytes, budget)} {format_bytes(v.need.total_bytes, 2):>11}")
    elif v.trial is not None:
        lines.append(f"[red]{escape(v.trial.reason or v.trial.status.value)}[/red]")
    if v.trial is not None and v.trial.params is not None:
        p = v.trial.params
        lines.append(
            f"parameters: {p.total:,} total, {p.trainable:,} trainable ({p.trainable_percent:.3g}%)"
            f"  [dim]{p.provenance.value}[/dim]"
        )
    lines += _distributed_lines(v)
    if v.max_micro_batch is not None:
        prov = v.max_micro_batch_provenance.value if v.max_micro_batch_provenance else ""
        checked = "checked at the boundary" if v.max_micro_batch_checked else "from a fit"
        largest = "none, not even 1" if v.max_micro_batch == 0 else str(v.max_micro_batch)
        lines.append(f"largest micro-batch that fits: {largest} ({checked}; {prov})")
    if v.tokens_per_s is not None:
        prov = v.throughput_provenance.value if v.throughput_provenance else ""
        if v.noisy and v.timing_spread is not None:  # not ranked on: see advisor.recommend.ranking
            prov += f"; noisy: timed steps varied by {v.timing_spread:.0%}, not ranked on"
        lines.append(
            f"speed: {format_rate(v.tokens_per_s, 'tok/s')} ({prov}); workload: "
            f"{duration(v.train_time_s)}, {money(v.cost_usd)} at {money(rec.gpu.price_usd_per_hour)}/h"
        )
    lines.append(f"rank {v.rank}" + (" · on the memory–speed Pareto front" if v.pareto else ""))
    if v.why:
        lines.append(f"why: {escape(v.why)}")
    snippet = _snippet(rec, v)
    if snippet:
        lines += ["", "[b]snippet[/b]", escape(snippet)]
    return "\n".join(lines)


def _distributed_lines(v: Any) -> list[str]:
    """One rank of a distributed plan: its tensor peak, the communication buffers in it, and
    what it sends per step (with the time over the link where the recommender priced it)."""
    d = v.trial.distributed if v.trial is not None else None
    if d is None:
        return []
    where = f"rank {d.rank} of {d.world_size}" + (f" on {d.nodes} nodes" if d.nodes > 1 else "")
    out = [f"[b]per rank[/b] ({escape(d.strategy or 'distributed')}, {where}):"]
    if v.trial.tensor_peak is not None:
        out.append(
            f"  memory: {format_bytes(v.trial.tensor_peak.peak_bytes, 2)} tensor peak, "
            f"{format_bytes(d.communication_buffer_bytes, 2)} of it communication buffers  "
            f"[dim]{escape(d.provenance.value)}[/dim]"
        )
    sent = v.comm_bytes_per_step if v.comm_bytes_per_step is not None else d.comm_bytes_per_step
    if sent is not None:
        time = f" ({duration(v.comm_time_s)} over the link)" if v.comm_time_s is not None else ""
        out.append(f"  communication: {format_bytes(sent, 2)} sent per step{time}  [dim]estimated[/dim]")
    if d.rank_peak_bytes:
        peaks = ", ".join(format_bytes(b, 2) for b in d.rank_peak_bytes)
        out.append(f"  measured ranks' peaks: {peaks}")
    return out


def _snippet(rec: Any, v: Any) -> str:
    try:
        return str(snippet_for(rec, v))
    except Exception:  # a snippet is a convenience: never break the detail view over it
        return ""


def sparkline_data(values: list[int], width: int) -> list[float]:
    """``values`` in at most ``width`` points for a sparkline, each the largest of its run of
    values (so the peak is never averaged away)."""
    if len(values) <= width:
        return [float(v) for v in values]
    size = -(-len(values) // width)
    return [float(max(values[i : i + size])) for i in range(0, len(values), size)]
