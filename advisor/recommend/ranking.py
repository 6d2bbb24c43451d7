"""Pure pieces of the recommender: exclusion, the fit search, ranking, the Pareto front, and
the one-line explanations. No trial runs here: every function takes figures and returns one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from advisor.catalog.gpus import GpuSpec
from advisor.core.units import format_bytes
from advisor.engines.need import ACTIVATIONS, TENSOR_PARTS, PredictedNeed, tensor_parts
from advisor.plans import Plan
from advisor.plans.cuts import CUTS
from advisor.recommend.types import PlanVerdict
from advisor.recommend.workload import SCRATCH_TOKENS_PER_PARAM, RankBy
from profilers.records import Timing, TrialResult

# Measured speed is called noisy when the timed steps spread by more than this share of their
# median, (max − min) / median. Why 25%: a plan's speed is the median of a few timed steps; when
# the slowest took a quarter of the median longer than the fastest, the median itself can be off
# by about that much, and a difference between two plans smaller than that cannot be told from
# the noise. A steady step (the same kernels on the same shapes) repeats far closer than that on
# a machine doing nothing else; what spreads it is something else taking the machine (another
# process, throttling, swapping). On this project's shared 2-core CPU at a load average of ~10,
# tiny-llama's 5 timed steps spread 67–189% in every plan (2026-12-03): the runs this is for.
NOISY_SPREAD = 0.25


def is_noisy(timing: Timing | None) -> bool:
    """Whether ``timing``'s steps spread by more than :data:`NOISY_SPREAD` of their median
    (``False`` when the spread is unknown: fewer than two steps, or no timing)."""
    spread = timing.spread if timing is not None else None
    return spread is not None and spread > NOISY_SPREAD

__all__ = [
    "NOISY_SPREAD",
    "estimate_max_batch",
    "is_noisy",
    "largest_fitting_batch",
    "mark_pareto",
    "plan_title",
    "rank_verdicts",
    "target_exclusion",
    "why_line",
]


def _title(name: str) -> str:
    """A cut's title for people; a name no cut has (an old report's) stays as it is."""
    cls = CUTS.get(name)
    return cls.title if cls is not None and cls.title else name


def target_exclusion(
    plan: Plan | Sequence[str], gpu: GpuSpec, settings: dict[str, dict[str, Any]] | None = None
) -> str | None:
    """Why ``plan`` cannot run on ``gpu`` at all, or ``None`` when it can."""
    cuts = set(plan.cut_names if isinstance(plan, Plan) else plan)
    settings = settings or {}
    known = {name: CUTS[name] for name in cuts if name in CUTS}
    if not gpu.supports_bf16:
        uses_bf16 = {name for name, cls in known.items() if cls.needs_bf16(settings.get(name, {}))}
        if uses_bf16:
            which = ", ".join(sorted(uses_bf16))
            return (
                f"the {gpu.name} ({gpu.architecture}) has no bf16 support ({which} needs it); "
                "use fp16 instead"
            )
    bnb = {name for name, cls in known.items() if cls.needs_bitsandbytes}
    if gpu.vendor == "amd" and bnb:
        which = ", ".join(sorted(bnb))
        return f"{which} needs bitsandbytes' CUDA kernels, which the {gpu.name} does not run"
    return None


def estimate_max_batch(
    need: PredictedNeed,
    batch: int,
    budget_bytes: int,
    limit: int = 1 << 16,
    trial: TrialResult | None = None,
) -> int:
    """The largest micro-batch that fits from one trial: activations (and the input) grow
    with the micro-batch, the rest does not. An estimate; 0 when not even 1 fits.

    When the step's peak falls after the activations are freed (end of backward, optimizer),
    the peak's own activation part understates growth; a simulated ``trial`` also carries the
    forward phase's peak, whose rise over the resident bytes is the activations of ``batch``.
    """
    growth = need.part(ACTIVATIONS)
    if trial is not None and trial.tensor_peak is not None:
        phases = trial.simulation.phase_peaks if trial.simulation is not None else {}
        forward = phases.get("forward")
        if isinstance(forward, int):
            growth = max(growth, forward - trial.tensor_peak.resident_before_step_bytes)
    per_sample = growth / batch
    fixed = need.total_bytes - need.part(ACTIVATIONS)
    if fixed + per_sample > budget_bytes:
        return 0
    if per_sample <= 0:
        return limit
    return max(0, min(limit, math.floor((budget_bytes - fixed) / per_sample)))


def largest_fitting_batch(
    need_at: Callable[[int], int | None],
    budget_bytes: int,
    known: dict[int, int | None],
    *,
    guess: int | None = None,
    limit: int = 1 << 16,
    max_trials: int = 24,
) -> tuple[int, bool]:
    """The largest micro-batch whose need fits ``budget_bytes``, found by trials.

    ``need_at(b)`` runs a trial at micro-batch ``b`` (measured or simulated) and returns its
    need, ``None`` when it fails (out of memory). Memory grows about linearly with the
    micro-batch, so the search brackets the boundary from ``guess`` (or a line through the sizes
    already tried), then interpolates inside the bracket, checking each guess's neighbour and
    bisecting when interpolation stalls. ``known`` maps sizes already tried to their need and
    is extended in place. Returns ``(b, True)`` when ``b`` fits and ``b + 1`` does not (``b`` is
    0 when not even 1 fits, ``limit`` when that fits), or ``(b, False)`` when ``max_trials`` ran
    out first (``b`` then fits, but larger sizes might too).
    """
    spent = 0

    def need(b: int) -> int | None:
        nonlocal spent
        if b not in known:
            spent += 1
            known[b] = need_at(b)
        return known[b]

    def fits(b: int) -> bool:
        n = need(b)
        return n is not None and n <= budget_bytes

    def line_guess(points: list[int]) -> int | None:
        """Where the line through the two farthest-apart fitting sizes meets the budget."""
        if len(points) < 2:
            return None
        a, b = points[0], points[-1]
        na, nb = known[a], known[b]
        assert na is not None and nb is not None
        if nb <= na:
            return None
        return math.floor(a + (budget_bytes - na) * (b - a) / (nb - na))

    def fitting() -> list[int]:
        return sorted(b for b in known if fits(b))

    def largest_fitting() -> int:
        return max(fitting(), default=0)

    # 1. bracket: lo fits (0: nothing does), hi does not
    if not known:
        need(1)
    lo = largest_fitting()
    failing = [b for b in known if not fits(b) and b > lo]
    hi = min(failing) if failing else 0
    if lo == 0 and not fits(1):
        return 0, True
    lo = max(lo, 1)
    next_guess = guess
    while hi == 0:
        if lo >= limit:
            return limit, True
        if spent >= max_trials:
            return lo, False
        g = next_guess if next_guess is not None else line_guess(fitting())
        next_guess = None
        if g is None or g <= lo:
            g = 2 * lo
        g = min(g, limit)
        if fits(g):
            lo = g
        else:
            hi = g

    # 2. shrink the bracket: interpolate (probing the neighbour), bisect when one side stalls
    last_side, bisect_next = "", False
    while hi - lo > 1:
        if spent >= max_trials:
            return lo, False
        n_lo, n_hi = known.get(lo), known.get(hi)
        x = (lo + hi) // 2
        if not bisect_next and n_lo is not None and n_hi is not None and n_hi > n_lo:
            x = lo + math.floor((budget_bytes - n_lo) * (hi - lo) / (n_hi - n_lo))
        x = min(max(x, lo + 1), hi - 1)
        if fits(x):
            side, lo = "lo", x
            if x + 1 < hi:
                if fits(x + 1):
                    lo = x + 1
                else:
                    hi = x + 1
        else:
            side, hi = "hi", x
            if x - 1 > lo:
                if fits(x - 1):
                    lo = x - 1
                else:
                    hi = x - 1
        # interpolation that keeps moving the same end converges slowly (a curved need)
        bisect_next = side == last_side and not bisect_next
        last_side = side
    return lo, True


def _rank_key(v: PlanVerdict, rank_by: RankBy) -> tuple[Any, ...]:
    need = v.need_bytes if v.need_bytes is not None else math.inf
    if v.fits and v.noisy:  # its speed is noise: after the steady plans, by memory
        return (1, need, v.plan)
    if v.fits:
        metric = v.cost_usd if rank_by is RankBy.COST else v.train_time_s
        return (0, math.inf if metric is None else metric, need, v.plan)
    return (2, need, v.plan)


def rank_verdicts(verdicts: Sequence[PlanVerdict], rank_by: RankBy = RankBy.TIME) -> list[PlanVerdict]:
    """Fitting plans first (fastest, or cheapest, first; those whose measured speed is noisy
    after the others, smallest need first), then the others (smallest need first)."""
    ordered = sorted(verdicts, key=lambda v: _rank_key(v, rank_by))
    return [dataclasses.replace(v, rank=i) for i, v in enumerate(ordered, 1)]


def mark_pareto(verdicts: Sequence[PlanVerdict]) -> list[PlanVerdict]:
    """Flag the fitting plans on the memory–throughput front (no other needs less and runs
    faster); a plan whose measured speed is noisy is neither on the front nor pushes others off."""
    candidates = [v for v in verdicts if v.fits and v.need is not None and v.tokens_per_s and not v.noisy]

    def dominated(v: PlanVerdict) -> bool:
        assert v.need_bytes is not None and v.tokens_per_s is not None
        for w in candidates:
            if w is v:
                continue
            assert w.need_bytes is not None and w.tokens_per_s is not None
            if (
                w.need_bytes <= v.need_bytes
                and w.tokens_per_s >= v.tokens_per_s
                and (w.need_bytes < v.need_bytes or w.tokens_per_s > v.tokens_per_s)
            ):
                return True
        return False

    front = {id(v) for v in candidates if not dominated(v)}
    return [dataclasses.replace(v, pareto=id(v) in front) for v in verdicts]


def plan_title(cuts: Sequence[str]) -> str:
    """``("lora", "grad-ckpt")`` → ``"LoRA + checkpointing"``."""
    if not cuts:
        return "full fine-tuning (fp32, AdamW)"
    return " + ".join(_title(c) for c in cuts)


def _tensor_by_role(trial: TrialResult) -> dict[str, int]:
    return {p.name: p.size_bytes for p in tensor_parts(trial)}


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def why_line(trial: TrialResult, baseline: TrialResult | None, cuts: Sequence[str]) -> str:
    """One line on what the plan changes against the baseline's breakdown.

    E.g. "LoRA removes 2.1 GiB of optimizer state and 1.0 GiB of gradients; peak 45% lower".
    """
    if trial.tensor_peak is None:
        return trial.reason or ""
    mine = _tensor_by_role(trial)
    if not cuts or baseline is None or baseline.tensor_peak is None or baseline is trial:
        role, size = max(mine.items(), key=lambda kv: kv[1])
        lead = plan_title(cuts) + (": the reference" if not cuts else "")
        return f"{lead}; largest part: {role} ({format_bytes(size)})"
    base = _tensor_by_role(baseline)
    base_peak = baseline.tensor_peak.peak_bytes
    threshold = max(1 << 20, int(0.02 * base_peak))
    removed: list[tuple[int, str]] = []  # (bytes, "2.1 GiB of optimizer state")
    cut_: list[tuple[int, str]] = []  # (bytes, "activations by 63% (1.2 GiB)")
    added: list[tuple[int, str]] = []
    for role in TENSOR_PARTS:
        before, after = base.get(role, 0), mine.get(role, 0)
        delta = after - before
        if abs(delta) < threshold:
            continue
        if delta < 0 and (not before or -delta / before >= 0.9):
            removed.append((-delta, f"{format_bytes(-delta)} of {role}"))
        elif delta < 0:
            cut_.append((-delta, f"{role} by {-delta / before:.0%} ({format_bytes(-delta)})"))
        else:
            added.append((delta, f"{format_bytes(delta)} of {role}"))
    clauses = []
    for verb, items in (("removes", removed), ("cuts", cut_), ("adds", added)):
        if items:
            items.sort(key=lambda item: -item[0])
            clauses.append(f"{verb} {_join([text for _, text in items])}")
    body = ", ".join(clauses) if clauses else "changes no memory part noticeably"
    line = f"{plan_title(cuts)} {body}"
    peak = trial.tensor_peak.peak_bytes
    if base_peak:
        change = (peak - base_peak) / base_peak
        if abs(change) >= 0.01:
            line += f"; peak {abs(change):.0%} {'lower' if change < 0 else 'higher'}"
    if any(CUTS[c].starts_from_scratch for c in cuts if c in CUTS):
        line += f"; from scratch needs ~{SCRATCH_TOKENS_PER_PARAM} tokens per parameter in total"
    return line

