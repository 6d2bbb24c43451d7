"""Tables for a sweep and a convergence probe, as the CLI prints them and Markdown saves them."""

from __future__ import annotations

from advisor.core.tables import Column, table, wrap_text
from advisor.core.units import format_bytes, format_count, format_rate
from advisor.engines.convergence import SMOOTHING, ConvergenceResult, LossCurve, smoothed
from advisor.engines.sweep import SweepResult
from advisor.plans import BASELINE
from advisor.recommend import NOISY_SPREAD, is_noisy
from profilers.records import TrialResult

__all__ = ["change_table", "convergence_text"]


def _signed_percent(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.1f}%"


# the change table's columns; on a narrow terminal the highest priority numbers go first
CHANGE_COLUMNS = (
    Column("plan"),
    Column("status"),
    Column("peak"),
    Column("Δ peak", priority=1),
    Column("tokens/s", priority=2),
    Column("Δ tok/s", priority=2),
    Column("step spread", priority=3),
    Column("trainable", priority=4),
    Column("Δ trainable", priority=5),
    Column("note", wrap=True, min_width=20),
)


def change_table(result: SweepResult, markdown: bool = False, width: int | None = None) -> str:
    """Each plan's peak, tokens/s and trainable parameters, with the change against the
    baseline; failed plans show their status and reason. A plan whose timed steps varied by
    more than :data:`~advisor.recommend.NOISY_SPREAD` of their median is flagged ``noisy``, and
    so is any tokens/s change that rests on it (its own or the baseline's), with a line under
    the table. Within ``width`` characters a line when given (plain text only: Markdown keeps
    every column)."""
    base = result.baseline
    base_noisy = base is not None and is_noisy(base.timing)
    rows = []
    noisy: list[str] = []
    for c in result.changes():
        is_base = c.plan == BASELINE
        trial = result.result(c.plan)
        spread = _spread_cell(trial)
        mine = trial is not None and is_noisy(trial.timing)
        if mine and trial is not None and trial.timing is not None and trial.timing.spread is not None:
            noisy.append(f"{c.plan} ({trial.timing.spread:.0%})")
        tps_delta = "–" if is_base else _signed_percent(c.tokens_per_s_change)
        if c.tokens_per_s_change is not None and not is_base and (mine or base_noisy):
            tps_delta += " noisy"
        if c.trainable_change is None or is_base:
            train_delta = "–"
        else:
            train_delta = ("+" if c.trainable_change > 0 else "") + format_count(c.trainable_change)
        note = c.reason or ""
        if c.accumulation_steps > 1:
            note = (f"{c.accumulation_steps} accumulation steps " + note).strip()
        rows.append(
            (
                c.plan,
                c.status.value,
                format_bytes(c.peak_bytes, 2),
                "–" if is_base else _signed_percent(c.peak_change),
                format_rate(c.tokens_per_s, "tok/s") if c.tokens_per_s is not None else "–",
                tps_delta,
                spread,
                format_count(c.trainable),
                train_delta,
                note if len(note) <= 120 else note[:117] + "…",
            )
        )
    text = table(CHANGE_COLUMNS, rows, markdown=markdown, width=width)
    if noisy:
        line = (
            f"noisy timings: {', '.join(noisy)}: timed steps varied by more than {NOISY_SPREAD:.0%} "
            "of their median, so their tokens/s and its change are not reliable; measure again on a "
            "quieter machine, or with more steps"
        )
        text += "\n\n" + (f"_{line}_" if markdown else wrap_text(line, width))
    return text


def _spread_cell(trial: TrialResult | None) -> str:
    """``"8%"``, ``"62% noisy"``, or ``"–"`` (no timing, or fewer than two timed steps)."""
    spread = trial.timing.spread if trial is not None and trial.timing is not None else None
    if spread is None or trial is None:
        return "–"
    return f"{spread:.0%}" + (" noisy" if is_noisy(trial.timing) else "")


def convergence_text(result: ConvergenceResult, points: int = 10, width: int | None = None) -> str:
    """Both curves side by side at about ``points`` steps, then the steps to the threshold."""
    n = result.steps
    marks = sorted({1, n, *(round(1 + i * (n - 1) / max(1, points - 1)) for i in range(points))})
    p, s = smoothed(result.pretrained.losses), smoothed(result.scratch.losses)
    rows = [(str(i), f"{p[i - 1]:.3f}", f"{s[i - 1]:.3f}") for i in marks]
    text = table(("step", "pretrained loss", "random-init loss"), rows, width=width)

    def reached(c: LossCurve) -> str:
        if c.steps_to_threshold is None:
            return f"not within {n} steps"
        return f"{c.steps_to_threshold} steps ({c.steps_to_threshold * result.tokens_per_step:,} tokens)"

    ratio = result.step_ratio
    lines = [
        text,
        "",
        f"losses: trailing mean over {SMOOTHING} steps; data: {result.data}; "
        f"batch {result.batch_size} × seq {result.seq_len}, lr {result.lr:g} ({result.provenance.value})",
        f"threshold {result.threshold:.3f} ({result.threshold_source})",
        f"  pretrained reaches it in {reached(result.pretrained)}",
        f"  random-init reaches it in {reached(result.scratch)}",
    ]
    if ratio is not None:
        lines.append(f"  random init needs {ratio:.1f}× the steps (and compute) of fine-tuning")
    return wrap_text("\n".join(lines), width)
