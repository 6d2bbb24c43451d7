"""The recommender: for one target GPU and workload, which plans fit, how fast, at what cost.

For every plan it runs one trial of the real training step (through :class:`Backends`:
measured on the target when the target is this machine's GPU, else simulated on fake
tensors), predicts the memory the step needs on the target, decides whether it fits with the
workload's safety margin, estimates tokens/s, time and cost for the workload, and ranks: what
fits first, then by time (or cost). Plans that cannot run on the target at all (bf16 on a T4)
are excluded with the reason. Rendering is the report layer's (:mod:`advisor.report`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from advisor.catalog.gpus import GpuSpec
from advisor.core.units import format_bytes
from advisor.engines.progress import PlanEvents, ProgressCallback
from advisor.plans import Plan
from advisor.plans.cuts import CUTS
from advisor.recommend.backends import Backends
from advisor.recommend.batching import batching_clause, budget_notes, real_tokens_per_step
from advisor.recommend.ranking import (
    NOISY_SPREAD,
    estimate_max_batch,
    is_noisy,
    largest_fitting_batch,
    mark_pareto,
    rank_verdicts,
    target_exclusion,
    why_line,
)
from advisor.recommend.types import (
    FAILED,
    NOT_EVALUATED,
    TARGET,
    Mode,
    PathCost,
    PlanVerdict,
    Recommendation,
    ScratchComparison,
)
from advisor.recommend.workload import SCRATCH_TOKENS_PER_PARAM, RankBy, Workload
from profilers.records import Provenance, SimulationRecord, TrialResult, TrialStatus

__all__ = ["recommend"]


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
    progress: ProgressCallback | None = None,
) -> Recommendation:
    """Evaluate ``plans`` for ``model`` on ``gpu`` under ``workload`` and rank them.

    The baseline (full fine-tuning, fp32, AdamW) is always evaluated: the why-lines compare
    against it. The largest fitting micro-batch is found by further trials (``b`` fits,
    ``b + 1`` does not) for the ``check_top`` best plans, and estimated from the one trial for
    the others.
    """
    say = progress or (lambda _event: None)
    started = time.perf_counter()
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
        events = PlanEvents(say, i, len(plans), plan.name, started, phase="trials")
        events("start", f"at micro-batch {workload.micro_batch}")
        trial = backends.trial(plan, workload.micro_batch)
        events("done", trial.status.value, trial)
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
        fits = need.fits(gpu.memory_bytes, workload.margin)  # the one rule: need ≤ budget
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
        if _ok(v.trial):
            why += batching_clause(v.trial, workload)
        verdicts.append(dataclasses.replace(v, why=why))
    ranked = rank_verdicts(mark_pareto(verdicts), rank_by)

    # the largest micro-batch that fits: estimated from one trial for every plan, found by
    # further trials (bracket and bisect) for the best ``check_top``
    by_name = {p.name: (p, known) for p, _, known in evaluated}

    def searchable(v: PlanVerdict) -> bool:
        # a cut that splits the batch (accumulation) leaves no one micro-batch size to search
        return v.need is not None and not any(CUTS[c].splits_batch for c in v.cuts if c in CUTS)

    searches = sum(1 for v in ranked if searchable(v) and v.rank <= check_top)
    searched = 0
    final: list[PlanVerdict] = []
    for v in ranked:
        plan, known = by_name[v.plan]
        if not searchable(v):
            final.append(v)
            continue
        assert v.need is not None
        if v.rank <= check_top:
            searched += 1
            events = PlanEvents(say, searched, searches, v.plan, started, phase="largest micro-batch")
            events("start", "searching")

            def need_at(b: int, plan: Plan = plan, events: PlanEvents = events) -> int | None:
                events.stage(f"trial at micro-batch {b}")
                t = backends.trial(plan, b)
                return backends.need(t).total_bytes if _ok(t) else None

            first = estimate_max_batch(v.need, workload.micro_batch, budget, trial=v.trial)
            size, checked = largest_fitting_batch(need_at, budget, known, guess=first or None)
            events("done", f"micro-batch {size} fits")
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
        notes=_notes(mode, final) + tuple(budget_notes(final, workload)),
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
    tokens_per_step = real_tokens_per_step(trial, workload) or tokens_per_step
    tps = tokens_per_step / step_s
    time_s = workload.total_tokens / tps
    measured = prov is Provenance.MEASURED and trial.timing is not None
    return dataclasses.replace(
        v,
        timing_spread=trial.timing.spread if measured and trial.timing is not None else None,
        noisy=measured and is_noisy(trial.timing),
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


def _simulation(v: PlanVerdict) -> SimulationRecord:
    """The verdict's simulation record (an empty one when it has none)."""
    sim = v.trial.simulation if v.trial is not None else None
    return sim or SimulationRecord()


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
            f"Not replayable on fake tensors (a cut's simulation_unsupported): "
            f"{names}. Their tensor memory is the closed-form estimate (advisor.engines.estimate) and their "
            "FLOPs those of the nearest plan simulation can run (each cut's speed stand-in, or the "
            "cut dropped); marked * in the table."
        )
    bounded = [v for v in verdicts if _simulation(v).upper_bound]
    if bounded:
        names = ", ".join(v.plan for v in bounded)
        notes.append(
            f"Upper bounds, not exact: {names}. The replay runs these plans' eager step "
            "(torch.compile fuses and reorders ops and usually needs less); marked ≤ in the table."
        )
    offloaded = [v for v in verdicts if _simulation(v).host_peak_bytes]
    if offloaded:
        notes.append(
            "Activation offload: ranked by device memory; the saved activations are held in pinned "
            "host memory (saved weights stay on the GPU): "
            + ", ".join(f"{v.plan} {format_bytes(_simulation(v).host_peak_bytes, 2)}" for v in offloaded)
            + " (simulated)."
        )
    by_loading = [v for v in verdicts if (m := _simulation(v).moments) is not None and m.deciding == "loading"]
    if by_loading:
        notes.append(
            "Loading decides the peak (tensor bytes, before overheads) of: "
            + ", ".join(
                f"{v.plan} {format_bytes(m.peak_bytes, 2)} ({m.loading_path})"
                for v in by_loading
                if (m := _simulation(v).moments) is not None
            )
            + " (simulated); pass dtype= to from_pretrained to load in the training dtype."
        )
    by_saving = [v for v in verdicts if (m := _simulation(v).moments) is not None and m.deciding == "saving"]
    if by_saving:
        notes.append(
            "Saving a checkpoint decides the peak (tensor bytes, before overheads) of: "
            + ", ".join(
                f"{v.plan} {format_bytes(m.peak_bytes, 2)} ({m.saving_path})"
                for v in by_saving
                if (m := _simulation(v).moments) is not None
            )
            + " (simulated): transformers writes the experts in the checkpoint's per-expert layout, "
            "a new copy on the GPU; save_pretrained(..., save_original_format=False) keeps them fused."
        )
    noisy = [v for v in verdicts if v.noisy]
    if noisy:
        names = ", ".join(f"{v.plan} ({v.timing_spread:.0%})" for v in noisy if v.timing_spread is not None)
        notes.append(
            f"Noisy timings: the timed steps of {names} varied by more than {NOISY_SPREAD:.0%} of their "
            "median, so their speed is not used to rank them: they come after the plans with steady "
            "timings, smallest need first. Measure again on a quieter GPU, or with more steps."
        )
    if any(v.max_micro_batch is not None and not v.max_micro_batch_checked for v in verdicts):
        notes.append(
            "Largest micro-batch: found by trials for the top plans (b fits, b + 1 does not); for "
            "the others it is estimated from one trial, activations growing with the micro-batch."
        )
    return tuple(notes)
