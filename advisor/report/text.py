"""A recommendation as plain text for a terminal, and the table cells Markdown shares."""

from __future__ import annotations

from advisor.core.tables import table
from advisor.core.units import format_bytes, format_count, format_rate, format_seconds
from advisor.recommend import PlanVerdict, Recommendation

__all__ = [
    "HEADERS",
    "duration",
    "headroom_cell",
    "host_bytes",
    "host_lines",
    "money",
    "ranked_rows",
    "summary_lines",
    "to_text",
]


def money(x: float | None) -> str:
    if x is None:
        return "–"
    if 0 < x < 0.01:
        return "<$0.01"
    if x >= 1e6:
        return f"${x / 1e6:,.2f}M"
    if x >= 100:
        return f"${x:,.0f}"
    return f"${x:,.2f}"


def duration(s: float | None) -> str:
    if s is not None and s >= 365 * 86400:
        return f"{s / (365.25 * 86400):,.1f} years"
    return format_seconds(s)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _estimated(v: PlanVerdict) -> bool:
    """Whether the plan's tensor figures are the closed-form estimate (not replayable)."""
    return v.trial is not None and "estimate" in v.trial.extra


def _upper_bound(v: PlanVerdict) -> bool:
    """Whether the plan's figures are an upper bound (the eager replay of a compiled plan)."""
    sim = v.trial.simulation if v.trial is not None else None
    return sim is not None and bool(sim.upper_bound)


def host_bytes(v: PlanVerdict) -> int | None:
    """Pinned host memory the plan needs beside the device's (activation offload), if any."""
    sim = v.trial.simulation if v.trial is not None else None
    return sim.host_peak_bytes if sim is not None else None


def _need_cell(v: PlanVerdict) -> str:
    if v.need is None:
        return "out of memory" if v.trial is not None and v.trial.status.value == "oom" else "–"
    mark = " *" if _estimated(v) else ""
    at_most = "≤ " if _upper_bound(v) else ""
    return f"{at_most}{format_bytes(v.need.total_bytes)} ({_share(v.need.total_bytes, v.budget_bytes)}){mark}"


def host_lines(rec: Recommendation) -> list[str]:
    """One line per ranked plan that also needs pinned host memory (activation offload)."""
    return [
        f"{v.plan}: + {format_bytes(host)} pinned host memory for offloaded activations (simulated)"
        for v in rec.ranked
        if (host := host_bytes(v))
    ]


def headroom_cell(v: PlanVerdict) -> str:
    h = v.headroom_bytes
    if h is None:
        return "–"
    return format_bytes(h) if h >= 0 else f"−{format_bytes(-h)} over"


def _batch_cell(v: PlanVerdict) -> str:
    if v.max_micro_batch is None:
        return "–"
    if v.max_micro_batch == 0:
        return "none"
    return f"{v.max_micro_batch}" + ("" if v.max_micro_batch_checked else " (est.)")


def _fits_cell(v: PlanVerdict) -> str:
    return "yes" if v.fits else "no"


def ranked_rows(rec: Recommendation, with_why: bool) -> list[list[str]]:
    rows = []
    for v in rec.ranked:
        row = [
            str(v.rank),
            v.plan,
            _fits_cell(v),
            _need_cell(v),
            headroom_cell(v),
            _batch_cell(v),
            format_rate(v.tokens_per_s, "tok/s"),
            duration(v.train_time_s),
            money(v.cost_usd),
            "★" if v.pareto else "",
        ]
        if with_why:
            row.append(v.why)
        rows.append(row)
    return rows


HEADERS = [
    "#",
    "plan",
    "fits",
    "need (of budget)",
    "headroom",
    "max micro-batch",
    "speed",
    "time",
    "cost",
    "front",
]


def summary_lines(rec: Recommendation) -> list[str]:
    g, w = rec.gpu, rec.workload
    best = rec.best
    lines = [
        f"Target: {g.name}, {format_bytes(g.memory_bytes)}; usable {format_bytes(rec.budget_bytes)} "
        f"with a {w.margin:.0%} margin; {money(g.price_usd_per_hour)}/h.",
        f"Workload: micro-batch {w.micro_batch} × {w.seq_len} tokens; {format_count(w.dataset_tokens)} "
        f"tokens × {w.epochs:g} epoch{'s' if w.epochs != 1 else ''} = {format_count(round(w.total_tokens))} tokens.",
    ]
    if best is None:
        closest = rec.ranked[0] if rec.ranked else None
        lines.append(
            "Nothing fits."
            + (
                f" Closest: {closest.plan}, needs {format_bytes(closest.need_bytes)}."
                if closest is not None and closest.need_bytes is not None
                else ""
            )
        )
    else:
        assert best.need is not None
        lines.append(
            f"Best: {best.plan} — needs {format_bytes(best.need.total_bytes)} of "
            f"{format_bytes(best.budget_bytes)} ({best.need.provenance.value}"
            + (", upper bound" if _upper_bound(best) else "")
            + "), "
            f"{format_rate(best.tokens_per_s, 'tok/s')}"
            + (f" ({best.throughput_provenance.value})" if best.throughput_provenance else "")
            + f", {duration(best.train_time_s)} and {money(best.cost_usd)} for the workload."
        )
    routing = {v.trial.simulation.moe_routing for v in rec.ranked if v.trial and v.trial.simulation}
    routing.discard(None)
    if routing:  # the assumption behind every simulated MoE figure
        lines.append(f"Mixture of experts, simulated under {'; '.join(sorted(map(str, routing)))}.")
    return lines


def to_text(rec: Recommendation) -> str:
    """Summary lines and the ranked table, for a terminal."""
    out = [f"{rec.model} on {rec.gpu.name} ({rec.mode.value})", *summary_lines(rec), ""]
    out.append(table(HEADERS, ranked_rows(rec, with_why=False)))
    hosts = host_lines(rec)
    if hosts:
        out += ["", "host memory:"] + [f"  {line}" for line in hosts]
    if rec.excluded:
        out += ["", "excluded:"] + [f"  {v.plan}: {v.excluded_reason}" for v in rec.excluded]
    return "\n".join(out)

