"""The recommender: for one target GPU and workload, which plans fit, how fast, at what cost.

For every plan it runs one trial of the real training step (measured on the target when the
target is this machine's GPU, else simulated on fake tensors), predicts the memory the step
needs on the target (tensor peak + allocator, CUDA context and workspaces), decides whether it
fits with the workload's safety margin, estimates tokens/s, time and cost for the workload, and
ranks: what fits first, then by time (or cost). Plans that cannot run on the target at all
(bf16 on a T4) are excluded with the reason.

Gathering numbers (:func:`recommend`) and rendering them (:mod:`advisor.report`) are separate.
The trial runner, the overhead model, the batch-growth search and the FLOP-based speed estimate
come in through :class:`Backends`, so the ranking logic is testable with plain functions.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from advisor.catalog.gpus import GpuSpec
from advisor.core.errors import InvalidInputError
from advisor.core.units import format_budget, format_bytes
from advisor.plans import Plan
from advisor.recommend.workload import SCRATCH_TOKENS_PER_PARAM, RankBy, Workload
from profilers.records import Provenance, SimulationRecord, TrialResult, TrialStatus

log = logging.getLogger(__name__)

__all__ = [
    "Advice",
    "Backends",
    "Mode",
    "NeedPart",
    "PathCost",
    "PlanVerdict",
    "PredictedNeed",
    "Recommendation",
    "ScratchComparison",
    "estimate_max_batch",
    "largest_fitting_batch",
    "mark_pareto",
    "rank_verdicts",
    "recommend",
    "target_exclusion",
    "why_line",
]

# strongest first: a sum is as good as its weakest part
_STRENGTH = {Provenance.MEASURED: 0, Provenance.SIMULATED: 1, Provenance.ESTIMATED: 2}


def weakest(provenances: Sequence[Provenance]) -> Provenance:
    """The least direct of several provenances (measured > simulated > estimated)."""
    return max(provenances, key=_STRENGTH.__getitem__) if provenances else Provenance.ESTIMATED


class Mode(str, enum.Enum):
    """How the trials are run: on the target GPU (measure) or on fake tensors (simulate)."""

    AUTO = "auto"
    MEASURE = "measure"
    SIMULATE = "simulate"


# -- predicted need --------------------------------------------------------------------------

# part names, in the order they stack in tables and charts
PARAMETERS = "parameters"
GRADIENTS = "gradients"
OPTIMIZER = "optimizer state"
ACTIVATIONS = "activations"  # activations + temporaries + the input batch
ALLOCATOR = "allocator rounding"
CONTEXT = "CUDA context"
WORKSPACES = "kernel workspaces"
ATTENTION = "attention scratch"  # fused-attention backward buffers on CUDA
TENSOR_PARTS = (PARAMETERS, GRADIENTS, OPTIMIZER, ACTIVATIONS)
OVERHEAD_PARTS = (ALLOCATOR, CONTEXT, WORKSPACES, ATTENTION)


@dataclass(frozen=True)
class NeedPart:
    """One part of the predicted need, with where it comes from."""

    name: str  # one of TENSOR_PARTS or OVERHEAD_PARTS (or a backend's own overhead name)
    size_bytes: int
    provenance: Provenance


@dataclass(frozen=True)
class PredictedNeed:
    """GPU memory one training step needs on the target: tensor peak by role plus overheads."""

    parts: tuple[NeedPart, ...]

    @property
    def total_bytes(self) -> int:
        return sum(p.size_bytes for p in self.parts)

    @property
    def tensor_bytes(self) -> int:
        return sum(p.size_bytes for p in self.parts if p.name in TENSOR_PARTS)

    @property
    def overhead_bytes(self) -> int:
        return self.total_bytes - self.tensor_bytes

    @property
    def provenance(self) -> Provenance:
        return weakest([p.provenance for p in self.parts])

    def part(self, name: str) -> int:
        return sum(p.size_bytes for p in self.parts if p.name == name)


def tensor_parts(trial: TrialResult) -> tuple[NeedPart, ...]:
    """The tensor peak of a trial as need parts (parameters, gradients, optimizer, activations)."""
    tp = trial.tensor_peak
    if tp is None:
        raise InvalidInputError(f"trial of {trial.plan} has no tensor peak", "run it with track_memory")
    b, src = tp.breakdown, tp.provenance
    return (
        NeedPart(PARAMETERS, b.parameter_bytes + b.buffer_bytes, src),
        NeedPart(GRADIENTS, b.gradient_bytes, src),
        NeedPart(OPTIMIZER, b.optimizer_state_bytes, src),
        NeedPart(ACTIVATIONS, b.activation_bytes + b.input_bytes, src),
    )


# -- verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanVerdict:
    """What the recommender found for one plan on the target.

    ``budget_bytes`` is the usable memory (the GPU's memory less the margin); ``fits`` is
    ``need.total_bytes <= budget_bytes``. Throughput is ``measured`` only when the trial ran on
    the target GPU; otherwise it is ``estimated`` from FLOPs and the GPU's peak rate (CPU
    timings are never presented as GPU speed). ``excluded_reason`` is set, and the figures
    empty, for a plan that cannot run on the target at all.
    """

    plan: str
    cuts: tuple[str, ...]
    cut_settings: dict[str, dict[str, Any]]  # per cut: its parameters (for snippets)
    memory_bytes: int  # the GPU's memory
    budget_bytes: int  # usable: memory × (1 − margin)
    trial: TrialResult | None = None
    need: PredictedNeed | None = None
    fits: bool = False
    max_micro_batch: int | None = None  # largest micro-batch that fits (0: not even 1)
    max_micro_batch_provenance: Provenance | None = None
    max_micro_batch_checked: bool = False  # the boundary was checked by trials at b and b + 1
    step_time_s: float | None = None
    tokens_per_s: float | None = None
    throughput_provenance: Provenance | None = None
    train_time_s: float | None = None  # the whole workload
    cost_usd: float | None = None  # the whole workload at the GPU's hourly price
    pareto: bool = False
    why: str = ""
    rank: int = 0  # 1-based among the ranked plans; 0 when excluded
    excluded_reason: str | None = None
    # why it was left out: "target" (cannot run on the GPU), "not-evaluated" (no way to get a
    # number here, e.g. bitsandbytes in simulation) or "failed" (the trial hit a model error)
    exclusion: str | None = None

    @property
    def headroom_bytes(self) -> int | None:
        """Usable budget left over (negative: by how much it does not fit)."""
        return None if self.need is None else self.budget_bytes - self.need.total_bytes

    @property
    def need_bytes(self) -> int | None:
        return None if self.need is None else self.need.total_bytes

    @property
    def excluded(self) -> bool:
        return self.excluded_reason is not None

    @property
    def trains_all_parameters(self) -> bool:
        """True for plans that update every weight (what training from scratch needs)."""
        return not (set(self.cuts) & _PARTIAL_TRAINING)


_PARTIAL_TRAINING = frozenset({"lora", "qlora", "frozen-emb", "freeze-layers"})

# PlanVerdict.exclusion values
TARGET = "target"
NOT_EVALUATED = "not-evaluated"
FAILED = "failed"


@dataclass(frozen=True)
class PathCost:
    """Total cost of one path to a trained model on the target GPU."""

    label: str  # "fine-tune" or "from scratch"
    tokens: float
    tokens_basis: str  # where the token count comes from
    plan: str | None  # the plan whose speed is used
    fits: bool
    tokens_per_s: float | None
    throughput_provenance: Provenance | None
    time_s: float | None
    cost_usd: float | None
    note: str = ""


@dataclass(frozen=True)
class ScratchComparison:
    """Fine-tuning on the user's data vs training from scratch (~20 tokens per parameter)."""

    parameters: int
    finetune: PathCost
    scratch: PathCost

    @property
    def ratio(self) -> float | None:
        """How many times more the scratch path costs (time and cost scale alike)."""
        if self.finetune.time_s and self.scratch.time_s:
            return self.scratch.time_s / self.finetune.time_s
        return None


@dataclass(frozen=True)
class Recommendation:
    """The ranked plans for one model on one target GPU and workload.

    ``ranked`` holds every plan that ran, fitting plans first (by time, or cost), then the
    ones that do not fit (closest first); ``excluded`` the plans that cannot run on the target,
    each with its reason. ``best`` is the top fitting plan, or ``None`` when nothing fits.
    """

    model: str
    gpu: GpuSpec
    workload: Workload
    rank_by: RankBy
    mode: Mode  # how the trials ran: measure (on the target) or simulate
    ranked: tuple[PlanVerdict, ...]
    excluded: tuple[PlanVerdict, ...] = ()
    comparison: ScratchComparison | None = None
    model_parameters: int | None = None
    model_task: str = "causal-lm"  # "causal-lm", "masked-lm" or "custom" (a plain nn.Module)
    environment: dict[str, Any] = field(default_factory=dict)
    command: str = ""  # the CLI command that reproduces this report
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> PlanVerdict | None:
        return next((v for v in self.ranked if v.fits), None)

    @property
    def fitting(self) -> tuple[PlanVerdict, ...]:
        return tuple(v for v in self.ranked if v.fits)

    @property
    def budget_bytes(self) -> int:
        return self.workload.usable_bytes(self.gpu.memory_bytes)

    def verdict(self, plan: str) -> PlanVerdict:
        """The verdict (ranked or excluded) of the plan named ``plan``."""
        for v in (*self.ranked, *self.excluded):
            if v.plan == plan:
                return v
        names = ", ".join(v.plan for v in (*self.ranked, *self.excluded))
        raise KeyError(f"no plan {plan!r} in this recommendation (plans: {names})")

    def to_dict(self) -> dict[str, Any]:
        from advisor.report import recommendation_to_dict

        return recommendation_to_dict(self)

    def to_json(self) -> str:
        """The report as JSON text (``schema_version``, environment, units and provenance)."""
        from advisor.report import to_json

        return to_json(self)

    def to_markdown(self, chart: str | None = None) -> str:
        """The report for people; ``chart`` is the relative path of the SVG chart to link."""
        from advisor.report import to_markdown

        return to_markdown(self, chart=chart)

    def to_text(self) -> str:
        """A short plain-text summary with the ranked table (what the CLI prints)."""
        from advisor.report import to_text

        return to_text(self)

    def chart_svg(self) -> str:
        """Memory by plan, stacked by part, against the budget line (SVG text)."""
        from advisor.report import chart_svg

        return chart_svg(self)

    def save(self, prefix: str) -> dict[str, Any]:
        """Write ``prefix.json``, ``prefix.md`` and ``prefix.svg`` atomically; return the paths."""
        from advisor.report import save_report

        return save_report(self, prefix)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> Recommendation:
        """Load a report written by :meth:`to_json` (clear :class:`ReportError` otherwise)."""
        from advisor.report import from_json

        return from_json(text, source)


Advice = Recommendation


# -- pure pieces: exclusion, fit search, ranking, Pareto front, why lines --------------------

_BF16_CUTS = frozenset({"bf16", "bf16-weights"})
_BNB_CUTS = frozenset({"qlora", "adamw8bit"})


def target_exclusion(
    plan: Plan | Sequence[str], gpu: GpuSpec, settings: dict[str, dict[str, Any]] | None = None
) -> str | None:
    """Why ``plan`` cannot run on ``gpu`` at all, or ``None`` when it can."""
    cuts = set(plan.cut_names if isinstance(plan, Plan) else plan)
    settings = settings or {}
    if not gpu.supports_bf16:
        uses_bf16 = cuts & _BF16_CUTS
        for name in cuts & _BNB_CUTS:
            compute = str(settings.get(name, {}).get("compute_dtype", ""))
            if "bf16" in compute or "bfloat16" in compute:
                uses_bf16 = uses_bf16 | {name}
        if uses_bf16:
            which = ", ".join(sorted(uses_bf16))
            return (
                f"the {gpu.name} ({gpu.architecture}) has no bf16 support ({which} needs it); "
                "use fp16 instead"
            )
    if gpu.vendor == "amd" and cuts & _BNB_CUTS:
        which = ", ".join(sorted(cuts & _BNB_CUTS))
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
    if v.fits:
        metric = v.cost_usd if rank_by is RankBy.COST else v.train_time_s
        return (0, math.inf if metric is None else metric, need, v.plan)
    return (1, need, v.plan)


def rank_verdicts(verdicts: Sequence[PlanVerdict], rank_by: RankBy = RankBy.TIME) -> list[PlanVerdict]:
    """Fitting plans first (fastest, or cheapest, first), then the others (smallest need first)."""
    ordered = sorted(verdicts, key=lambda v: _rank_key(v, rank_by))
    return [dataclasses.replace(v, rank=i) for i, v in enumerate(ordered, 1)]


def mark_pareto(verdicts: Sequence[PlanVerdict]) -> list[PlanVerdict]:
    """Flag the fitting plans on the memory–throughput front (no other needs less and runs faster)."""
    candidates = [v for v in verdicts if v.fits and v.need is not None and v.tokens_per_s]

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


CUT_TITLES: dict[str, str] = {
    "lora": "LoRA",
    "qlora": "QLoRA",
    "frozen-emb": "frozen embeddings",
    "freeze-layers": "freezing layers",
    "grad-ckpt": "checkpointing",
    "bf16": "bf16 autocast",
    "fp16": "fp16 autocast",
    "bf16-weights": "bf16 weights",
    "sgd": "SGD",
    "adafactor": "Adafactor",
    "adamw8bit": "8-bit AdamW",
    "accum": "accumulation",
    "eager-attn": "eager attention",
    "sdpa-attn": "SDPA attention",
    "offload": "activation offload",
    "compile": "torch.compile",
    "scratch": "random init",
}


def plan_title(cuts: Sequence[str]) -> str:
    """``("lora", "grad-ckpt")`` → ``"LoRA + checkpointing"``."""
    if not cuts:
        return "full fine-tuning (fp32, AdamW)"
    return " + ".join(CUT_TITLES.get(c, c) for c in cuts)


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
    if "scratch" in cuts:
        line += f"; from scratch needs ~{SCRATCH_TOKENS_PER_PARAM} tokens per parameter in total"
    return line


# -- the backends the recommender runs on ----------------------------------------------------

TrialFn = Callable[[Plan, int], TrialResult]  # (plan, micro-batch) → trial at the workload's seq
NeedFn = Callable[[TrialResult], PredictedNeed]  # trial → need on the target
SpeedFn = Callable[[TrialResult, Plan], "tuple[float, Provenance] | None"]  # → (step s, source)


@dataclass(frozen=True)
class Backends:
    """How the recommender gets its numbers (see :func:`advisor.api.advise` for the real ones)."""

    trial: TrialFn
    need: NeedFn
    step_time: SpeedFn
    settings: Callable[[Plan], dict[str, dict[str, Any]]] = lambda plan: {}


def _ok(trial: TrialResult) -> bool:
    return trial.status is TrialStatus.OK and trial.tensor_peak is not None


def recommend(
    model: str,
    plans: Sequence[Plan],
    gpu: GpuSpec,
    workload: Workload,
    backends: Backends,
    *,
    rank_by: RankBy | str = RankBy.TIME,
    mode: Mode = Mode.SIMULATE,
    check_top: int = 3,
    environment: dict[str, Any] | None = None,
    command: str = "",
    model_task: str = "causal-lm",
    progress: Callable[[str], None] | None = None,
) -> Recommendation:
    """Evaluate ``plans`` for ``model`` on ``gpu`` under ``workload`` and rank them.

    The baseline (full fine-tuning, fp32, AdamW) is always evaluated: the why-lines compare
    against it. The largest fitting micro-batch is found by further trials (``b`` fits,
    ``b + 1`` does not) for the ``check_top`` best plans, and estimated from the one trial for
    the others.
    """
    say = progress or (lambda _m: None)
    rank_by = RankBy(rank_by)
    plans = list(plans)
    if not any(not p.cuts for p in plans):
        plans.insert(0, Plan())
    budget = workload.usable_bytes(gpu.memory_bytes)
    base: dict[str, Any] = dict(memory_bytes=gpu.memory_bytes, budget_bytes=budget)

    evaluated: list[tuple[Plan, PlanVerdict, dict[int, int | None]]] = []
    excluded: list[PlanVerdict] = []
    for i, plan in enumerate(plans, 1):
        settings = backends.settings(plan)
        reason = target_exclusion(plan, gpu, settings)
        if reason is not None:
            excluded.append(
                PlanVerdict(
                    plan.name, plan.cut_names, settings, excluded_reason=reason, exclusion=TARGET, **base
                )
            )
            continue
        say(f"plan {i}/{len(plans)}: {plan.name} at micro-batch {workload.micro_batch}")
        trial = backends.trial(plan, workload.micro_batch)
        verdict = PlanVerdict(plan.name, plan.cut_names, settings, trial=trial, **base)
        if trial.status is TrialStatus.OOM:  # measured on the target: it does not fit
            evaluated.append((plan, verdict, {workload.micro_batch: None}))
            continue
        if not _ok(trial):
            why = trial.reason or f"trial ended with status {trial.status.value}"
            kind = NOT_EVALUATED if trial.status is TrialStatus.UNSUPPORTED else FAILED
            excluded.append(dataclasses.replace(verdict, excluded_reason=why, exclusion=kind))
            continue
        need = backends.need(trial)
        fits = need.total_bytes <= budget
        verdict = dataclasses.replace(verdict, need=need, fits=fits)
        verdict = _with_speed(verdict, backends.step_time(trial, plan), trial, workload, gpu)
        evaluated.append((plan, verdict, {workload.micro_batch: need.total_bytes}))

    baseline = next(
        (v.trial for _, v, _ in evaluated if not v.cuts and v.trial is not None and _ok(v.trial)), None
    )
    verdicts = []
    for _, v, _ in evaluated:
        assert v.trial is not None
        why = why_line(v.trial, baseline, v.cuts) if _ok(v.trial) else (v.trial.reason or "")
        verdicts.append(dataclasses.replace(v, why=why))
    ranked = rank_verdicts(mark_pareto(verdicts), rank_by)

    # the largest micro-batch that fits: estimated from one trial for every plan, found by
    # further trials (bracket and bisect) for the best ``check_top``
    by_name = {p.name: (p, known) for p, _, known in evaluated}
    final: list[PlanVerdict] = []
    for v in ranked:
        plan, known = by_name[v.plan]
        if "accum" in v.cuts or v.need is None:  # accum splits its batch: no one size to search
            final.append(v)
            continue
        if v.rank <= check_top:
            say(f"largest micro-batch for {v.plan}")

            def need_at(b: int, plan: Plan = plan) -> int | None:
                t = backends.trial(plan, b)
                return backends.need(t).total_bytes if _ok(t) else None

            first = estimate_max_batch(v.need, workload.micro_batch, budget, trial=v.trial)
            size, checked = largest_fitting_batch(need_at, budget, known, guess=first or None)
        else:
            size, checked = estimate_max_batch(v.need, workload.micro_batch, budget, trial=v.trial), False
        final.append(
            dataclasses.replace(
                v,
                max_micro_batch=size,
                max_micro_batch_provenance=_batch_provenance(v),
                max_micro_batch_checked=checked,
            )
        )

    params = baseline.params.total if baseline is not None and baseline.params is not None else None
    if params is None:
        params = next((v.trial.params.total for v in final if v.trial and v.trial.params), None)
    comparison = _compare_paths(final, workload, gpu, params) if params else None
    return Recommendation(
        model=model,
        gpu=gpu,
        workload=workload,
        rank_by=rank_by,
        mode=mode,
        ranked=tuple(final),
        excluded=tuple(excluded),
        comparison=comparison,
        model_parameters=params,
        model_task=model_task,
        environment=dict(environment or {}),
        command=command,
        notes=_notes(mode, final),
    )


def _batch_provenance(v: PlanVerdict) -> Provenance:
    if v.need is not None:
        return v.need.provenance
    if v.trial is not None and v.trial.tensor_peak is not None:
        return v.trial.tensor_peak.provenance
    return Provenance.MEASURED  # an out-of-memory on the target


def _with_speed(
    v: PlanVerdict,
    speed: tuple[float, Provenance] | None,
    trial: TrialResult,
    workload: Workload,
    gpu: GpuSpec,
) -> PlanVerdict:
    if speed is None or speed[0] <= 0:
        return v
    step_s, prov = speed
    tokens_per_step = trial.timing.tokens_per_step if trial.timing else 0
    if not tokens_per_step:
        tokens_per_step = trial.batch_size * trial.seq_len
    tps = tokens_per_step / step_s
    time_s = workload.total_tokens / tps
    return dataclasses.replace(
        v,
        step_time_s=step_s,
        tokens_per_s=tps,
        throughput_provenance=prov,
        train_time_s=time_s,
        cost_usd=time_s / 3600.0 * gpu.price_usd_per_hour,
    )


def _path(
    label: str,
    tokens: float,
    basis: str,
    pick: PlanVerdict | None,
    gpu: GpuSpec,
    note: str = "",
) -> PathCost:
    if pick is None or not pick.tokens_per_s:
        return PathCost(
            label, tokens, basis, pick.plan if pick else None, False, None, None, None, None, note
        )
    time_s = tokens / pick.tokens_per_s
    return PathCost(
        label,
        tokens,
        basis,
        pick.plan,
        pick.fits,
        pick.tokens_per_s,
        pick.throughput_provenance,
        time_s,
        time_s / 3600.0 * gpu.price_usd_per_hour,
        note,
    )


def _fastest(verdicts: Sequence[PlanVerdict]) -> PlanVerdict | None:
    timed = [v for v in verdicts if v.tokens_per_s]
    return max(timed, key=lambda v: (v.tokens_per_s or 0.0, -(v.need_bytes or 0))) if timed else None


def _compare_paths(
    ranked: Sequence[PlanVerdict], workload: Workload, gpu: GpuSpec, params: int
) -> ScratchComparison:
    fitting = [v for v in ranked if v.fits]
    best = fitting[0] if fitting else None
    ft_note = "" if best is not None else f"no plan fits on the {gpu.name}"
    finetune = _path(
        "fine-tune",
        workload.total_tokens,
        f"your data: {workload.dataset_tokens:,} tokens × {workload.epochs:g} "
        + ("epoch" if workload.epochs == 1 else "epochs"),
        best,
        gpu,
        ft_note,
    )
    full = [v for v in ranked if v.trains_all_parameters]
    full_fit = [v for v in full if v.fits]
    pick: PlanVerdict | None
    if full_fit:
        pick, note = full_fit[0], ""
    else:
        pick = _fastest(full)
        note = f"no plan that trains every parameter fits on the {gpu.name}; " + (
            f"figures at the speed of {pick.plan}, as if it fit" if pick else "no speed known"
        )
    scratch = _path(
        "from scratch",
        float(SCRATCH_TOKENS_PER_PARAM * params),
        f"~{SCRATCH_TOKENS_PER_PARAM} tokens per parameter × {params:,} parameters (estimate)",
        pick,
        gpu,
        note,
    )
    return ScratchComparison(params, finetune, scratch)


def _notes(mode: Mode, verdicts: Sequence[PlanVerdict]) -> tuple[str, ...]:
    notes = []
    if mode is Mode.SIMULATE:
        notes.append(
            "Tensor memory is simulated (the real training step replayed on fake tensors: exact "
            "bytes, no compute); allocator rounding, CUDA context and kernel workspaces are "
            "estimated on top, so each need is an estimate."
        )
        notes.append(
            "Throughput is estimated from the step's FLOPs and the GPU's peak rate at a typical "
            "utilisation; no timing on this machine is taken for GPU speed."
        )
    else:
        notes.append("Every plan ran on the target GPU: memory and throughput are measured.")
    estimated = [v for v in verdicts if v.trial is not None and "estimate" in v.trial.extra]
    if estimated:
        names = ", ".join(v.plan for v in estimated)
        notes.append(
            f"Not replayable on fake tensors (bitsandbytes kernels, host offload or torch.compile): "
            f"{names}. Their tensor memory is the closed-form estimate (advisor.estimate) and their "
            "FLOPs those of the nearest plan simulation can run (QLoRA → LoRA with the same "
            "adapters; 8-bit AdamW, offload and compile dropped); marked * in the table."
        )
    if any(v.max_micro_batch is not None and not v.max_micro_batch_checked for v in verdicts):
        notes.append(
            "Largest micro-batch: found by trials for the top plans (b fits, b + 1 does not); for "
            "the others it is estimated from one trial, activations growing with the micro-batch."
        )
    return tuple(notes)


DEFAULT_GPU = "rtx-4090"


# -- the real backends: seams onto the trial runner, simulation, overheads and FLOPs ---------

# Curated combinations tried on top of every single cut: the families that make big models fit.
CANDIDATE_COMBOS: tuple[str, ...] = (
    "grad-ckpt+bf16",
    "grad-ckpt+bf16-weights",
    "grad-ckpt+bf16+adafactor",
    "grad-ckpt+bf16-weights+adafactor",
    "grad-ckpt+bf16-weights+sgd",
    "grad-ckpt+bf16+adamw8bit",
    "grad-ckpt+bf16-weights+adamw8bit",
    "lora+bf16",
    "lora+grad-ckpt",
    "lora+grad-ckpt+bf16",
    "lora+bf16-weights",
    "lora+grad-ckpt+bf16-weights",
    "qlora+grad-ckpt",
    "qlora+grad-ckpt+bf16",
    "lora+grad-ckpt+fp16",
    "grad-ckpt+fp16",
)
# left out of the default candidates: scratch (same memory per step as fine-tuning; its total
# cost is the fine-tune vs from-scratch comparison), accum (splits the batch: its memory is
# the smaller micro-batch's, which the largest-micro-batch figure already answers), compile
_NOT_CANDIDATES = frozenset({"scratch", "accum", "compile"})


def candidate_plans() -> list[Plan]:
    """The plans :func:`advisor.advise` evaluates by default: baseline, singles, known combos."""
    from advisor.plans.cuts import default_cuts, parse_plan, singles

    cuts = [c for c in default_cuts() if c.name not in _NOT_CANDIDATES]
    plans = list(singles(cuts).plans)
    seen = {p.name for p in plans}
    for text in CANDIDATE_COMBOS:
        plan = parse_plan(text)
        if plan.name not in seen and plan.conflict() is None:
            plans.append(plan)
            seen.add(plan.name)
    return plans


def parse_plan_list(plans: str | Sequence[Plan | str]) -> list[Plan]:
    """Plans from ``"lora+grad-ckpt;bf16"`` or a list of plans / plan strings."""
    from advisor.plans.cuts import parse_plan, parse_plans

    if isinstance(plans, str):
        return parse_plans(plans)
    return [parse_plan(p) if isinstance(p, str) else p for p in plans]


def cut_settings(plan: Plan) -> dict[str, dict[str, Any]]:
    """Every cut's parameters, defaults included (JSON-safe), keyed by cut name."""
    out: dict[str, dict[str, Any]] = {}
    for cut in plan.cuts:
        values: dict[str, Any] = {}
        if dataclasses.is_dataclass(cut):
            for f in dataclasses.fields(cut):
                value = getattr(cut, f.name)
                values[f.name] = list(value) if isinstance(value, tuple) else value
        else:
            values = dict(cut.params())
        out[cut.name] = values
    return out


def target_present(gpu: GpuSpec) -> bool:
    """Whether this machine's first CUDA GPU is the catalog entry ``gpu``."""
    import torch

    from advisor.catalog.gpus import get_gpu
    from advisor.core.errors import UnknownGpuError

    if gpu.key.startswith("custom-") or not torch.cuda.is_available():
        return False
    try:
        return get_gpu(torch.cuda.get_device_name(0)).key == gpu.key
    except (UnknownGpuError, InvalidInputError):
        return False


def need_from_overheads(trial: TrialResult, gpu: GpuSpec) -> PredictedNeed:
    """Tensor peak by role + the target's overheads, each part with its provenance.

    A trial measured on the target takes the allocator's reserved peak and, where NVML reports
    it, this process's device memory (which holds the context and the BLAS workspaces). Any
    other trial gets :func:`advisor.overheads.predict_gpu_need`: the replayed caching allocator
    (simulated), the CUDA context, cuBLAS workspaces and fused-attention scratch (estimated).
    """
    from advisor.engines.overheads import predict_gpu_need

    parts = list(tensor_parts(trial))
    assert trial.tensor_peak is not None
    peak = trial.tensor_peak.peak_bytes
    est, meas = Provenance.ESTIMATED, Provenance.MEASURED
    proc = trial.nvml.peak_process_used_bytes if trial.nvml is not None else None
    if trial.cuda is not None:
        reserved = trial.cuda.max_reserved_bytes  # cuBLAS workspaces come from the allocator
        parts.append(NeedPart(ALLOCATOR, max(0, reserved - peak), meas))
        if proc is not None and proc > reserved:
            parts.append(NeedPart(CONTEXT, proc - reserved, meas))
            return PredictedNeed(tuple(parts))
        context = predict_gpu_need(trial, gpu).cuda_context_bytes
        return PredictedNeed((*parts, NeedPart(CONTEXT, context, est)))
    n = predict_gpu_need(trial, gpu)
    parts += [
        NeedPart(ALLOCATOR, n.allocator_overhead_bytes, n.allocator_source),
        NeedPart(CONTEXT, n.cuda_context_bytes, est),
        NeedPart(WORKSPACES, n.workspace_bytes, est),
    ]
    if n.attention_workspace_bytes:
        parts.append(NeedPart(ATTENTION, n.attention_workspace_bytes, est))
    return PredictedNeed(tuple(parts))


def step_time_on(trial: TrialResult, gpu: GpuSpec) -> tuple[float, Provenance] | None:
    """Step time on ``gpu``: measured when the trial ran there (CUDA timings only), else
    :func:`advisor.flops.estimate_for_gpu` from the step's counted FLOPs and bytes. A CPU
    timing is never taken for GPU speed; ``None`` when neither is known."""
    from advisor.engines.flops import estimate_for_gpu

    if trial.timing is not None and trial.cuda is not None:
        return trial.timing.median_step_time_s, Provenance.MEASURED
    if trial.simulation is None or trial.simulation.step_cost is None:
        return None
    estimate = estimate_for_gpu(dataclasses.replace(trial, status=TrialStatus.OK), gpu)
    if estimate is None or estimate.step_time_s <= 0:
        return None
    return estimate.step_time_s, Provenance.ESTIMATED


# cuts that simulation cannot replay, and the cut of the same shape whose FLOPs stand in
_SPEED_STAND_IN = {"qlora": "lora"}


def speed_sibling(plan: Plan) -> Plan | None:
    """The nearest plan simulation can run, for the FLOPs of one it cannot: ``qlora`` → ``lora``
    with the same r, alpha, dropout and targets; ``adamw8bit``, ``offload`` and ``compile``
    dropped (same arithmetic). ``None`` when the plan has none of those cuts."""
    from advisor.engines.simulate import SIMULATION_UNSUPPORTED
    from advisor.plans.cuts import CUTS

    if not any(c.name in SIMULATION_UNSUPPORTED for c in plan.cuts):
        return None
    cuts = []
    for cut in plan.cuts:
        if cut.name in _SPEED_STAND_IN:
            cls = CUTS[_SPEED_STAND_IN[cut.name]]
            names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
            kwargs = {k: v for k, v in dataclasses.asdict(cut).items() if k in names}  # type: ignore[call-overload]
            cuts.append(cls(**kwargs))
        elif cut.name not in SIMULATION_UNSUPPORTED:
            cuts.append(cut)
    return Plan.of(cuts)


def estimated_trial(source: Any, plan: Plan, batch: int, seq: int, why: str) -> TrialResult:
    """A trial whose tensor figures come from :func:`advisor.estimate.estimate_peak`
    (closed-form accounting, provenance ``estimated``), for plans simulation cannot replay."""
    from advisor.engines.estimate import estimate_peak

    e = estimate_peak(source, plan, batch_size=batch, seq_len=seq, target="cuda")
    return TrialResult(
        model=source.name,
        plan=plan.name,
        cuts=plan.cut_names,
        device="estimate",
        batch_size=batch,
        seq_len=seq,
        status=TrialStatus.OK,
        accumulation_steps=e.accumulation_steps,
        params=e.params,
        tensor_peak=e.tensor_peak(),
        extra={"estimate": {"notes": list(e.notes), "why": why}},
    )


def default_backends(source: Any, gpu: GpuSpec, workload: Workload, mode: Mode) -> Backends:
    """Trials measured on the target (``Mode.MEASURE``) or simulated, cached by (plan, size).

    A plan simulation cannot replay (bitsandbytes, offload, compile) gets its tensor figures
    from the closed-form estimate and its FLOPs from :func:`speed_sibling`'s simulation, both
    ``estimated``; the reason is kept in ``trial.extra["estimate"]``.
    """
    cache: dict[tuple[str, int], TrialResult] = {}

    def simulated(plan: Plan, batch: int, first: bool) -> TrialResult:
        from advisor.engines.simulate import simulate

        result = simulate(source, plan, batch, workload.seq_len, target="cuda", count_cost=first)
        sibling = speed_sibling(plan)
        if result.status is not TrialStatus.UNSUPPORTED or sibling is None:
            return result
        why = result.reason or "cannot be simulated"
        try:
            result = estimated_trial(source, plan, batch, workload.seq_len, why)
        except Exception as exc:  # the estimate cannot take this model: keep the simulation's reason
            log.debug("no estimate for %s: %s", plan.name, exc)
            return dataclasses.replace(result, reason=f"{why}; no closed-form estimate either ({exc})")
        if first:
            twin = trial(sibling, batch)
            cost = twin.simulation.step_cost if twin.simulation is not None else None
            if cost is not None:
                result = dataclasses.replace(result, simulation=SimulationRecord(step_cost=cost))
                result.extra["estimate"]["speed_from"] = sibling.name
        return result

    def trial(plan: Plan, batch: int) -> TrialResult:
        key = (plan.name, batch)
        if key not in cache:
            first = batch == workload.micro_batch
            if mode is Mode.MEASURE:
                cache[key] = _measure(source, plan, batch, workload.seq_len, timed=first)
            else:
                cache[key] = simulated(plan, batch, first)
        return cache[key]

    return Backends(
        trial=trial,
        need=lambda t: need_from_overheads(t, gpu),
        step_time=lambda t, plan: step_time_on(t, gpu),
        settings=cut_settings,
    )


def _measure(source: Any, plan: Plan, batch: int, seq: int, timed: bool) -> TrialResult:
    from advisor.engines.measure import measure_plan

    return measure_plan(plan, source, batch, seq, device="cuda", steps=3 if timed else 0, warmup_steps=1)


def reproduce_command(
    model: str,
    gpu: GpuSpec,
    workload: Workload,
    *,
    rank_by: RankBy = RankBy.TIME,
    mode: Mode = Mode.AUTO,
    plans: str | None = None,
    report: str | None = None,
) -> str:
    """The ``vram-advisor recommend …`` command line that gives this recommendation again."""
    import shlex

    from advisor.catalog.gpus import get_gpu

    args = ["vram-advisor", "recommend", "--model", model]
    if gpu.key.startswith("custom-"):
        args += ["--gpu-mem", format_budget(gpu.memory_bytes)]
    else:
        args += ["--gpu", gpu.key]
        catalog = get_gpu(gpu.key)
        if gpu.memory_bytes != catalog.memory_bytes:
            args += ["--gpu-mem", format_budget(gpu.memory_bytes)]
        if gpu.price_usd_per_hour != catalog.price_usd_per_hour:
            args += ["--price", f"{gpu.price_usd_per_hour:g}"]
    args += ["--batch", str(workload.micro_batch), "--seq", str(workload.seq_len)]
    args += ["--dataset-tokens", str(workload.dataset_tokens), "--epochs", f"{workload.epochs:g}"]
    args += ["--margin", f"{workload.margin:g}"]
    if rank_by is not RankBy.TIME:
        args += ["--rank-by", rank_by.value]
    if mode is Mode.SIMULATE:
        args.append("--simulate")
    elif mode is Mode.MEASURE:
        args.append("--measure")
    if plans:
        args += ["--plans", plans]
    if report:
        args += ["--report", report]
    return shlex.join(args)
