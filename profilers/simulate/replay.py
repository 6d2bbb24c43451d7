"""The simulated trial: the real training step replayed on fake tensors, for any model on any
target.

:func:`simulate_trial` runs the very same :func:`~profilers.trial.train_step` as a measured
trial under ``FakeTensorMode``: every aten op runs its meta kernel, producing outputs with the
right shapes, dtypes and lifetimes but no data and no compute. The
:class:`~profilers.tracker.TensorMemoryTracker` counts those storages exactly as it counts real
ones, so the tensor peak and its breakdown come out exact (the tests check them against
measured CPU peaks).

Alongside the peak, the tracked step records (in ``TrialResult.simulation``, a
:class:`~profilers.records.SimulationRecord`):

* the peak of each phase (forward, backward, optimizer, zero_grad), for growth fits;
* the step's cost: FLOPs by dtype and the bytes each op reads and writes, for an estimated step
  time on a target GPU (:mod:`profilers.simulate.cost`);
* the step's allocations replayed through a model of PyTorch's CUDA caching allocator
  (:mod:`profilers.simulate.allocator`), the simulated ``max_memory_allocated`` and
  ``max_memory_reserved`` on a CUDA target;
* which autocast policy a bf16/fp16 plan followed: targeting CUDA from a fake CPU device, CUDA's
  op lists (:mod:`profilers.simulate.autocast`), so saved activations have CUDA's dtypes;
* with activation offload, the peak of host (pinned) memory holding saved tensors, kept apart
  from the device's (:mod:`profilers.simulate.offload`).

The warm-up creates what a steady-state step finds resident (optimizer state, scaler) with one
optimizer step on zero gradients, without a forward and backward (:func:`light_warmup`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from profilers.records import (
    AllocatorPeak,
    BackendStatus,
    Provenance,
    SimulationRecord,
    StepCost,
    TrialResult,
)
from profilers.simulate.allocator import CachingAllocatorModel, replay_caching_allocator
from profilers.simulate.autocast import autocast_policy_label, cuda_autocast_policy
from profilers.simulate.cost import StepCostCounter
from profilers.simulate.moe import MoeRouting, routed_experts
from profilers.simulate.offload import replaying_offload
from profilers.simulate.phases import PhaseTracker
from profilers.simulate.quant import quantized_target
from profilers.simulate.shadows import ShadowValues
from profilers.simulate.target import cuda_attention_choice, use_cuda_optimizer_defaults
from profilers.simulate.world import FakeBuild, FakeWorld, fake_cuda_works, fake_device_type, new_fake_mode
from profilers.trial import Progress, StepProgram, TrialDraft, TrialSpec, train_step

__all__ = ["TARGETS", "light_warmup", "simulate_trial"]

TARGETS = ("cpu", "cuda")


def _backends(device_type: str) -> tuple[BackendStatus, ...]:
    if device_type == "cuda":
        fake_cuda = BackendStatus("fake-cuda", True, None)
    else:
        works, why = fake_cuda_works()
        fake_cuda = BackendStatus("fake-cuda", False, why if not works else "not used: cpu was asked for")
    return (BackendStatus("fake-tensors", True, None), fake_cuda)


def light_warmup(prog: StepProgram, device: torch.device) -> None:
    """Leave behind what a warm-up step leaves, without its forward and backward.

    One optimizer step on zero gradients creates the optimizer state (and a GradScaler's
    scale); ``zero_grad`` then drops the gradients, as after a real step, or zeroes them in
    place and leaves them resident when the program keeps them (``zero_grad_set_to_none``
    false). That is all a steady-state step finds resident beyond the model and the batch, and
    it halves the cost of a replay.
    """
    params = [p for p in prog.model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    if prog.scale_loss is not None:
        prog.scale_loss(torch.zeros((), device=device))
    if prog.optimizer_step is not None:
        prog.optimizer_step()
    else:
        prog.optimizer.step()
    prog.optimizer.zero_grad(set_to_none=prog.zero_grad_set_to_none)


def simulate_trial(
    spec: TrialSpec,
    build: FakeBuild,
    progress: Progress | None = None,
    *,
    target: str = "cuda",
    fake_device: str = "auto",
    allocator: CachingAllocatorModel | None = None,
    count_cost: bool = True,
    warmup: str = "light",
    observe: Callable[[PhaseTracker], None] | None = None,
    tracker_type: Callable[[], PhaseTracker] | None = None,
    moe_routing: MoeRouting | None = None,
) -> TrialResult:
    """Replay one trial on fake tensors; never raises for a failing configuration.

    ``build(world)`` returns the program with fake parameters on ``world.device``. The
    warm-up is ``"light"`` (:func:`light_warmup`: the optimizer state, without a forward and
    backward) or ``"full"`` (``spec.warmup_steps`` whole steps, at least one). Then one step
    runs under the memory tracker (and, with ``count_cost``, the FLOP/byte counter). ``target``
    ``"cuda"`` makes the optimizer run as it does on CUDA and replays the allocations through
    the CUDA caching-allocator model; ``"cpu"`` replays exactly what this CPU would run.
    No timing: the result's figures are ``simulated``. ``tracker_type`` makes the tracker (a
    :class:`PhaseTracker` by default) and ``observe`` is called with it after the tracked step,
    while its log is still open (the repeat-block probes read their figures there).
    Mixture-of-experts layers dispatch under ``moe_routing`` (balanced by default:
    :mod:`profilers.simulate.moe`), stated in the record.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if warmup not in ("light", "full"):
        raise ValueError(f"warmup must be 'light' or 'full', got {warmup!r}")
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    device_type = fake_device_type(fake_device)
    device = torch.device(device_type)
    draft = TrialDraft(spec, f"fake-{device_type}", _backends(device_type), started)
    tokens_per_step: int | None = None
    foreach: bool | None = None
    phase_peaks: dict[str, int] = {}
    phase_starts: dict[str, int] = {}
    host_peak: int | None = None
    cost: StepCost | None = None
    replay: AllocatorPeak | None = None
    moe_note: str | None = None
    world = FakeWorld(new_fake_mode(), device, ShadowValues())
    prog: StepProgram | None = None
    try:
        say("building the model on fake tensors")
        prog = build(world)
        draft.adopt(prog, Provenance.SIMULATED)
        tokens_per_step = prog.tokens_per_step
        if target == "cuda":  # fake tensors never get torch's CUDA default by themselves
            foreach = use_cuda_optimizer_defaults(prog.optimizer)
        kernels: AbstractContextManager[Any] = nullcontext()
        policy: AbstractContextManager[Any] = nullcontext()
        if target == "cuda" and device_type != "cuda":
            kernels = cuda_attention_choice()
            policy = cuda_autocast_policy()  # autocast casts as CUDA's lists say
        moe = routed_experts(prog.model, moe_routing)
        with world.active(), kernels, policy, replaying_offload(), quantized_target(target), moe as moe_note:
            if warmup == "light":
                say("simulated warm-up (optimizer state)")
                light_warmup(prog, device)
            else:
                for i in range(max(1, spec.warmup_steps)):
                    say(f"simulated warm-up step {i + 1}/{max(1, spec.warmup_steps)}")
                    train_step(prog)
            say("simulating the peak of one step")
            gc.collect()
            tracker = tracker_type() if tracker_type is not None else PhaseTracker("meta")
            tracker.register_training_state(prog.model, prog.optimizer, prog.batch)
            counter = StepCostCounter() if count_cost else None
            try:
                with tracker:
                    if counter is not None:
                        with counter:
                            train_step(prog, tracker)
                    else:
                        train_step(prog, tracker)
                draft.tensor_peak = tracker.result(Provenance.SIMULATED)
                phase_peaks = dict(tracker.phase_peaks)
                phase_starts = dict(tracker.phase_starts)
                host_peak = tracker.host_peak_bytes or None
                if counter is not None:
                    cost = counter.cost()
                if target == "cuda":
                    events, sizes = tracker.event_log()
                    replay = replay_caching_allocator(events, sizes, tracker.resident_count(), allocator)
                if observe is not None:
                    observe(tracker)
            finally:
                tracker.close()
    except Exception as exc:
        draft.fail(exc)
    finally:
        del prog  # the next trial's collection frees what is left of this one
    simulation = SimulationRecord(
        fake_device=device_type,
        target=target,
        tokens_per_step=tokens_per_step,
        optimizer_foreach=foreach,
        phase_peaks=phase_peaks,
        phase_start_bytes=phase_starts,
        step_cost=cost,
        cuda_allocator=replay,
        unknown_value_reads=world.shadows.unknown_reads,
        host_peak_bytes=host_peak,
        autocast_policy=autocast_policy_label(target, device_type) if "autocast" in draft.extra else None,
        moe_routing=moe_note,
    )
    return draft.finish(simulation=simulation)
