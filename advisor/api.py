"""The public Python API, and the only place that wires the engines to the recommender.

``profile``, ``simulate``, ``sweep`` and ``advise`` are the entry points; the rest is what the
front ends (``advisor.cli``, ``advisor.tui``) need so that they only parse, call this module and
render: the target GPU (:func:`target_gpu`, the one place a memory budget is applied), the plans
(:func:`plan_space`, :func:`one_plan`), many simulations (:func:`simulate_plans`), what a
result means on a GPU (:func:`gpu_figures`, :func:`growth_limits`), and ranking trials in hand
(:func:`check_run`, :func:`plan_trials`, :func:`rank_plans`).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from advisor.catalog.calibration import CalibrationProfile, save_calibration
from advisor.catalog.gpus import GpuSpec, custom_gpu, get_gpu
from advisor.core.deprecation import legacy_sizes
from advisor.core.errors import (
    HardwareUnavailableError,
    InvalidInputError,
    PlanError,
    UnknownGpuError,
    check_device,
    whole_number,
)
from advisor.core.io import environment
from advisor.core.units import parse_memory
from advisor.engines.convergence import convergence_probe
from advisor.engines.flops import StepCost, StepTimeEstimate, estimate_for_gpu, step_cost_of
from advisor.engines.growth import GrowthFit, simulate_growth
from advisor.engines.measure import check_measurable, measure_plan
from advisor.engines.need import DEFAULT_MARGIN, check_margin, usable_bytes
from advisor.engines.overheads import PredictedNeed as GpuNeed
from advisor.engines.overheads import predict_gpu_need
from advisor.engines.prune_quality import PruningQuality, pruning_probe
from advisor.engines.simulate import simulate as run_simulation
from advisor.engines.simulate import simulate_plans as run_simulate_plans
from advisor.engines.sweep import SweepProgress, SweepResult
from advisor.engines.sweep import sweep as run_sweep
from advisor.models import HFModelSource, ModelSource, resolve_model
from advisor.plans import (
    CUT_SYNTAX_HINT,
    Cut,
    Plan,
    PlanSpace,
    PrunedPlan,
    check_plan,
    combinations,
    default_cuts,
    describe_cuts,
    explicit_plans,
    parse_cuts,
    parse_plan,
    parse_plans,
    user_plans,
)
from advisor.recommend import (
    DEFAULT_GPU,
    Mode,
    candidate_plans,
    default_backends,
    recommend,
    reproduce_command,
    target_present,
)
from advisor.recommend.workload import RankBy, Workload
from advisor.report import Advice
from profilers.calibrate import probe_cuda_device
from profilers.records import TrialResult
from profilers.trial import UnsupportedConfiguration

# the entry points, what the front ends need, and a few names passed through (Plan, Workload,
# SweepProgress, convergence_probe, describe_cuts) so that a front end needs
# no import from the engines, the plans or the recommender
__all__ = [
    "DEFAULT_MARGIN",
    "CalibrationProfile",
    "GpuFigures",
    "GrowthLimits",
    "Plan",
    "PruningQuality",
    "SimulatedPlans",
    "SweepProgress",
    "Workload",
    "advise",
    "calibrate",
    "check_margin",
    "check_run",
    "convergence_probe",
    "cut_names",
    "describe_cuts",
    "gpu_figures",
    "growth_limits",
    "one_plan",
    "plan_space",
    "plan_trials",
    "profile",
    "pruning_probe",
    "rank_plans",
    "recommend_command",
    "simulate",
    "simulate_plans",
    "sweep",
    "target_gpu",
    "the_plan",
]

log = logging.getLogger(__name__)


def profile(
    model: str | nn.Module | ModelSource,
    *,
    batch_size: int = 4,
    seq_len: int = 128,
    plan: Plan | str | None = None,
    device: str = "auto",
    steps: int = 5,
    warmup_steps: int = 1,
    progress: Callable[[str], None] | None = None,
) -> TrialResult:
    """Measure one training configuration of ``model`` on this machine.

    ``model`` is a built-in name (``"tiny-llama"``), a Hugging Face directory or config.json,
    ``"module.path:factory"``, or an ``nn.Module``. Runs ``warmup_steps`` steps, then ``steps``
    timed steps, then one step under exact memory tracking. Failures (out of memory, missing
    library, a model error) come back as the result's ``status`` and ``reason``; bad input
    (unknown model, sizes out of range) raises :class:`advisor.AdvisorError`.
    """
    from profilers.trial import resolve_device

    plan = the_plan(plan)
    whole_number("steps", steps, 0)
    whole_number("warmup_steps", warmup_steps, 0)
    device = check_device(device)
    source = resolve_model(model)
    source.check_sizes(batch_size, seq_len)
    check_measurable(source, resolve_device(device))  # an 8B preset is simulated, not measured
    log.info("profiling %s, plan %s, batch %d × seq %d", source.name, plan.name, batch_size, seq_len)
    return measure_plan(
        plan, source, batch_size, seq_len, device=device, steps=steps, warmup_steps=warmup_steps,
        progress=progress,
    )  # fmt: skip


def advise(
    model: str | nn.Module | ModelSource,
    *,
    gpu: str | GpuSpec | None = None,
    workload: Workload | None = None,
    gpu_mem: str | int | None = None,
    price_usd_per_hour: float | None = None,
    plans: str | Sequence[Plan | str] | None = None,
    rank_by: str = "time",
    mode: str = "auto",
    check_top: int = 3,
    progress: Callable[[SweepProgress], None] | None = None,
    moe_imbalance: float = 1.0,
) -> Advice:
    """Rank training plans of ``model`` for the GPU ``gpu`` and the ``workload``.

    ``model`` is a built-in name (``"tiny-llama"``, ``"llama-3.1-8b"``), a Hugging Face
    directory or config.json, ``"module.path:factory"``, or an ``nn.Module``. ``gpu`` is a
    catalog name (``"rtx-4090"``, the default; ``"T4"``, ``"a100 80gb"``; see
    :func:`advisor.list_gpus`) or a :class:`GpuSpec`; ``gpu_mem`` (``"22GiB"`` or bytes)
    overrides its memory, or alone gives a budget-only target. ``plans`` defaults to the baseline, every single cut and known
    combinations (``"lora+grad-ckpt;bf16"`` picks your own). ``mode`` ``"auto"`` measures when
    the target GPU is this machine's, else simulates; ``"simulate"`` / ``"measure"`` force one.
    ``rank_by`` is ``"time"`` or ``"cost"``.

    Returns an :class:`advisor.Advice` (a :class:`advisor.Recommendation` that renders itself):
    ``.best``, ``.ranked``, ``.excluded``, ``.comparison``, ``.to_json()``, ``.to_markdown()``,
    ``.to_text()``, ``.save(prefix)``.
    Unknown GPU or model names and bad workload values raise :class:`advisor.AdvisorError`
    with the cause and a hint. ``progress`` hears a :class:`SweepProgress` at the start and end
    of each plan's trial (phase ``"trials"``) and of each search for the largest micro-batch
    (phase ``"largest micro-batch"``).
    """
    workload = workload or Workload()
    if not isinstance(workload, Workload):
        raise InvalidInputError(
            f"workload must be an advisor.Workload, got {type(workload).__name__}",
            "pass workload=advisor.Workload(micro_batch=4, seq_len=512)",
            argument="workload",
        )
    whole_number("check_top", check_top, 0)
    spec = target_gpu(gpu, gpu_mem, price_usd_per_hour)
    try:
        run_mode = Mode(mode)
        ranking = RankBy(rank_by)
    except ValueError:
        raise InvalidInputError(
            f"mode {mode!r} / rank_by {rank_by!r} not understood",
            "mode: auto, simulate or measure; rank_by: time or cost",
        ) from None
    if run_mode is Mode.AUTO:
        run_mode = Mode.MEASURE if target_present(spec) else Mode.SIMULATE
    if run_mode is Mode.MEASURE and not target_present(spec):
        import torch

        here = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
        raise InvalidInputError(
            f"cannot measure on the {spec.name}: this machine has {here}",
            "simulate instead (mode='simulate', or --simulate), or run on that GPU",
        )
    plan_list = candidate_plans() if plans is None else explicit_plans(plans)  # before any model code
    source = resolve_model(model)
    source.check_sizes(workload.micro_batch, workload.seq_len)
    plan_text = plans if isinstance(plans, str) else None
    if plans is not None and not isinstance(plans, str):
        plan_text = ";".join(p if isinstance(p, str) else p.name for p in plans)
    command = ""
    if isinstance(model, str):
        command = reproduce_command(
            model, spec, workload, rank_by=ranking, mode=Mode(mode), plans=plan_text,
            moe_imbalance=moe_imbalance,
        )
    backends = default_backends(source, spec, workload, run_mode, moe_imbalance=moe_imbalance)
    task = source.task.value if isinstance(source, HFModelSource) else "custom"
    log.info("advising on %s for %s (%s, %d plans)", source.name, spec.name, run_mode.value, len(plan_list))
    rec = recommend(
        source.name,
        plan_list,
        spec,
        workload,
        backends,
        rank_by=ranking,
        mode=run_mode,
        check_top=check_top,
        environment=environment(),
        command=command,
        model_task=task,
        progress=progress,
    )
    return Advice.of(rec)


# advisor.sweep (the module) is imported at the top, not lazily: advisor/__init__ then binds the
# package attribute ``advisor.sweep`` to this function, and no later first import rebinds it
def sweep(
    model: str | nn.Module | ModelSource,
    *,
    cuts: str | Sequence[str | Cut] | None = None,
    plans: str | Sequence[str | Plan] | None = None,
    max_combo: int = 1,
    batch_size: int = 4,
    seq_len: int = 128,
    device: str = "auto",
    steps: int = 3,
    warmup_steps: int = 1,
    out: str | Path | None = None,
    progress: Callable[[SweepProgress], None] | None = None,
    retry_failed: bool = False,
    simulate: bool = False,
    new: bool = False,
) -> SweepResult:
    """Measure the baseline and many plans of ``model``, one trial each.

    Plans are every compatible combination of ``cuts`` (``"lora,grad-ckpt,sgd"`` or a list of
    cut names / :class:`Cut` objects; default: every cut but the opt-in ones) of up to
    ``max_combo`` cuts, or the user list ``plans`` (``"lora+grad-ckpt;sgd"``). Conflicting and
    redundant sets are pruned with the reason (``result.pruned``). A failing plan is recorded
    with its reason and the sweep goes on; with ``out``, results are appended to that JSON Lines
    file as they arrive and a re-run resumes (see :mod:`advisor.engines.sweep`); a file holding
    another sweep (model, sizes, device, steps) is refused unless ``new=True`` moves it aside to
    ``NAME.old.jsonl`` and starts afresh. ``simulate=True`` replays each plan on fake tensors as
    for a CUDA GPU instead of measuring it (any model size, no hardware; ``device`` and ``steps``
    are then unused); the result's ``simulated`` is true and its results file says so.
    """
    space = plan_space(cuts=cuts, plans=plans, max_combo=max_combo)
    whole_number("steps", steps, 0)
    whole_number("warmup_steps", warmup_steps, 0)
    device = check_device(device)
    return run_sweep(
        model,
        space,
        batch_size=batch_size,
        seq_len=seq_len,
        device=device,
        steps=steps,
        warmup_steps=warmup_steps,
        out=out,
        progress=progress,
        retry_failed=retry_failed,
        simulate=simulate,
        new=new,
    )


def simulate(
    model: str | nn.Module | ModelSource,
    plan: Plan | str | None = None,
    *legacy_sizes_given: int,
    batch_size: int = 4,
    seq_len: int = 128,
    target: str = "cuda",
    count_flops: bool = True,
    warmup_steps: int = 1,
    progress: Callable[[str], None] | None = None,
    extrapolate: bool = True,
    moe_imbalance: float = 1.0,
    **legacy: Any,
) -> TrialResult:
    """Replay one training configuration of ``model`` on fake tensors: no GPU, no weights.

    ``model`` is anything :func:`profile` takes, plus the architecture presets
    (``"llama-3.1-8b"``, ``"mistral-7b"``, … see :func:`advisor.builtin_models`) and any
    ``config.json``. ``plan`` is a :class:`Plan` or its text (``"lora+grad-ckpt+bf16"``).
    ``target`` is where the step is meant to run: ``"cuda"`` (the optimizer as torch runs it
    on CUDA, and the caching allocator replayed) or ``"cpu"`` (exactly what this CPU runs).
    The tensor peak and its breakdown are exact (provenance ``simulated``); the result's
    ``simulation`` record holds the peak of each phase, the step's FLOPs and bytes, and (for
    ``target="cuda"``) the CUDA caching allocator replayed. Turn it into a GPU need with
    :func:`advisor.predict_gpu_need` and a step time with :func:`advisor.estimate_for_gpu`.
    Plans that cannot be simulated come back with status ``unsupported`` and the reason.
    A model of 8 or more repeating blocks is replayed with a few and extrapolated exactly
    (``result.simulation.repeats`` says from which); ``extrapolate=False`` replays every layer.
    Mixture-of-experts layers are replayed under balanced routing, or with the hottest expert
    at ``moe_imbalance`` (≥ 1) × its balanced share; ``simulation.moe_routing`` states it.

    The old spellings still work, with a ``DeprecationWarning``: sizes given positionally
    (``simulate(model, plan, 2, 512)``) and ``count_cost=`` for ``count_flops=``.
    """
    batch_size, seq_len = legacy_sizes("simulate", legacy_sizes_given, batch_size, seq_len)
    whole_number("warmup_steps", warmup_steps, 0)
    if "count_cost" in legacy:
        warnings.warn("simulate(count_cost=…) is deprecated; use count_flops=", DeprecationWarning, stacklevel=2)
        count_flops = bool(legacy.pop("count_cost"))
    fake_device = str(legacy.pop("fake_device", "auto"))
    if legacy:
        raise InvalidInputError(
            f"simulate() got unexpected argument{'s' if len(legacy) > 1 else ''} {', '.join(sorted(legacy))}",
            "arguments: model, plan, batch_size, seq_len, target, count_flops, warmup_steps, "
            "progress, moe_imbalance",
        )
    return run_simulation(
        model,
        the_plan(plan),
        batch_size,
        seq_len,
        target=target,
        fake_device=fake_device,
        warmup_steps=warmup_steps,
        count_cost=count_flops,
        progress=progress,
        extrapolate=extrapolate,
        moe_imbalance=moe_imbalance,
    )


# -- targets and plans: what the front ends turn their input into ----------------------------


def the_plan(plan: Plan | str | None) -> Plan:
    """The one plan an entry point runs: ``None`` is the baseline, text is parsed
    (``"lora+grad-ckpt"``); a conflicting or redundant plan raises :class:`advisor.AdvisorError`
    with the reason a sweep would prune it, as does empty text."""
    if plan is None:
        return Plan()
    if isinstance(plan, str) and plan.strip().isdigit():  # simulate(model, 2, 16): sizes in its place
        raise InvalidInputError(
            f"plan {plan!r} is a number, not a plan",
            "the argument after the model is the plan; pass sizes by name: batch_size=2, seq_len=16",
            argument="plan",
        )
    return check_plan(parse_plan(plan) if isinstance(plan, str) else plan)


def target_gpu(
    gpu: str | GpuSpec | None = None,
    gpu_mem: str | int | None = None,
    price_usd_per_hour: float | None = None,
) -> GpuSpec:
    """The target GPU: a catalog entry, a memory budget, or a catalog entry with its memory
    overridden — the one place a budget is applied to a GPU.

    ``gpu`` is a catalog name (``"rtx-4090"``, the default; ``"T4"``) or a :class:`GpuSpec`;
    ``gpu_mem`` (``"22GiB"`` or bytes) alone gives a budget-only target (``custom-22GiB``), and
    with ``gpu`` that GPU with this much memory; ``price_usd_per_hour`` overrides the price.
    Unknown names and budgets ≤ 0 raise :class:`advisor.AdvisorError`.
    """
    size = parse_memory(gpu_mem) if isinstance(gpu_mem, str) else gpu_mem
    if gpu is None:
        spec = custom_gpu(size) if size is not None else get_gpu(DEFAULT_GPU)
    else:
        spec = gpu if isinstance(gpu, GpuSpec) else get_gpu(gpu)
        if size is not None:
            spec = spec.with_memory(size)
    if price_usd_per_hour is not None:
        spec = spec.with_price(price_usd_per_hour)
    return spec


def plan_space(
    *,
    cuts: str | Sequence[str | Cut] | None = None,
    plans: str | Sequence[str | Plan] | None = None,
    max_combo: int = 1,
) -> PlanSpace:
    """The plans of a sweep: every compatible combination of ``cuts`` (text
    ``"lora,grad-ckpt"`` or a list of names / :class:`Cut` objects; default every cut but the
    opt-in ones) of up to ``max_combo`` cuts, or the user list ``plans``
    (``"lora+grad-ckpt;sgd"``); baseline first, pruned plans listed with their reason."""
    if cuts is not None and plans is not None:
        raise InvalidInputError("give cuts or plans, not both", "cuts make combinations; plans are a list")
    if plans is not None:
        return user_plans(plans)  # "lora+grad-ckpt;sgd" or a list
    if cuts is None:
        chosen = default_cuts()
    elif isinstance(cuts, str):
        chosen = parse_cuts(cuts)
        if not chosen:  # "" given on purpose is not "every cut", nor silently the baseline alone
            raise PlanError("no cuts given: the cut list is empty", CUT_SYNTAX_HINT)
    else:
        chosen = []
        for item in cuts:
            chosen.extend([item] if isinstance(item, Cut) else parse_cuts(item))
    return combinations(chosen, max_combo)


def one_plan(*, cuts: str | None = None, plans: str | None = None) -> Plan:
    """The one plan named by cuts text (``"lora(r=16),grad-ckpt"``) or plan text
    (``"lora+grad-ckpt"``); neither is the baseline. Text naming several plans raises."""
    if cuts is not None and plans is not None:
        raise InvalidInputError("give cuts or plans, not both", "cuts: 'lora,grad-ckpt'; a plan: 'lora+grad-ckpt'")
    if plans is not None:
        found = parse_plans(plans)
        if len(found) != 1:
            raise InvalidInputError(
                f"--plans names {len(found)} plans but one is simulated without --sweep",
                "add --sweep, or give one plan (cuts joined by '+')",
            )
        return check_plan(found[0])
    return check_plan(Plan.of(parse_cuts(cuts or "")))


def cut_names() -> list[str]:
    """The cuts a front end offers, in the registry's order (opt-in cuts such as compile left out)."""
    return [cut.name for cut in default_cuts()]


# -- simulating many plans, and what a simulation means on a target GPU ----------------------


@dataclass(frozen=True)
class SimulatedPlans:
    """The results of :func:`simulate_plans`, in plan order, and the plans pruned before."""

    results: tuple[TrialResult, ...]
    pruned: tuple[PrunedPlan, ...] = ()


def simulate_plans(
    model: str | nn.Module | ModelSource,
    *,
    cuts: str | Sequence[str | Cut] | None = None,
    plans: str | Sequence[str | Plan] | None = None,
    max_combo: int = 1,
    batch_size: int = 4,
    seq_len: int = 128,
    target: str = "cuda",
    progress: Callable[[SweepProgress], None] | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
    extrapolate: bool = True,
    workers: int | None = None,
    moe_imbalance: float = 1.0,
) -> SimulatedPlans:
    """Simulate the baseline and many plans of ``model`` (a sweep without hardware).

    Plans are chosen as :func:`sweep` chooses them (see :func:`plan_space`); one plan's failure
    is its result, and ``on_result`` sees each result as it arrives. Plans run in ``workers``
    processes (default: one per core; 1: one after the other in this process), with the same
    results; ``extrapolate`` as for :func:`simulate`.
    """
    space = plan_space(cuts=cuts, plans=plans, max_combo=max_combo)
    results = run_simulate_plans(
        model, space.plans, batch_size=batch_size, seq_len=seq_len, target=target,
        progress=progress, on_result=on_result, extrapolate=extrapolate, workers=workers,
        moe_imbalance=moe_imbalance,
    )  # fmt: skip
    return SimulatedPlans(tuple(results), tuple(space.pruned))


@dataclass(frozen=True)
class GpuFigures:
    """What one simulated (or measured) trial means on a target GPU; ``None`` where unknown.

    ``need`` is the memory the step needs there (tensor peak + overheads, with sources),
    ``fits`` the verdict of the one fit rule (:func:`advisor.engines.need.fits_in`) against
    ``budget_bytes``, the GPU's memory less the share ``margin`` kept free; ``timing`` the
    estimated step time from the counted FLOPs and bytes, ``cost`` those counts.
    """

    gpu: GpuSpec | None
    need: GpuNeed | None
    fits: bool | None
    timing: StepTimeEstimate | None
    cost: StepCost | None
    margin: float = DEFAULT_MARGIN
    budget_bytes: int | None = None  # usable: the GPU's memory less the margin (None: no GPU)


def gpu_figures(
    result: TrialResult, gpu: GpuSpec | None = None, *, margin: float = DEFAULT_MARGIN
) -> GpuFigures:
    """The need, fit, step time and step cost of ``result`` on ``gpu`` (without one: on a
    CUDA GPU in general, so no fit and no speed). A plan fits when its need is within the
    memory less the share ``margin`` kept free (default 10%), the recommender's rule."""
    margin = check_margin(margin)
    ok = result.ok
    need = predict_gpu_need(result, gpu) if ok and result.tensor_peak is not None else None
    budget = usable_bytes(gpu.memory_bytes, margin) if gpu is not None else None
    fits = None
    if need is not None and gpu is not None:
        fits = need.fits(gpu.memory_bytes, margin)
    timing = estimate_for_gpu(result, gpu) if gpu is not None and ok else None
    return GpuFigures(
        gpu=gpu, need=need, fits=fits, timing=timing, cost=step_cost_of(result), margin=margin,
        budget_bytes=budget,
    )  # fmt: skip


@dataclass(frozen=True)
class GrowthLimits:
    """Memory fitted over batch and sequence sizes and, on a target GPU, the largest
    micro-batch at ``seq_len`` and the longest sequence at ``batch_size`` that fit."""

    fit: GrowthFit
    batch_size: int
    seq_len: int
    max_batch: int | None = None
    max_seq: int | None = None


def growth_limits(
    model: str | nn.Module | ModelSource,
    plan: Plan | str | None = None,
    *,
    batch_size: int = 4,
    seq_len: int = 128,
    target: str = "cuda",
    gpu: GpuSpec | None = None,
    base: TrialResult | None = None,
    margin: float = DEFAULT_MARGIN,
    progress: Callable[[str], None] | None = None,
    moe_imbalance: float = 1.0,
) -> GrowthLimits:
    """Fit the plan's memory over sizes around ``batch_size`` × ``seq_len`` (simulated) and,
    with ``gpu``, find the largest sizes that fit it: the overheads found at the simulated size
    ``base`` (simulated here when not given) are added to the fitted peak at other sizes; a
    size fits by the one fit rule (the memory less the share ``margin`` kept free)."""
    fit = simulate_growth(
        model, plan, batch_size=batch_size, seq_len=seq_len, target=target, progress=progress,
        moe_imbalance=moe_imbalance,
    )  # fmt: skip
    if gpu is None:
        return GrowthLimits(fit, batch_size, seq_len)
    if base is None:
        base = simulate(
            model, plan, batch_size=batch_size, seq_len=seq_len, target=target, count_flops=False,
            moe_imbalance=moe_imbalance,
        )  # fmt: skip
    if base.tensor_peak is None:
        return GrowthLimits(fit, batch_size, seq_len)
    offset = predict_gpu_need(base, gpu).total_bytes - base.tensor_peak.peak_bytes
    budget = usable_bytes(gpu.memory_bytes, margin)

    def need(peak: int) -> int:
        return peak + offset

    return GrowthLimits(
        fit,
        batch_size,
        seq_len,
        max_batch=fit.max_batch_that_fits(budget, seq_len, need=need),
        max_seq=fit.max_seq_that_fits(budget, batch_size, need=need),
    )


# -- ranking trials in hand (the TUI's run-once, re-rank-often session) ----------------------


def check_run(model: str | nn.Module | ModelSource, workload: Workload, *, mode: str = "simulate") -> ModelSource:
    """The model source for a run of ``workload``; bad input (unknown model, sizes out of
    range, a model too big to measure here) raises :class:`advisor.AdvisorError`."""
    source = resolve_model(model)
    source.check_sizes(workload.micro_batch, workload.seq_len)
    if mode == "measure":
        check_measurable(source, "cpu", (workload.micro_batch,))
    return source


def _mode(mode: str) -> Mode:
    return Mode.MEASURE if mode == "measure" else Mode.SIMULATE


def plan_trials(
    source: ModelSource, gpu: GpuSpec, workload: Workload, *, mode: str = "simulate"
) -> Callable[[Plan, int], TrialResult]:
    """The trial function the recommender runs: ``(plan, micro-batch) → TrialResult`` at the
    workload's sequence length, measured on the target (``mode="measure"``) or simulated."""
    return default_backends(source, gpu, workload, _mode(mode)).trial


def rank_plans(
    source: ModelSource,
    plans: Sequence[Plan],
    gpu: GpuSpec,
    workload: Workload,
    *,
    trial: Callable[[Plan, int], TrialResult] | None = None,
    mode: str = "simulate",
    rank_by: str = "time",
    check_top: int = 1,
) -> Advice:
    """Rank ``plans`` of ``source`` for ``gpu`` and ``workload``, with trials from ``trial``
    (default :func:`plan_trials`): a cache of trials in hand re-ranks without running anything."""
    backends = default_backends(source, gpu, workload, _mode(mode))
    if trial is not None:
        backends = dataclasses.replace(backends, trial=trial)
    task = source.task.value if isinstance(source, HFModelSource) else "custom"
    rec = recommend(
        source.name,
        plans,
        gpu,
        workload,
        backends,
        rank_by=rank_by,
        mode=_mode(mode),
        check_top=check_top,
        environment=environment(),
        model_task=task,
    )
    return Advice.of(rec)


def recommend_command(
    model: str,
    gpu: GpuSpec,
    workload: Workload,
    *,
    rank_by: str = "time",
    mode: str = "auto",
    plans: str | None = None,
    report: str | None = None,
    moe_imbalance: float = 1.0,
) -> str:
    """The ``vram-advisor recommend …`` command line that gives this advice again."""
    return reproduce_command(
        model, gpu, workload, rank_by=RankBy(rank_by), mode=Mode(mode), plans=plans, report=report,
        moe_imbalance=moe_imbalance,
    )


def calibrate(gpu: str | None = None, *, device_index: int = 0, save: bool = True) -> CalibrationProfile:
    """Measure this CUDA GPU's context, cuBLAS workspaces and allocator overhead (a few
    seconds; :func:`profilers.calibrate.probe_cuda_device`) and, with ``save``, keep the
    profile so every later prediction for that GPU uses it (:mod:`advisor.catalog.calibration`).

    ``gpu`` names the catalog entry the card is (default: the driver's device name, matched
    against the catalog). Raises :class:`HardwareUnavailableError` without a CUDA GPU.
    """
    try:
        probe = probe_cuda_device(device_index)
    except UnsupportedConfiguration as exc:
        raise HardwareUnavailableError(
            str(exc), "run calibrate on the machine with the GPU (with a CUDA build of torch)"
        ) from None
    try:
        spec = get_gpu(gpu or probe.device_name)
    except UnknownGpuError as exc:
        raise UnknownGpuError(
            f"the GPU here ({probe.device_name}) is not in the catalog: {exc.message}",
            "name the catalog entry it matches: gpu='rtx-4090'; `vram-advisor gpus` lists them",
            argument="gpu",
        ) from None
    profile = CalibrationProfile(
        gpu_key=spec.key,
        device_name=probe.device_name,
        context_bytes=probe.context_bytes,
        workspace_bytes=probe.workspace_bytes,
        allocator_overhead_fraction=probe.allocator_overhead_fraction,
        driver_version=probe.driver_version,
        cuda_version=probe.cuda_version,
        torch_version=probe.torch_version,
        cuda_module_loading=probe.cuda_module_loading,
        alloc_conf=probe.alloc_conf,
        measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        notes=probe.notes,
    )
    if save:
        path = save_calibration(profile)
        log.info("calibration of %s saved to %s", spec.key, path)
    return profile
