"""Simulation: the real training step replayed on fake tensors, for any model on any target.

One module per idea:

* :mod:`~profilers.simulate.world` — the fake mode, the fake device, fake parameters and batch;
* :mod:`~profilers.simulate.shadows` — known values beside fake tensors, for values read back;
* :mod:`~profilers.simulate.target` — running as on the CUDA target (optimizer, attention);
* :mod:`~profilers.simulate.phases` — the memory tracker with per-phase peaks;
* :mod:`~profilers.simulate.cost` — FLOPs and bytes moved of the step;
* :mod:`~profilers.simulate.allocator` — the CUDA caching allocator, modelled and replayed;
* :mod:`~profilers.simulate.quant` — bitsandbytes' 4-/8-bit linears as stand-ins (QLoRA);
* :mod:`~profilers.simulate.optim8bit` — bitsandbytes' 8-bit AdamW as a stand-in;
* :mod:`~profilers.simulate.replay` — :func:`simulate_trial`, which puts them together.

What a simulation adds to a :class:`~profilers.records.TrialResult` is its
:class:`~profilers.records.SimulationRecord` (``result.simulation``).
"""

from __future__ import annotations

from profilers.records import AllocatorPeak, SimulationRecord, StepCost
from profilers.simulate.allocator import CachingAllocatorModel, replay_caching_allocator
from profilers.simulate.cost import StepCostCounter
from profilers.simulate.phases import PhaseTracker
from profilers.simulate.replay import TARGETS, light_warmup, simulate_trial
from profilers.simulate.shadows import ShadowValues
from profilers.simulate.target import cuda_attention_choice, use_cuda_optimizer_defaults
from profilers.simulate.world import (
    FAKE_DEVICE_ENV,
    FakeBuild,
    FakeWorld,
    fake_batch,
    fake_cuda_works,
    fake_device_type,
    fakeify_module,
    new_fake_mode,
)

__all__ = [
    "FAKE_DEVICE_ENV",
    "TARGETS",
    "AllocatorPeak",
    "CachingAllocatorModel",
    "FakeBuild",
    "FakeWorld",
    "PhaseTracker",
    "ShadowValues",
    "SimulationRecord",
    "StepCost",
    "StepCostCounter",
    "cuda_attention_choice",
    "fake_batch",
    "fake_cuda_works",
    "fake_device_type",
    "fakeify_module",
    "light_warmup",
    "new_fake_mode",
    "replay_caching_allocator",
    "simulate_trial",
    "use_cuda_optimizer_defaults",
]
