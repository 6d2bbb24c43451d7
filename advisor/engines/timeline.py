"""Memory over time of a simulated step: the timeline and a memory_viz snapshot.

The step is replayed in full (every layer: a timeline of an extrapolated replay would show
only the probes' few blocks) with the same builder as :func:`advisor.engines.simulate.simulate`,
and the tracker's log is read through the replay's ``observe`` hook while it is still open:
:meth:`~profilers.tracker.TensorMemoryTracker.timeline` for the result's ``timeline`` record and,
when asked, :meth:`~profilers.tracker.TensorMemoryTracker.memory_viz_snapshot` for PyTorch's
viewer.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from torch import nn

from advisor.engines.overheads import allocator_model
from advisor.engines.simulate import fake_builder
from advisor.models import ModelSource, resolve_model
from advisor.plans import Plan, parse_plan, program_builder, trial_spec
from profilers.records import TrialResult
from profilers.simulate import simulate_trial
from profilers.simulate.moe import MoeRouting
from profilers.simulate.phases import PhaseTracker
from profilers.trial import run_trial

__all__ = ["measure_timeline", "simulate_timeline"]

log = logging.getLogger(__name__)


def simulate_timeline(
    model: str | nn.Module | ModelSource,
    plan: Plan | str | None = None,
    batch_size: int = 4,
    seq_len: int = 128,
    *,
    target: str = "cuda",
    max_samples: int = 2000,
    snapshot: bool = False,
    progress: Any = None,
) -> tuple[TrialResult, dict[str, Any] | None]:
    """The plan's step replayed on fake tensors with its :class:`MemoryTimeline` on the result
    (``result.timeline``), and the ``torch.cuda.memory._snapshot()``-shaped dict when
    ``snapshot`` (else None). A failing plan comes back with its status and no timeline."""
    source = resolve_model(model)
    the_plan = parse_plan(plan) if isinstance(plan, str) else (plan or parse_plan("baseline"))
    spec = trial_spec(the_plan, source, batch_size, seq_len, device="meta", steps=0, warmup_steps=1)
    seen: dict[str, Any] = {}

    def observe(tracker: PhaseTracker) -> None:
        seen["timeline"] = tracker.timeline(max_samples=max_samples)
        if snapshot:
            seen["snapshot"] = tracker.memory_viz_snapshot()

    result = simulate_trial(
        spec,
        fake_builder(the_plan, source, batch_size, seq_len, target),
        progress,
        target=target,
        allocator=allocator_model(),
        count_cost=False,
        observe=observe,
        moe_routing=MoeRouting(1.0),
    )
    if "timeline" in seen:
        result = dataclasses.replace(result, timeline=seen["timeline"])
    return result, seen.get("snapshot")


def measure_timeline(
    model: str | nn.Module | ModelSource,
    plan: Plan | str | None = None,
    batch_size: int = 4,
    seq_len: int = 128,
    *,
    device: str = "auto",
    snapshot: bool = False,
    progress: Any = None,
) -> tuple[TrialResult, dict[str, Any] | None]:
    """As :func:`simulate_timeline`, for a step measured on this machine (one warm-up step,
    one timed step, then the tracked step whose memory over time is kept; provenance
    ``measured``)."""
    source = resolve_model(model)
    the_plan = parse_plan(plan) if isinstance(plan, str) else (plan or parse_plan("baseline"))
    spec = trial_spec(the_plan, source, batch_size, seq_len, device=device, steps=1, warmup_steps=1)
    spec = dataclasses.replace(spec, record_timeline=True, memory_snapshot=snapshot)
    result = run_trial(spec, program_builder(the_plan, source, batch_size, seq_len), progress)
    snap = result.extra.pop("memory_viz_snapshot", None) if snapshot else None
    return result, snap
