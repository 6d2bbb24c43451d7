"""One rank of a measured DeepSpeed ZeRO trial (the ``zero`` branch of the rank worker).

:mod:`advisor.engines.rank_worker` runs this on every rank of a ``torchrun`` job for a plan with
a ``zero`` cut: the plan without the cut (:func:`advisor.engines.zero.local_plan`: bf16 as
DeepSpeed's bf16 mode, the module cast) is built on the rank's device, then DeepSpeed wraps its
model and optimizer and one step is measured with the exact tensor tracker
(:func:`profilers.zero_run.run_zero_step`). The result carries the step's tensor peak, the model
states DeepSpeed keeps after the step (``extra``), and a :class:`DistributedRecord` beside the
simulated layout of the same plan (``layout``), so a report shows both.
"""

from __future__ import annotations

import dataclasses
import time

import torch
import torch.distributed as dist

from advisor.engines.zero import local_plan, zero_cut_of, zero_layout_for
from advisor.models import ModelSource
from advisor.plans import Plan, program_builder
from profilers.records import DistributedRecord, Provenance, TrialResult, TrialStatus
from profilers.trial import classify_failure, count_parameters
from profilers.zero_run import run_zero_step

__all__ = ["measure_zero_rank"]


def measure_zero_rank(
    plan: Plan, source: ModelSource, batch_size: int, seq_len: int, device: str, *, warmup_steps: int = 1
) -> TrialResult:
    """This rank's measured ZeRO step of ``plan`` (module doc); never raises for a failing run."""
    cut = zero_cut_of(plan)
    assert cut is not None, f"{plan.name} has no zero cut"
    started = time.perf_counter()
    base = TrialResult(model=source.name, plan=plan.name, cuts=plan.cut_names, device=device,
                       batch_size=batch_size, seq_len=seq_len, status=TrialStatus.OK)  # fmt: skip
    if cut.offloads:
        return dataclasses.replace(base, status=TrialStatus.UNSUPPORTED,
                                   reason=f"{cut.label()}: measured ZeRO runs here are without offload")  # fmt: skip
    world = dist.get_world_size()
    try:
        prog = program_builder(local_plan(plan), source, batch_size, seq_len)(torch.device(device))
        params = count_parameters(prog.model, Provenance.MEASURED)
        backend = "nccl" if device.startswith("cuda") else "gloo"
        run = run_zero_step(prog, cut.stage, torch.device(device), warmup_steps=warmup_steps, backend=backend)
        del prog
    except Exception as exc:  # a sweep never dies for one plan
        status, reason = classify_failure(exc)
        return dataclasses.replace(base, status=status, reason=reason, wall_time_s=time.perf_counter() - started)
    layout, _ = zero_layout_for(plan, source, batch_size, seq_len, world)
    record = DistributedRecord(
        world_size=world,
        rank=dist.get_rank(),
        strategy=cut.strategy,
        communication_buffer_bytes=run.peak.breakdown.communication_buffer_bytes,
        layout={
            "measured model states after the step": run.model_state_bytes,
            **{f"measured {k}": v for k, v in run.roles.items()},
            "simulated model states": layout.model_state_bytes,
            "simulated padding": layout.padding_bytes,
            "simulated communication buffers": layout.communication_buffer_bytes,
        },
        settings={"stage": cut.stage, "deepspeed": run.deepspeed_version, **dict(layout.buckets)},
        note=f"a real DeepSpeed {run.deepspeed_version} ZeRO-{cut.stage} step on {world} ranks ({backend}), "
        "exact tensor tracker; DeepSpeed's own buffers count as communication buffers",
        provenance=Provenance.MEASURED,
        backend=backend,
    )
    return dataclasses.replace(
        base, params=params, tensor_peak=run.peak, distributed=record, extra=run.to_extra(),
        wall_time_s=time.perf_counter() - started,
    )  # fmt: skip
