"""A recommendation as plain text for a terminal, and the table cells Markdown shares."""

from __future__ import annotations

from advisor.core.tables import Column, table, wrap_text
from advisor.core.units import format_bytes, format_count, format_rate, format_seconds
from advisor.engines.need import fits_in, usable_bytes
from advisor.recommend import NOISY_SPREAD, PlanVerdict, Recommendation

__all__ = [
    "HEADERS",
    "budget_text",
    "duration",
    "fit_text",
    "headroom_cell",
    "host_bytes",
    "host_lines",
    "money",
    "noisy_lines",
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


def budget_text(memory_bytes: int, margin: float, digits: int = 1) -> str:
    """``"18.9 GiB usable (21.0 GiB − 10% margin)"``: the budget a fit verdict is made against
    (:func:`advisor.engines.need.usable_bytes`)."""
    usable = usable_bytes(memory_bytes, margin)
    return f"{format_bytes(usable, digits)} usable ({format_bytes(memory_bytes, digits)} − {margin:.0%} margin)"


def fit_text(need_bytes: int, memory_bytes: int, margin: float, digits: int = 1) -> str:
    """One fit verdict that names its budget and margin, decided by the one fit rule
    (:func:`advisor.engines.need.fits_in`):
    ``"19.9 GiB of 18.9 GiB usable (21.0 GiB − 10% margin): does not fit"``."""
    verdict = "fits" if fits_in(need_bytes, memory_bytes, margin) else "does not fit"
    return f"{format_bytes(need_bytes, digits)} of {budget_text(memory_bytes, margin, digits)}: {verdict}"


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


def _speed_cell(v: PlanVerdict) -> str:
    """Tokens/s, marked ``noisy`` when its measured steps varied beyond the threshold."""
    return format_rate(v.tokens_per_s, "tok/s") + (" noisy" if v.noisy else "")


def noisy_lines(rec: Recommendation) -> list[str]:
    """One line naming the plans whose measured speed is noise (none: no line)."""
    noisy = [v for v in rec.ranked if v.noisy]
    if not noisy:
        return []
    names = ", ".join(
        v.plan + (f" ({v.timing_spread:.0%})" if v.timing_spread is not None else "") for v in noisy
    )
    return [
        f"noisy: {names}: timed steps varied by more than {NOISY_SPREAD:.0%} of the median, so "
        "their speed is not ranked on (they follow the steady plans, smallest need first)"
    ]


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
            _speed_cell(v),
            duration(v.train_time_s),
            money(v.cost_usd),
            "★" if v.pareto else "",
        ]
        if with_why:
            row.append(v.why)
        rows.append(row)
    return rows


# the ranked table's columns; on a narrow terminal the highest priority numbers go first
# (headroom, then the largest micro-batch, the front, cost, time), the rest always stay
HEADERS = [
    Column("#"),
    Column("plan"),
    Column("fits"),
    Column("need (of budget)"),
    Column("headroom", priority=5),
    Column("max micro-batch", priority=4),
    Column("speed"),
    Column("time", priority=1),
    Column("cost", priority=2),
    Column("front", priority=3),
]


def summary_lines(rec: Recommendation) -> list[str]:
    """Target, workload, and the best plan (or the closest), each fit verdict naming its budget."""
    g, w = rec.gpu, rec.workload
    best = rec.best
    lines = [
        f"Target: {g.name}; budget {budget_text(g.memory_bytes, w.margin)}; "
        f"{money(g.price_usd_per_hour)}/h.",
        f"Workload: micro-batch {w.micro_batch} × {w.seq_len} tokens; {format_count(w.dataset_tokens)} "
        f"tokens × {w.epochs:g} epoch{'s' if w.epochs != 1 else ''} = {format_count(round(w.total_tokens))} tokens.",
    ]
    if w.lengths is not None:
        lines.append(
            f"Sequence lengths: {w.lengths.summary()}; plans without a batching cut pad to {w.seq_len}."
        )
    if best is None:
        closest = rec.ranked[0] if rec.ranked else None
        lines.append(
            "Nothing fits."
            + (
                f" Closest: {closest.plan} needs {fit_text(closest.need_bytes, g.memory_bytes, w.margin)}."
                if closest is not None and closest.need_bytes is not None
                else ""
            )
        )
    else:
        assert best.need is not None
        lines.append(
            f"Best: {best.plan} — {fit_text(best.need.total_bytes, g.memory_bytes, w.margin)} "
            f"({best.need.provenance.value}"
            + (", upper bound" if _upper_bound(best) else "")
            + "); "
            f"{format_rate(best.tokens_per_s, 'tok/s')}"
            + (f" ({best.throughput_provenance.value})" if best.throughput_provenance else "")
            + f", {duration(best.train_time_s)} and {money(best.cost_usd)} for the workload."
        )
    routing = {v.trial.simulation.moe_routing for v in rec.ranked if v.trial and v.trial.simulation}
    routing.discard(None)
    if routing:  # the assumption behind every simulated MoE figure
        lines.append(f"Mixture of experts, simulated under {'; '.join(sorted(map(str, routing)))}.")
    return lines


def to_text(rec: Recommendation, width: int | None = None) -> str:
    """Summary lines and the ranked table, for a terminal ``width`` characters wide (``None``:
    no limit; the table leaves out its least important columns to fit, lines wrap)."""
    out = [f"{rec.model} on {rec.gpu.name} ({rec.mode.value})", *summary_lines(rec), ""]
    out.append(table(HEADERS, ranked_rows(rec, with_why=False), width=width))
    noisy = noisy_lines(rec)
    if noisy:
        out += ["", *noisy]
    hosts = host_lines(rec)
    if hosts:
        out += ["", "host memory:"] + [f"  {line}" for line in hosts]
    if rec.excluded:
        out += ["", "excluded:"] + [f"  {v.plan}: {v.excluded_reason}" for v in rec.excluded]
    return wrap_text("\n".join(out), width)
