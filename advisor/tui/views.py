"""What the TUI shows for a recommendation: table rows and the detail of one plan (Rich markup)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from advisor.core.units import format_bytes, format_rate, format_seconds
from advisor.report.snippets import snippet_for

__all__ = ["BAR_WIDTH", "bar", "detail_text", "result_rows"]

BAR_WIDTH = 20


def bar(part: int, whole: int, width: int = BAR_WIDTH) -> str:
    """A text bar of ``part`` against ``whole``; overflows are capped and marked with ``>``."""
    if whole <= 0:
        return " " * width
    share = part / whole
    filled = min(width, round(share * width))
    text = "█" * filled + "·" * (width - filled)
    return text[:-1] + ">" if share > 1 else text


def _money(x: float | None) -> str:
    if x is None:
        return "–"
    return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def result_rows(rec: Any) -> list[tuple[str, list[str], bool | None]]:
    """``(plan, cells, fits)`` per ranked plan, then the excluded ones (fits ``None``)."""
    rows: list[tuple[str, list[str], bool | None]] = []
    budget = rec.budget_bytes
    for v in rec.ranked:
        need = v.need_bytes
        trained = v.trial.params.trainable_percent if v.trial and v.trial.params else None
        source = v.need.provenance.value if v.need is not None else "–"
        cells = [
            str(v.rank),
            v.plan + (" ★" if v.pareto else ""),
            "fits" if v.fits else "no",
            (f"{bar(need, budget, 10)} {format_bytes(need)}" if need is not None else "out of memory"),
            "–" if v.max_micro_batch is None else str(v.max_micro_batch),
            format_rate(v.tokens_per_s, ""),
            "–" if trained is None else f"{trained:.3g}%",
            format_seconds(v.train_time_s),
            _money(v.cost_usd),
            source,
        ]
        rows.append((v.plan, cells, bool(v.fits)))
    for v in rec.excluded:
        cells = ["–", v.plan, "excluded", "–", "–", "–", "–", "–", "–", (v.excluded_reason or "")[:40]]
        rows.append((v.plan, cells, None))
    return rows


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
    if v.max_micro_batch is not None:
        prov = v.max_micro_batch_provenance.value if v.max_micro_batch_provenance else ""
        checked = "checked at the boundary" if v.max_micro_batch_checked else "from a fit"
        lines.append(f"largest micro-batch that fits: {v.max_micro_batch} ({checked}; {prov})")
    if v.tokens_per_s is not None:
        prov = v.throughput_provenance.value if v.throughput_provenance else ""
        lines.append(
            f"speed: {format_rate(v.tokens_per_s, 'tok/s')} ({prov}); workload: "
            f"{format_seconds(v.train_time_s)}, {_money(v.cost_usd)} at ${rec.gpu.price_usd_per_hour:.2f}/h"
        )
    lines.append(f"rank {v.rank}" + (" · on the memory–speed Pareto front" if v.pareto else ""))
    if v.why:
        lines.append(f"why: {escape(v.why)}")
    snippet = _snippet(rec, v)
    if snippet:
        lines += ["", "[b]snippet[/b]", escape(snippet)]
    return "\n".join(lines)


def _snippet(rec: Any, v: Any) -> str:
    try:
        return str(snippet_for(rec, v))
    except Exception:  # a snippet is a convenience: never break the detail view over it
        return ""
