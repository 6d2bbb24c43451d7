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
import math
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
    AdvisorError,
    HardwareUnavailableError,
    InvalidInputError,
    PlanError,
    UnknownGpuError,
    check_device,
    whole_number,
)
from advisor.core.io import environment
from advisor.core.lengths import LengthDistribution, parse_lengths
from advisor.core.units import format_bytes, parse_memory
from advisor.engines.convergence import convergence_probe
from advisor.engines.distributed import measure_distributed
from advisor.engines.flops import StepCost, StepTimeEstimate, estimate_for_gpu, step_cost_of
from advisor.engines.growth import GrowthFit, simulate_growth
from advisor.engines.measure import check_measurable, measure_plan
from advisor.engines.need import DEFAULT_MARGIN, check_margin, usable_bytes
from advisor.engines.overheads import PredictedNeed as GpuNeed
from advisor.engines.overheads import gpu_need, predict_gpu_need
from advisor.engines.prune_quality import PruningQuality, pruning_probe
from advisor.engines.simulate import simulate as run_simulation
from advisor.engines.simulate import simulate_plans as run_simulate_plans
from advisor.engines.sweep import SweepProgress, SweepResult
from advisor.engines.sweep import sweep as run_sweep
from advisor.engines.zero import check_zero_measurable
from advisor.models import HFModelSource, ModelSource, resolve_model
from advisor.models.datasets import dataset_lengths
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
from advisor.plans.configs import ConfigPlan, plan_from_config
from advisor.plans.configs.nearest import neighbour_plans
from advisor.plans.configs.types import GPUS_UNKNOWN_NOTE
from advisor.plans.cuts.batching import resolve_batching
from advisor.plans.cuts.distributed import check_world
from advisor.recommend import (
    DEFAULT_GPU,
    Mode,
    PlanVerdict,
    batching_plans,
    candidate_plans,
    default_backends,
    recommend,
    reproduce_command,
    target_present,
)
from advisor.recommend.cluster import (
    DEFAULT_GPUS_PER_NODE,
    ClusterRecommendation,
    gpu_counts,
    recommend_shapes,
    shape_backends,
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
    "ConfigCheck",
    "ConfigPlan",
    "GpuFigures",
    "GrowthLimits",
    "LengthDistribution",
    "Plan",
    "PruningQuality",
    "RankNeighbours",
    "SimulatedPlans",
    "SweepProgress",
    "Workload",
    "advise",
    "advise_cluster",
    "calibrate",
    "check_config",
    "check_margin",
    "check_run",
    "convergence_probe",
    "cut_names",
    "dataset_lengths",
    "describe_cuts",
    "gpu_figures",
    "growth_limits",
    "one_plan",
    "parse_lengths",
    "plan_from_config",
    "plan_space",
    "plan_trials",
    "profile",
    "pruning_probe",
    "rank_plans",
    "recommend_command",
    "sample_lengths",
    "simulate",
    "simulate_plans",
    "sweep",
    "target_gpu",
    "the_plan",
    "timeline",
    "watch",
    "with_lengths",
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
    lengths: LengthDistribution | str | None = None,
    gpus: int = 1,
    runs: int = 1,
) -> TrialResult:
    """Measure one training configuration of ``model`` on this machine.

    ``model`` is a built-in name (``"tiny-llama"``), a Hugging Face directory or config.json,
    ``"module.path:factory"``, or an ``nn.Module``. Runs ``warmup_steps`` steps, then ``steps``
    timed steps, then one step under exact memory tracking. Failures (out of memory, missing
    library, a model error) come back as the result's ``status`` and ``reason``; bad input
    (unknown model, sizes out of range) raises :class:`advisor.AdvisorError`. A plan with a
    batching cut (``pack(max_tokens=4096)``, ``group-by-length``…) runs the worst batch it forms
    from ``lengths`` (a :class:`LengthDistribution` or ``"p50=300,p95=1800,max=4096"``).

    With a strategy cut (``fsdp2``, ``ddp``, ``hsdp``) and ``gpus`` N ≥ 2, a real ``torchrun``
    job of N local processes runs the trial on every rank (gloo on CPU, NCCL on GPUs), ``runs``
    times; the result is the highest rank's, ``result.distributed`` holding every rank's peak.
    """
    from profilers.trial import resolve_device

    plan, batch_size, seq_len = with_lengths(the_plan(plan), lengths, batch_size, seq_len)
    plan = the_plan(plan)
    check_zero_measurable(plan)  # a measured DeepSpeed ZeRO run needs DeepSpeed, no offload
    check_world(plan, gpus)
    if gpus > 1:
        whole_number("runs", runs, 1)
        source = resolve_model(model)
        source.check_sizes(batch_size, seq_len)
        where = "cuda" if resolve_device(check_device(device)).type == "cuda" else "cpu"
        return measure_distributed(
            model, plan, batch_size, seq_len, nproc=gpus, device=where, steps=steps,
            warmup_steps=warmup_steps, runs=runs, progress=progress,
        )  # fmt: skip
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
    lengths: LengthDistribution | str | None = None,
    dataset: str | Path | None = None,
    text_field: str | None = None,
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

    Real sequence lengths — ``lengths`` (a :class:`LengthDistribution` or percentiles
    ``"p50=300,p95=1800,max=4096"``) or a ``dataset`` file (``.jsonl``/``.json``/``.parquet``/
    text, counted with the model's tokenizer when its folder has one, else estimated;
    ``text_field`` names the field) — make every plan without a batching cut pad to the longest
    sample, add the batching plans (group by length, packing, token budget; alone and with
    LoRA), count tokens/s on real tokens, and say the padding in each why line; a packing
    plan's largest micro-batch is its largest token budget in units of the padded batch.
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
    if isinstance(lengths, str):
        lengths = parse_lengths(lengths)
    if dataset is not None:
        if lengths is not None:
            raise InvalidInputError("give a dataset or lengths, not both", "drop one of dataset= and lengths=")
        lengths = dataset_lengths(dataset, source, text_field=text_field)
    lengths = lengths or workload.lengths
    if lengths is not None:  # padded plans pad to the longest sample
        workload = dataclasses.replace(workload, seq_len=lengths.max_len, lengths=lengths)
        if plans is None:
            limit = source.max_positions if isinstance(source, HFModelSource) else None
            plan_list += batching_plans(lengths.max_len, workload.micro_batch, limit)
        log.info("sequence lengths: %s", lengths.summary())
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
    lengths: LengthDistribution | str | None = None,
    gpus: int = 1,
    nodes: int = 1,
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
    A batching cut's worst batch is formed from ``lengths`` as for :func:`profile`.
    A distributed plan (``zero(stage=3)``) is one rank of ``gpus`` over ``nodes``; its
    ``result.distributed`` holds the rank's layout and communication per step.
    With a strategy cut (``ddp``, ``fsdp2``, ``hsdp(shard=N)``) and ``gpus`` ≥ 2 (over
    ``nodes`` machines), the replay is rank 0 of ``gpus`` on torch's fake process group:
    ``batch_size`` is each GPU's micro-batch, the tensor peak is one rank's, and
    ``result.distributed`` holds the strategy, the communication buffers and the bytes sent.

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
    the, batch_size, seq_len = with_lengths(the_plan(plan), lengths, batch_size, seq_len)
    return run_simulation(
        model,
        the,
        batch_size,
        seq_len,
        target=target,
        fake_device=fake_device,
        warmup_steps=warmup_steps,
        count_cost=count_flops,
        progress=progress,
        extrapolate=extrapolate,
        moe_imbalance=moe_imbalance,
        gpus=gpus,
        nodes=nodes,
    )


# -- targets and plans: what the front ends turn their input into ----------------------------


def sample_lengths(
    model: str | nn.Module | ModelSource,
    *,
    dataset: str | Path | None = None,
    lengths: LengthDistribution | str | None = None,
    text_field: str | None = None,
) -> LengthDistribution | None:
    """The sample lengths a front end was given: counted from ``dataset`` (with ``model``'s
    tokenizer when it has one, see :func:`dataset_lengths`) or parsed from ``lengths``
    (``"p50=300,p95=1800,max=4096"``); ``None`` when neither. Both, or ``text_field`` without a
    dataset, raise :class:`advisor.AdvisorError`."""
    if dataset is not None and lengths is not None:
        raise InvalidInputError("give a dataset or lengths, not both", "drop one of --dataset and --lengths")
    if text_field is not None and dataset is None:
        raise InvalidInputError("a text field names a field of a dataset file", "add --dataset FILE or drop --text-field")
    if dataset is not None:
        return dataset_lengths(dataset, resolve_model(model), text_field=text_field)
    return parse_lengths(lengths) if isinstance(lengths, str) else lengths


def with_lengths(
    plan: Plan, lengths: LengthDistribution | str | None, batch_size: int, seq_len: int
) -> tuple[Plan, int, int]:
    """``plan`` with its batching cut given the lengths, and the worst batch's (rows, tokens a
    row) it runs; a plan without one keeps ``batch_size`` × ``seq_len``."""
    if isinstance(lengths, str):
        lengths = parse_lengths(lengths)
    return resolve_batching(plan, lengths, batch_size, seq_len)


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
    gpus: int = 1,
    nodes: int = 1,
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
        moe_imbalance=moe_imbalance, gpus=gpus, nodes=nodes,
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


# -- users' own training configs ---------------------------------------------------------------

# the sequence length simulated when the config names none (a TrainingArguments dump, PEFT)
CONFIG_SEQ_LEN = 512


@dataclass(frozen=True)
class ConfigCheck:
    """A training config checked against a GPU: the plan read from it (``config``), its
    simulated step (``result``) and what that needs on ``gpu`` (``figures``: the need, and
    ``fits`` by the one fit rule); when it does not fit, ``neighbours``: the recommender's
    ranking of the plans one change away, whose best is :attr:`nearest`."""

    config: ConfigPlan
    model: str
    seq_len: int
    seq_len_assumed: bool  # the config names no sequence length: CONFIG_SEQ_LEN or the caller's
    gpu: GpuSpec
    result: TrialResult
    figures: GpuFigures
    neighbours: Advice | RankNeighbours | None = None

    @property
    def fits(self) -> bool | None:
        return self.figures.fits

    @property
    def nearest(self) -> PlanVerdict | None:
        """The best-ranked plan one change away that fits (``None``: the config fits as it is,
        or no such plan fits)."""
        return self.neighbours.best if self.neighbours is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the plan understood, the need on the GPU, the verdict, the nearest plan."""
        need = self.figures.need
        nearest = self.nearest
        return {
            "config": self.config.to_dict(),
            "model": self.model,
            "seq_len": self.seq_len,
            "seq_len_assumed": self.seq_len_assumed,
            "gpu": self.gpu.key,
            "memory_bytes": self.gpu.memory_bytes,
            "budget_bytes": self.figures.budget_bytes,
            "margin": self.figures.margin,
            "status": self.result.status.value,
            "reason": self.result.reason,
            "tensor_peak_bytes": self.result.tensor_peak.peak_bytes if self.result.tensor_peak else None,
            "need_bytes": need.total_bytes if need is not None else None,
            "fits": self.fits,
            "nearest": None
            if nearest is None
            else {
                "plan": nearest.plan,
                "need_bytes": nearest.need.total_bytes if nearest.need is not None else None,
                "fits": nearest.fits,
                "step_time_s": nearest.step_time_s,
                "why": nearest.why,
            },
            "neighbours_tried": len(self.neighbours.ranked) + len(self.neighbours.excluded)
            if self.neighbours is not None
            else 0,
        }


@dataclass(frozen=True)
class RankNeighbours:
    """The plans one change away from a multi-GPU config's plan that keep its strategy, each
    simulated as one rank at the config's GPU count: ``ranked`` (those that fit first, then by
    estimated step time), ``excluded`` (could not be simulated there); :attr:`best` the first
    that fits. Takes the place of :class:`Advice` in :attr:`ConfigCheck.neighbours`."""

    ranked: tuple[PlanVerdict, ...]
    excluded: tuple[PlanVerdict, ...]

    @property
    def best(self) -> PlanVerdict | None:
        return next((v for v in self.ranked if v.fits), None)


def _rank_neighbours(
    model: str | nn.Module | ModelSource,
    cp: ConfigPlan,
    spec: GpuSpec,
    seq_len: int,
    margin: float,
    progress: Callable[[SweepProgress], None] | None,
) -> RankNeighbours:
    """The neighbours of a multi-GPU plan (same strategy, same GPUs and nodes), one rank each."""
    gpus, nodes = cp.gpus or 1, cp.nodes
    strategy = next(c for c in cp.plan.cuts if c.distributed)
    plans, skipped = [], []
    for plan in neighbour_plans(cp.plan, cp.batch_size):
        if strategy not in plan.cuts:
            continue  # the change dropped the strategy (a cut that conflicts with it)
        try:
            check_world(plan, gpus, nodes)
        except AdvisorError as exc:
            skipped.append((plan, exc.message))
            continue
        plans.append(plan)
    workload = Workload(micro_batch=cp.batch_size, seq_len=seq_len, margin=margin)
    source = resolve_model(model)
    backends = shape_backends(source, spec, workload, lambda t: gpu_need(t, spec))
    rec = recommend_shapes(
        source.name, plans, spec, (gpus,), workload, backends, gpus_per_node=max(1, gpus // nodes), progress=progress
    )
    ranked: list[PlanVerdict] = []
    for v in sorted((v for v in rec.shapes if v.excluded_reason is None),
                    key=lambda v: (not v.fits, v.step_time_s if v.step_time_s is not None else math.inf)):  # fmt: skip
        need = format_bytes(v.need.total_bytes, 2) if v.need is not None else "–"
        why = f"{need} per rank, {gpus} GPUs over {nodes} node{'s' if nodes > 1 else ''} ({'fits' if v.fits else 'does not fit'})"
        ranked.append(dataclasses.replace(v, why=why, rank=len(ranked) + 1))
    excluded = [v for v in rec.shapes if v.excluded_reason is not None]
    excluded += [PlanVerdict(p.name, p.cut_names, {}, spec.memory_bytes, rec.workload.usable_bytes(spec.memory_bytes),
                             excluded_reason=why, gpus=gpus, nodes=nodes) for p, why in skipped]  # fmt: skip
    return RankNeighbours(tuple(ranked), tuple(excluded))


def check_config(
    config: str | Path | dict[str, Any] | Sequence[str | Path | dict[str, Any]],
    *,
    model: str | nn.Module | ModelSource | None = None,
    gpu: str | GpuSpec | None = None,
    gpu_mem: str | int | None = None,
    seq_len: int | None = None,
    micro_batch_size: int | None = None,
    margin: float = DEFAULT_MARGIN,
    search: bool = True,
    progress: Callable[[SweepProgress], None] | None = None,
    gpus: int | None = None,
    nodes: int | None = None,
) -> ConfigCheck:
    """Read a training config (see :func:`advisor.plan_from_config`; several files describing
    one run together are fine) and check it on ``gpu``: simulate its step at its own micro-batch,
    accumulation and sequence length, and decide the fit by the one fit rule (the memory less the
    share ``margin``). When it does not fit and ``search`` is on, the plans one change away (a cut
    added or swapped, or half the micro-batch with twice the accumulation) are ranked by
    :func:`advise` on the same GPU and workload; the best that fits is ``.nearest``.

    ``model`` is needed where the config names none (a TrainingArguments dump); a Hub id that
    names a built-in preset's architecture (``meta-llama/Llama-3.2-1B``) is read as that preset.
    ``seq_len`` overrides the config's (default :data:`CONFIG_SEQ_LEN` when it has none), and
    ``micro_batch_size`` its samples per forward pass (1 when it has none), keeping its accumulation.

    A multi-GPU config (DeepSpeed, accelerate) is simulated as one rank of its GPUs over its
    nodes (``gpus``/``nodes`` override the config's; needed where it does not say), and the need
    is per rank; the plans one change away keep its strategy and GPU count.
    """
    margin = check_margin(margin)
    spec = target_gpu(gpu, gpu_mem)
    cp = plan_from_config(config)
    if gpus is not None or nodes is not None:
        world = whole_number("gpus", gpus) if gpus is not None else cp.gpus
        machines = whole_number("nodes", nodes) if nodes is not None else cp.nodes
        said = [f"{what} {mine} as given, not the config's {theirs}" for what, mine, theirs in
                (("GPUs", gpus, cp.gpus), ("nodes", nodes, cp.nodes)) if mine is not None and theirs not in (None, mine)]  # fmt: skip
        kept = tuple(n for n in cp.notes if world is None or n != GPUS_UNKNOWN_NOTE)
        cp = dataclasses.replace(cp, gpus=world, nodes=machines, notes=(*kept, *said))
    if cp.gpus is None and any(c.distributed for c in cp.plan.cuts):
        raise InvalidInputError(
            f"the config's plan {cp.plan.name} is multi-GPU but does not say how many GPUs",
            "pass gpus=N",
            argument="gpus",
        )
    world_size, node_count = cp.gpus or 1, cp.nodes
    if micro_batch_size is not None:
        whole_number("micro_batch_size", micro_batch_size)
        note = f"micro-batch {micro_batch_size} as given, not the config's {cp.micro_batch_size}"
        cp = dataclasses.replace(cp, micro_batch_size=micro_batch_size, notes=(*cp.notes, note))
    chosen = model if model is not None else cp.model
    if chosen is None:
        raise InvalidInputError(
            "the config names no model (a TrainingArguments or PEFT config does not say which)",
            "pass model='llama-3.2-1b' (a built-in name, a Hub id or a config.json)",
            argument="model",
        )
    if seq_len is not None:
        whole_number("seq_len", seq_len)
    seq = seq_len or cp.seq_len or CONFIG_SEQ_LEN
    name = chosen if isinstance(chosen, str) else getattr(chosen, "name", type(chosen).__name__)
    check_plan(cp.plan)
    result = simulate(chosen, cp.plan, batch_size=cp.batch_size, seq_len=seq, gpus=world_size, nodes=node_count)
    figures = gpu_figures(result, spec, margin=margin)
    neighbours: Advice | RankNeighbours | None = None
    if search and figures.fits is False and world_size > 1:
        log.info("%s does not fit the %s: ranking the plans one change away on %d GPUs", cp.plan.name, spec.name, world_size)
        neighbours = _rank_neighbours(chosen, cp, spec, seq, margin, progress)
    elif search and figures.fits is False:
        plans = neighbour_plans(cp.plan, cp.batch_size)
        log.info("%s does not fit the %s: ranking %d plans one change away", cp.plan.name, spec.name, len(plans))
        neighbours = advise(
            chosen, gpu=spec, workload=Workload(micro_batch=cp.batch_size, seq_len=seq, margin=margin),
            plans=plans, mode="simulate", check_top=0, progress=progress,
        )  # fmt: skip
    return ConfigCheck(
        config=cp, model=str(name), seq_len=seq, seq_len_assumed=seq_len is None and cp.seq_len is None,
        gpu=spec, result=result, figures=figures, neighbours=neighbours,
    )  # fmt: skip
# -- watching the user's own loop --------------------------------------------------------------


def watch(
    model: nn.Module,
    optimizer: Any = None,
    *,
    plan: Plan | str | None = None,
    budget: str | int | None = None,
    gpu: str | GpuSpec | None = None,
    margin: float = DEFAULT_MARGIN,
    warn_at: float = 0.95,
    batch_size: int | None = None,
    seq_len: int | None = None,
    exact_every: int = 1,
    step_on_optimizer: bool | None = None,
    report: str | Path | None = None,
    on_step: Callable[[Any], None] | None = None,
    on_warning: Callable[[Any, str], None] | None = None,
    config: str | Path | dict[str, Any] | Sequence[str | Path | dict[str, Any]] | None = None,
) -> Any:
    """Watch your own training loop: a context manager measuring each step's peak memory (by
    part: parameters, gradients, optimizer state, activations, …) and its time.

    ``with advisor.watch(model, optimizer, plan="lora+bf16", budget="24GiB") as w: …`` — steps
    end when ``optimizer.step()`` returns (or call ``w.step()`` yourself without an optimizer).
    On CPU the exact tensor tracker measures every ``exact_every``-th step (0: none, step times
    only); on CUDA the
    allocator's peak counters and NVML do. With ``plan`` the advisor simulates that plan on the
    same model and batch (shape read from the first forward's ``input_ids``, or ``batch_size``
    and ``seq_len``) and the report gives the prediction error. ``budget`` (memory, ``"22GiB"``
    or bytes) or ``gpu`` (a catalog name) sets the budget: once a step's peak reaches
    ``warn_at`` × the usable budget (the memory less ``margin``), a warning is logged and
    ``on_warning(record, message)`` called. ``step_on_optimizer=False`` keeps the optimizer
    (its state is counted) but leaves the step boundaries to ``w.begin_step()``/``w.end_step()``. ``on_step(record)`` gets every step's record.
    Leaving the block returns nothing; ``w.report()`` gives the :class:`WatchReport`, written
    atomically to ``report`` (``.md`` Markdown, else JSON) on exit when given.

    ``config`` (instead of ``plan``: a training config's path or dict, or several, as
    :func:`advisor.plan_from_config` reads them) gives the plan, and its batch (micro-batch ×
    accumulation) and sequence length where ``batch_size``/``seq_len`` are not given; a
    multi-GPU config's prediction is one rank of its GPUs, as the watched loop is.
    """
    from advisor.plans.configs.types import NO_BATCH_NOTE
    from advisor.report.watch import Watch

    gpus = nodes = 1
    if config is not None:
        if plan is not None:
            raise InvalidInputError("watch: give plan or config, not both", "drop one of plan=, config=")
        cp = plan_from_config(config)
        plan = cp.plan
        if batch_size is None and NO_BATCH_NOTE not in cp.notes:
            batch_size = cp.batch_size
        seq_len = seq_len if seq_len is not None else cp.seq_len
        gpus, nodes = cp.gpus or 1, cp.nodes
        for key, value in cp.ignored:
            log.info("watch: config key %s = %s ignored in the prediction", key, value)

    if not 0 < warn_at <= 1:
        raise InvalidInputError(f"warn_at must be in (0, 1], got {warn_at!r}", "e.g. warn_at=0.95")
    whole_number("exact_every", exact_every, 0)
    budget_bytes = warn_bytes = None
    if budget is not None or gpu is not None:
        spec = target_gpu(gpu, budget)
        budget_bytes = usable_bytes(spec.memory_bytes, margin)
        warn_bytes = int(budget_bytes * warn_at)
    return Watch(
        model,
        optimizer,
        plan=the_plan(plan) if plan is not None else None,
        batch_size=batch_size,
        seq_len=seq_len,
        budget_bytes=budget_bytes,
        warn_bytes=warn_bytes,
        exact_every=exact_every,
        hook_optimizer=optimizer is not None if step_on_optimizer is None else step_on_optimizer,
        report_path=report,
        on_step=on_step,
        on_warning=on_warning,
        gpus=gpus,
        nodes=nodes,
    )


# -- memory over time ----------------------------------------------------------------------------


def timeline(
    model: str | nn.Module | ModelSource,
    plan: Plan | str | None = None,
    *,
    batch_size: int = 4,
    seq_len: int = 128,
    target: str = "cuda",
    max_samples: int = 2000,
    chart: str | Path | None = None,
    memory_snapshot: str | Path | None = None,
    gpu: str | GpuSpec | None = None,
    margin: float = DEFAULT_MARGIN,
    progress: Callable[[str], None] | None = None,
    measure: bool = False,
    device: str = "auto",
) -> TrialResult:
    """Memory over one simulated step: the result of :func:`simulate` (every layer replayed)
    with ``result.timeline``, the live bytes by category across forward, backward and the
    optimizer, the peak's moment and the largest tensors alive at it with the op that made them.

    ``chart`` writes it as a picture (``.svg``, or ``.png`` with matplotlib), with the usable
    budget of ``gpu`` drawn when given; ``memory_snapshot`` writes the step as a
    ``torch.cuda.memory._snapshot()`` pickle that pytorch.org/memory_viz opens. Both atomically.
    ``measure=True`` measures the step on ``device`` here instead (as :func:`profile` does;
    the timeline is then ``measured``, and ``target`` is not used).
    """
    import pickle

    from advisor.core.io import atomic_write_bytes, check_writable
    from advisor.engines.timeline import measure_timeline, simulate_timeline
    from advisor.report.timeline import write_timeline

    whole_number("max_samples", max_samples, 2)
    for path in (chart, memory_snapshot):
        if path is not None:
            check_writable(path)
    if measure:
        from profilers.trial import resolve_device

        source = resolve_model(model)
        check_measurable(source, resolve_device(device))
        result, snapshot = measure_timeline(
            source, the_plan(plan), batch_size, seq_len, device=device,
            snapshot=memory_snapshot is not None, progress=progress,
        )  # fmt: skip
    else:
        result, snapshot = simulate_timeline(
            model, the_plan(plan), batch_size, seq_len, target=target, max_samples=max_samples,
            snapshot=memory_snapshot is not None, progress=progress,
        )  # fmt: skip
    if result.timeline is None:
        return result
    if chart is not None:
        budget = usable_bytes(target_gpu(gpu).memory_bytes, margin) if gpu is not None else None
        how = f"measured on {result.device}" if measure else f"simulated, {target}"
        title = f"{result.model}: {result.plan}, batch {batch_size} × {seq_len} ({how})"
        write_timeline(result.timeline, chart, title, budget)
    if memory_snapshot is not None and snapshot is not None:
        atomic_write_bytes(memory_snapshot, pickle.dumps(snapshot))
    return result
# -- cluster shapes: how many GPUs, which strategy ---------------------------------------------


def advise_cluster(
    model: str | nn.Module | ModelSource,
    *,
    plans: str | Sequence[Plan | str],
    gpu: str | GpuSpec | None = None,
    gpus: str | Sequence[int] | None = None,
    max_gpus: int | None = None,
    gpus_per_node: int = DEFAULT_GPUS_PER_NODE,
    workload: Workload | None = None,
    gpu_mem: str | int | None = None,
    price_usd_per_hour: float | None = None,
    progress: Callable[[SweepProgress], None] | None = None,
) -> ClusterRecommendation:
    """Which cluster shapes fit ``plans`` of ``model`` on ``gpu``: every plan at every count of
    ``gpus`` ("1,2,4,8") or of 1, 2, 4, … ``max_gpus``, one rank simulated at each, with the
    step time (compute + communication over the GPU's link) and the cost of N GPUs for the
    workload. ``.smallest()`` gives each plan's fewest fitting GPUs; the report layer renders it
    (:func:`advisor.report.cluster_text`)."""
    workload = workload or Workload()
    spec = target_gpu(gpu, gpu_mem, price_usd_per_hour)
    whole_number("gpus_per_node", gpus_per_node, 1)
    counts = gpu_counts(gpus, max_gpus)
    plan_list = explicit_plans(plans)
    source = resolve_model(model)
    source.check_sizes(workload.micro_batch, workload.seq_len)
    backends = shape_backends(source, spec, workload, lambda t: gpu_need(t, spec))
    return recommend_shapes(
        source.name, plan_list, spec, counts, workload, backends, gpus_per_node=gpus_per_node, progress=progress
    )
