"""Where the recommender's numbers come from: the trial runner (measured on the target, or
simulated on fake tensors, or estimated in closed form for what cannot be replayed), the need
on the target (:func:`advisor.engines.overheads.gpu_need`) and the step time on the target
(:func:`step_time_on`). :class:`Backends` is the seam: tests pass plain functions instead.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advisor.catalog.gpus import GpuSpec, get_gpu
from advisor.core.errors import InvalidInputError, UnknownGpuError
from advisor.engines.estimate import estimate_peak
from advisor.engines.flops import estimate_for_gpu
from advisor.engines.measure import measure_plan
from advisor.engines.need import PredictedNeed
from advisor.engines.overheads import gpu_need
from advisor.engines.simulate import simulate
from advisor.plans import Cut, Plan
from advisor.plans.cuts import CUTS
from advisor.plans.cuts.batching import BatchingCut, resolve_batching
from advisor.recommend.types import Mode
from advisor.recommend.workload import Workload
from profilers.records import Provenance, SimulationRecord, TrialResult, TrialStatus

log = logging.getLogger(__name__)

__all__ = [
    "Backends",
    "NeedFn",
    "SpeedFn",
    "TrialFn",
    "cut_settings",
    "default_backends",
    "estimated_trial",
    "scaled_budget",
    "speed_sibling",
    "step_time_on",
    "target_present",
]

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


def cut_settings(plan: Plan) -> dict[str, dict[str, Any]]:
    """Every cut's parameters, defaults included (JSON-safe), keyed by cut name."""
    out: dict[str, dict[str, Any]] = {}
    for cut in plan.cuts:
        values: dict[str, Any] = {}
        if dataclasses.is_dataclass(cut):
            for f in dataclasses.fields(cut):
                if not f.compare:  # data a cut is given for a trial (a batching cut's lengths)
                    continue
                value = getattr(cut, f.name)
                values[f.name] = list(value) if isinstance(value, tuple) else value
        else:
            values = dict(cut.params())
        out[cut.name] = values
    return out


def target_present(gpu: GpuSpec) -> bool:
    """Whether this machine's first CUDA GPU is the catalog entry ``gpu``."""
    import torch

    if gpu.key.startswith("custom-") or not torch.cuda.is_available():
        return False
    try:
        return get_gpu(torch.cuda.get_device_name(0)).key == gpu.key
    except (UnknownGpuError, InvalidInputError):
        return False


def step_time_on(trial: TrialResult, gpu: GpuSpec) -> tuple[float, Provenance] | None:
    """Step time on ``gpu``: measured when the trial ran there (CUDA timings only), else
    :func:`advisor.engines.flops.estimate_for_gpu` from the step's counted FLOPs and bytes. A
    CPU timing is never taken for GPU speed; ``None`` when neither is known."""
    if trial.timing is not None and trial.cuda is not None:
        return trial.timing.median_step_time_s, Provenance.MEASURED
    if trial.simulation is None or trial.simulation.step_cost is None:
        return None
    estimate = estimate_for_gpu(dataclasses.replace(trial, status=TrialStatus.OK), gpu)
    if estimate is None or estimate.step_time_s <= 0:
        return None
    return estimate.step_time_s, Provenance.ESTIMATED


def speed_sibling(plan: Plan) -> Plan | None:
    """The nearest plan simulation can run, for the FLOPs of one it cannot: each cut's
    ``speed_stand_in`` (``qlora`` → ``lora`` with the same r, alpha, dropout and targets);
    other cuts that cannot be simulated (a cut's ``simulation_unsupported``) dropped (same
    arithmetic). ``None`` when the plan has no cut simulation cannot replay."""
    if not any(cut.simulation_unsupported for cut in plan.cuts):
        return None
    cuts = []
    for cut in plan.cuts:
        if cut.speed_stand_in is not None:
            cls = CUTS[cut.speed_stand_in]
            names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
            kwargs = {k: v for k, v in dataclasses.asdict(cut).items() if k in names}  # type: ignore[call-overload]
            cuts.append(cls(**kwargs))
        elif not cut.simulation_unsupported:
            cuts.append(cut)
    return Plan.of(cuts)


def estimated_trial(source: Any, plan: Plan, batch: int, seq: int, why: str) -> TrialResult:
    """A trial whose tensor figures come from :func:`advisor.engines.estimate.estimate_peak`
    (closed-form accounting, provenance ``estimated``), for plans simulation cannot replay."""
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


def default_backends(
    source: Any, gpu: GpuSpec, workload: Workload, mode: Mode, *, moe_imbalance: float = 1.0
) -> Backends:
    """Trials measured on the target (``Mode.MEASURE``) or simulated, cached by (plan, size);
    mixture-of-experts layers simulated under the routing ``moe_imbalance`` gives.

    A plan simulation cannot replay (a cut's ``simulation_unsupported``) gets its tensor figures
    from the closed-form estimate and its FLOPs from :func:`speed_sibling`'s simulation, both
    ``estimated``; the reason is kept in ``trial.extra["estimate"]``.
    """
    cache: dict[tuple[str, int], TrialResult] = {}

    def simulated(plan: Plan, batch: int, first: bool) -> TrialResult:
        result = simulate(
            source, plan, batch, workload.seq_len, target="cuda", count_cost=first,
            moe_imbalance=moe_imbalance,
        )  # fmt: skip
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
            if any(isinstance(c, BatchingCut) for c in plan.cuts):
                cache[key] = batching_trial(plan, batch, first)
            elif mode is Mode.MEASURE:
                cache[key] = _measure(source, plan, batch, workload.seq_len, timed=first)
            else:
                cache[key] = simulated(plan, batch, first)
        return cache[key]

    def batching_trial(plan: Plan, batch: int, first: bool) -> TrialResult:
        # the policy forms the epoch's batches from the real lengths and the trial runs the
        # worst; a token budget (pack, token-budget) grows with the micro-batch searched
        plan = Plan(tuple(scaled_budget(c, batch, workload.micro_batch) for c in plan.cuts))
        resolved, rows, tokens = resolve_batching(plan, workload.lengths, batch, workload.seq_len)
        try:  # a packed row longer than the model's positions: this plan, not the whole advice
            source.check_sizes(rows, tokens)
        except InvalidInputError as exc:
            why = str(exc).splitlines()[0]
            return TrialResult(source.name, plan.name, plan.cut_names, "none", rows, tokens, TrialStatus.UNSUPPORTED, why)
        if mode is Mode.MEASURE:
            return _measure(source, resolved, rows, tokens, timed=first)
        return simulate(
            source, resolved, rows, tokens, target="cuda", count_cost=first, moe_imbalance=moe_imbalance
        )

    return Backends(
        trial=trial,
        need=lambda t: gpu_need(t, gpu),
        step_time=lambda t, plan: step_time_on(t, gpu),
        settings=cut_settings,
    )


def scaled_budget(cut: Cut, batch: int, micro_batch: int) -> Cut:
    """``cut`` with its token budget (``pack``'s ``max_tokens``, ``token-budget``'s ``tokens``)
    scaled by ``batch / micro_batch``: the micro-batch search of a budgeted plan grows its
    budget."""
    if batch == micro_batch:
        return cut
    for name in ("max_tokens", "tokens"):
        if isinstance(cut, BatchingCut) and isinstance(getattr(cut, name, None), int):
            return dataclasses.replace(cut, **{name: getattr(cut, name) * batch // micro_batch})  # type: ignore[type-var]
    return cut


def _measure(source: Any, plan: Plan, batch: int, seq: int, timed: bool) -> TrialResult:
    return measure_plan(plan, source, batch, seq, device="cuda", steps=3 if timed else 0, warmup_steps=1)
