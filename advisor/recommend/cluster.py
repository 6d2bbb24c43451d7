"""Recommending across cluster shapes: which (number of GPUs, strategy, plan) fits, how fast, at
what cost — "the fewest H100s that full-fine-tune llama-3.1-70b".

Every plan is tried at every GPU count asked for: a plan with a distributed strategy (``zero``,
``fsdp2``, …) at counts of 2 or more, a single-GPU plan at 1. Each trial is one rank
(:func:`advisor.engines.simulate.simulate` with ``gpus=N``); its need is one rank's and fits
by the one fit rule. The step time is the rank's compute (from its counted FLOPs on the GPU)
plus its communication (:mod:`advisor.engines.comm`: the volume the rank sends over the
GPU's link, InfiniBand across nodes), not overlapped. The workload's data is split over the N
ranks (each optimizer step covers N × the micro-batch × accumulation), and the run costs N ×
the GPU's hourly price × its time.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from advisor.catalog.gpus import GpuSpec
from advisor.core.errors import InvalidInputError
from advisor.engines.comm import link_for
from advisor.engines.need import PredictedNeed
from advisor.engines.progress import PlanEvents, ProgressCallback
from advisor.engines.simulate import simulate
from advisor.engines.zero import check_cluster, local_plan, plan_params, zero_cut_of, zero_rank_result
from advisor.plans import Plan
from advisor.recommend.backends import cut_settings, step_time_on
from advisor.recommend.types import PlanVerdict
from advisor.recommend.workload import Workload
from profilers.records import Provenance, TrialResult, TrialStatus

__all__ = [
    "DEFAULT_GPUS_PER_NODE",
    "ClusterRecommendation",
    "ShapeBackends",
    "gpu_counts",
    "nodes_for",
    "recommend_shapes",
    "shape_backends",
]

DEFAULT_GPUS_PER_NODE = 8  # an HGX/DGX node

ShapeTrialFn = Callable[[Plan, int, int], TrialResult]  # (plan, gpus, nodes) → one rank's trial


def gpu_counts(gpus: str | Sequence[int] | None = None, max_gpus: int | None = None) -> tuple[int, ...]:
    """The GPU counts to try: ``gpus`` as given ("1,2,4,8" or a list), or 1, 2, 4, … up to
    ``max_gpus`` (and ``max_gpus`` itself)."""
    if gpus is not None and max_gpus is not None:
        raise InvalidInputError("give the GPU counts or a maximum, not both", "pass gpus=[1, 2, 4, 8] or max_gpus=64")
    if gpus is not None:
        items = [x.strip() for x in gpus.split(",")] if isinstance(gpus, str) else list(gpus)
        counts: list[int] = []
        for item in items:
            try:
                n = int(item)
            except (TypeError, ValueError):
                raise InvalidInputError(f"GPU count {item!r} is not a whole number", "pass e.g. 1,2,4,8") from None
            if n < 1:
                raise InvalidInputError(f"the number of GPUs must be ≥ 1, got {n}", "pass e.g. 1,2,4,8")
            counts.append(n)
        if not counts:
            raise InvalidInputError("no GPU counts given", "pass e.g. 1,2,4,8")
        return tuple(sorted(set(counts)))
    if max_gpus is None:
        return (1,)
    if isinstance(max_gpus, bool) or not isinstance(max_gpus, int) or max_gpus < 1:
        raise InvalidInputError(f"the maximum number of GPUs must be ≥ 1, got {max_gpus}", "pass e.g. max_gpus=64")
    out = {1 << k for k in range(max_gpus.bit_length()) if 1 << k <= max_gpus}
    return tuple(sorted(out | {max_gpus}))


def nodes_for(gpus: int, gpus_per_node: int = DEFAULT_GPUS_PER_NODE) -> int:
    """Nodes holding ``gpus`` GPUs, ``gpus_per_node`` to a node (the last may be partly used)."""
    return max(1, math.ceil(gpus / gpus_per_node))


@dataclass(frozen=True)
class ShapeBackends:
    """Where the numbers come from (tests pass plain functions)."""

    trial: ShapeTrialFn
    need: Callable[[TrialResult], PredictedNeed]
    compute_time: Callable[[TrialResult], tuple[float, Provenance] | None]  # one rank's step
    settings: Callable[[Plan], dict[str, dict[str, Any]]] = cut_settings


def shape_backends(
    source: Any, gpu: GpuSpec, workload: Workload, need: Callable[[TrialResult], PredictedNeed]
) -> ShapeBackends:
    """Simulated ranks; a ``zero`` plan's local replay and parameter list made once per plan
    and laid out for every N (only the layout depends on N)."""
    local_cache: dict[str, TrialResult] = {}
    params_cache: dict[str, Any] = {}

    def trial(plan: Plan, gpus: int, nodes: int) -> TrialResult:
        if zero_cut_of(plan) is not None:
            local = local_plan(plan)
            if local.name not in local_cache:
                local_cache[local.name] = simulate(source, local, workload.micro_batch, workload.seq_len, target="cuda")
            if plan.name not in params_cache:
                params_cache[plan.name] = plan_params(plan, source, workload.micro_batch, workload.seq_len)
            return zero_rank_result(
                local_cache[local.name], plan, source, gpus=gpus, nodes=nodes, params=params_cache[plan.name],
                target="cuda",
            )
        return simulate(source, plan, workload.micro_batch, workload.seq_len, target="cuda", gpus=gpus, nodes=nodes)

    return ShapeBackends(trial=trial, need=need, compute_time=lambda t: step_time_on(t, gpu))


@dataclass(frozen=True)
class ClusterRecommendation:
    """Every (plan, N) tried, and for each plan the fewest GPUs that fit."""

    model: str
    gpu: GpuSpec
    workload: Workload
    counts: tuple[int, ...]
    gpus_per_node: int
    shapes: tuple[PlanVerdict, ...]  # per (plan, N), in plan then N order
    notes: tuple[str, ...] = field(default_factory=tuple)

    def smallest(self) -> dict[str, PlanVerdict | None]:
        """Plan → its verdict at the fewest GPUs that fit (``None``: no count tried fits)."""
        out: dict[str, PlanVerdict | None] = {}
        for v in self.shapes:
            out.setdefault(v.plan, None)
            if v.fits and out[v.plan] is None:
                out[v.plan] = v
        return out

    def cheapest(self) -> PlanVerdict | None:
        """The fitting shape that costs least for the workload."""
        fitting = [v for v in self.shapes if v.fits and v.cost_usd is not None]
        return min(fitting, key=lambda v: (v.cost_usd, v.gpus)) if fitting else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "vram-advisor/cluster-shapes",
            "model": self.model,
            "gpu": self.gpu.to_dict(),
            "workload": self.workload.to_dict(),
            "counts": list(self.counts),
            "gpus_per_node": self.gpus_per_node,
            "shapes": [v.to_dict() for v in self.shapes],
            "smallest": {k: (v.gpus if v else None) for k, v in self.smallest().items()},
            "notes": list(self.notes),
        }


def _tried(plan: Plan, n: int) -> bool:
    distributed = any(c.distributed for c in plan.cuts)
    return n >= 2 if distributed else n == 1


def recommend_shapes(
    model: str,
    plans: Sequence[Plan],
    gpu: GpuSpec,
    counts: Sequence[int],
    workload: Workload,
    backends: ShapeBackends,
    *,
    gpus_per_node: int = DEFAULT_GPUS_PER_NODE,
    progress: ProgressCallback | None = None,
) -> ClusterRecommendation:
    """Try each plan at each GPU count it can run at (module doc) and judge every shape."""
    say = progress or (lambda _event: None)
    started = time.perf_counter()
    budget = workload.usable_bytes(gpu.memory_bytes)
    todo = [(p, n) for p in plans for n in counts if _tried(p, n)]
    notes: list[str] = []
    skipped = [p.name for p in plans if not any(_tried(p, n) for n in counts)]
    if skipped:
        notes.append(f"not tried at these GPU counts: {', '.join(skipped)}")
    shapes: list[PlanVerdict] = []
    for i, (plan, n) in enumerate(todo, 1):
        nodes = nodes_for(n, gpus_per_node)
        settings = backends.settings(plan)
        base = PlanVerdict(plan.name, plan.cut_names, settings, gpu.memory_bytes, budget, gpus=n, nodes=nodes)
        if n % nodes:
            shapes.append(dataclasses.replace(
                base, excluded_reason=f"{n} GPUs do not split evenly over {nodes} nodes of {gpus_per_node}",
            ))  # fmt: skip
            continue
        check_cluster(plan, n, nodes)
        events = PlanEvents(say, i, len(todo), f"{plan.name} × {n}", started, phase="trials")
        events("start", f"{n} GPUs")
        trial = backends.trial(plan, n, nodes)
        events("done", trial.status.value, trial)
        if trial.status is not TrialStatus.OK or trial.tensor_peak is None:
            shapes.append(dataclasses.replace(base, trial=trial, excluded_reason=trial.reason or trial.status.value))
            continue
        need = backends.need(trial)
        fits = need.fits(gpu.memory_bytes, workload.margin)
        verdict = dataclasses.replace(base, trial=trial, need=need, fits=fits)
        comm_bytes = trial.distributed.comm_bytes_per_step if trial.distributed is not None else 0
        comm_s = comm_bytes / link_for(gpu, nodes).bytes_per_s if comm_bytes else 0.0
        compute = backends.compute_time(trial)
        verdict = dataclasses.replace(
            verdict, comm_bytes_per_step=comm_bytes if n > 1 else None, comm_time_s=comm_s if n > 1 else None
        )
        if compute is not None:
            step = compute[0] + comm_s
            tokens_per_step = workload.tokens_per_micro_batch * trial.accumulation_steps * n
            train_s = workload.total_tokens / tokens_per_step * step
            verdict = dataclasses.replace(
                verdict,
                step_time_s=step,
                tokens_per_s=tokens_per_step / step if step > 0 else None,
                throughput_provenance=Provenance.ESTIMATED if n > 1 else compute[1],
                train_time_s=train_s,
                cost_usd=train_s / 3600 * gpu.price_usd_per_hour * n,
            )
        shapes.append(verdict)
    return ClusterRecommendation(model, gpu, workload, tuple(counts), gpus_per_node, tuple(shapes), tuple(notes))
