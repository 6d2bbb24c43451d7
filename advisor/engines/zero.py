"""One rank of a DeepSpeed ZeRO plan: the local micro-batch replayed, the model states laid out.

:func:`advisor.engines.simulate.simulate` replays the plan without its ``zero`` cut (one rank's
micro-batch: activations, temporaries, the batch), then :func:`zero_rank_result` swaps the
single device's parameters, gradients and optimizer state for DeepSpeed's per-rank layout
(:mod:`profilers.simulate.zero`) and adds the communication buckets. The breakdown keeps the
replay's activations at its peak; the layout's bytes are marked ``estimated`` (a model of
DeepSpeed's code, not a run of it), as is the communication volume.

Also here: the checks every distributed plan shares (:func:`check_cluster`).
"""

from __future__ import annotations

import dataclasses

import torch

from advisor.core.errors import AdvisorError
from advisor.engines.comm import comm_volume
from advisor.models import ModelSource
from advisor.plans import Plan
from advisor.plans.build import build_model, prepare
from advisor.plans.cuts.distributed import check_world
from advisor.plans.cuts.precision import Bf16Autocast, Bf16Weights
from advisor.plans.cuts.zero import ZeroCut, deepspeed_available
from advisor.plans.types import BuildContext
from profilers.records import (
    AllocatorPeak,
    DistributedRecord,
    MemoryBreakdown,
    Provenance,
    TensorPeak,
    TrialResult,
)
from profilers.simulate.zero import (
    DEEPSPEED_VERSION_FOLLOWED,
    ParamInfo,
    ZeroConfig,
    ZeroLayout,
    params_of,
    zero_layout,
)
from profilers.trial import UnsupportedConfiguration

__all__ = ["check_cluster", "check_zero_measurable", "local_plan", "plan_params", "zero_cut_of", "zero_layout_for", "zero_rank_result"]

_SIXTEEN_BIT = frozenset({"bf16", "fp16", "bf16-weights"})  # plans DeepSpeed runs in 16-bit


def zero_cut_of(plan: Plan) -> ZeroCut | None:
    """The plan's ``zero`` cut, if it has one."""
    return next((c for c in plan.cuts if isinstance(c, ZeroCut)), None)


def local_plan(plan: Plan) -> Plan:
    """What one rank replays: ``plan`` without its ``zero`` cut, and DeepSpeed's ``bf16`` mode
    (the module cast to bfloat16, no autocast: no cached bf16 copies of fp32 weights) for the
    ``bf16`` cut."""
    cuts = [c for c in plan.cuts if not isinstance(c, ZeroCut)]
    if any(isinstance(c, Bf16Autocast) for c in cuts) and not any(isinstance(c, Bf16Weights) for c in cuts):
        cuts = [Bf16Weights() if isinstance(c, Bf16Autocast) else c for c in cuts]
    return Plan.of(cuts)


def check_cluster(plan: Plan, gpus: int, nodes: int = 1) -> None:
    """Bad cluster shapes as one clear error (:func:`advisor.plans.cuts.distributed.check_world`:
    ``gpus < 1``, nodes that do not divide the GPUs, a strategy on one GPU, several GPUs
    without one)."""
    check_world(plan, gpus, nodes)

def check_zero_measurable(plan: Plan) -> None:
    """A measured run of a ``zero`` plan needs DeepSpeed (one clear error without it) and runs
    without offload (:mod:`advisor.engines.zero_measure`, stages 1, 2 and 3); simulate the rest."""
    cut = zero_cut_of(plan)
    if cut is None:
        return
    simulate_hint = f"simulate it instead: vram-advisor simulate --plans '{plan.name}' --gpus 8"
    if not deepspeed_available():
        raise AdvisorError(
            f"a measured {cut.label()} run needs DeepSpeed, which is not installed",
            "pip install 'vram-advisor[deepspeed]' (DeepSpeed ≥ 0.19), or " + simulate_hint,
        )
    if cut.offloads:
        raise AdvisorError(f"measuring {cut.label()} with offload is not supported yet", simulate_hint)


def _element_bytes(plan: Plan) -> int:
    return 2 if any(name in _SIXTEEN_BIT for name in plan.cut_names) else 4


def plan_params(plan: Plan, source: ModelSource, batch_size: int, seq_len: int) -> list[ParamInfo]:
    """The model's parameters under the plan's model cuts (LoRA freezes the base…), built on
    the meta device, in the dtype DeepSpeed would run them in."""
    local = local_plan(plan)
    recipe = prepare(local, batch_size, seq_len, check_available=False)
    model = build_model(local, BuildContext(source, torch.device("meta"), recipe))
    return params_of(model, _element_bytes(plan))


def _optimizer_bytes_per_element(plan: Plan, batch_size: int, seq_len: int, device: str = "cpu") -> tuple[int, int]:
    """(state, step temporaries) bytes per element of the fp32 partition the optimizer steps on.

    torch 2.13 AdamW (torch/optim/adam.py): ``_single_tensor_adam`` (CPU's default) makes
    ``exp_avg_sq.sqrt()`` and its quotient by ``bias_correction2_sqrt``, two fp32 copies live at
    once; ``_multi_tensor_adam`` (foreach, CUDA's default) one ``_foreach_sqrt`` copy, then
    divides and adds in place. SGD steps in place."""
    recipe = prepare(local_plan(plan), batch_size, seq_len, check_available=False)
    if recipe.optimizer == "adamw":
        if recipe.optimizer_kwargs.get("fused"):
            return 8, 0  # _fused_adam: one in-place kernel
        foreach = recipe.optimizer_kwargs.get("foreach")
        if foreach is None:
            foreach = device.startswith("cuda")
        return 8, 4 if foreach else 8  # exp_avg and exp_avg_sq in fp32
    if recipe.optimizer == "sgd":
        return (4 if recipe.optimizer_kwargs.get("momentum") else 0), 0
    raise UnsupportedConfiguration(f"the ZeRO layout models AdamW and SGD state, not {recipe.optimizer}")


def zero_layout_for(
    plan: Plan,
    source: ModelSource,
    batch_size: int,
    seq_len: int,
    gpus: int,
    params: list[ParamInfo] | None = None,
    *,
    device: str = "cpu",
) -> tuple[ZeroLayout, list[ParamInfo]]:
    """DeepSpeed's per-rank layout of ``plan`` (which has a ``zero`` cut) on ``gpus`` ranks
    (``params``: :func:`plan_params`, when known already) of ``device``'s type (the optimizer's
    step temporaries follow torch's default implementation there)."""
    cut = zero_cut_of(plan)
    assert cut is not None, f"{plan.name} has no zero cut"
    if params is None:
        params = plan_params(plan, source, batch_size, seq_len)
    state, temps = _optimizer_bytes_per_element(plan, batch_size, seq_len, device)
    config = ZeroConfig(
        stage=cut.stage,
        world_size=gpus,
        offload_optimizer=cut.offload_optimizer,
        offload_params=cut.offload_params,
        optimizer_state_bytes_per_element=state,
        optimizer_step_temp_bytes_per_element=temps,
    )
    return zero_layout(params, config), params


def _step_activations(local: TrialResult) -> int:
    """Activations and temporaries of the local forward/backward, without the optimizer step's
    temporaries (DeepSpeed's step runs on its partition): the forward's peak over what was
    resident, or the backward's less the full gradients the single device builds there."""
    assert local.tensor_peak is not None
    tp = local.tensor_peak
    sim = local.simulation
    phases = sim.phase_peaks if sim is not None else {}
    if "forward" not in phases:
        return tp.breakdown.activation_bytes
    resident = tp.resident_before_step_bytes
    grads = local.params.trainable_bytes if local.params is not None else 0
    forward = phases["forward"] - resident
    backward = phases.get("backward", 0) - resident - grads
    return max(0, forward, backward)


def _stage3_peak(
    layout: ZeroLayout, b: MemoryBreakdown, activations: int, *, gloo: bool
) -> tuple[MemoryBreakdown, str, dict[str, int]]:
    """ZeRO-3's per-rank peak, the largest of five candidates (DeepSpeed 0.19.8, module doc
    of :mod:`profilers.simulate.zero`), its phase, and the largest candidate of each phase:

    * **forward**, at the all-gather of the parameters gathered at once, before activations:
      ``partition_parameters.py: AllGatherCoalescedHandle.wait`` copies each parameter out of
      the flat all-gather output (``torch.cat`` of its partitions), and the flat output lives
      until the handle is dropped: the gathered parameters twice;
    * **the gradients' reduce-scatter** (``coalesced_collectives.py: reduce_scatter_coalesced``):
      a ``torch.cat`` copy of the bucket's padded gradients, and on gloo the copy of its input
      the collective reduces (torch 2.13, :func:`profilers.distributed.gloo_scratch`); when every
      gradient fits one bucket it runs once after backward, with no activation left and the
      last module (taken as the largest) still gathered, else during backward on top of it;
    * **backward**: partitions, the persistent parameters whole, the
      gathered parameters (module and prefetch window), the gradient partition and the current
      module's 16-bit gradients, the reduce bucket, the replay's activations;
    * **optimizer** (``stage3.py: step``): the persistent parameters released
      (``_partition_all_parameters``), one sub-group's fp32 gradient and the optimizer's own
      temporaries on top of the partitions and the bucket; no activation left; or the step's
      start, the persistent parameters still whole.
    """
    partitions = layout.parameter_bytes + layout.padding_bytes
    states = layout.master_bytes + layout.optimizer_state_bytes
    grad_part = layout.gradient_bytes - layout.module_gradient_bytes  # the 16-bit partition
    backward = MemoryBreakdown(
        parameter_bytes=partitions + layout.persistent_parameter_bytes + layout.gathered_parameter_bytes,
        buffer_bytes=b.buffer_bytes,
        gradient_bytes=layout.gradient_bytes,
        optimizer_state_bytes=states,
        input_bytes=b.input_bytes,
        activation_bytes=activations,
        communication_buffer_bytes=layout.communication_buffer_bytes,
    )
    optimizer = MemoryBreakdown(
        parameter_bytes=partitions,
        buffer_bytes=b.buffer_bytes,
        gradient_bytes=grad_part + layout.fp32_gradient_bytes,
        optimizer_state_bytes=states,
        input_bytes=b.input_bytes,
        activation_bytes=layout.step_temporary_bytes,
        communication_buffer_bytes=layout.communication_buffer_bytes,
    )
    gather = dataclasses.replace(
        backward,
        gradient_bytes=grad_part,
        activation_bytes=0,
        communication_buffer_bytes=layout.communication_buffer_bytes + layout.gathered_parameter_bytes,
    )
    copies = layout.reduce_copy_bytes * (2 if gloo else 1)
    if layout.single_reduce:
        reduce = dataclasses.replace(
            backward,
            parameter_bytes=partitions + layout.persistent_parameter_bytes + layout.reduce_module_bytes,
            gradient_bytes=grad_part,
            activation_bytes=0,
            communication_buffer_bytes=layout.communication_buffer_bytes + copies,
        )
    else:
        reduce = dataclasses.replace(
            backward, communication_buffer_bytes=layout.communication_buffer_bytes + copies
        )
    # the step begins with the persistent parameters still whole (its peak when they outweigh
    # one sub-group's fp32 gradient and temporaries: LoRA)
    step_start = dataclasses.replace(
        optimizer,
        parameter_bytes=partitions + layout.persistent_parameter_bytes,
        gradient_bytes=grad_part,
        activation_bytes=0,
    )
    candidates = [
        (optimizer, "optimizer"), (step_start, "optimizer"), (backward, "backward"), (reduce, "backward"),
        (gather, "forward"),
    ]  # fmt: skip
    by_phase: dict[str, int] = {}
    for candidate, phase in candidates:
        by_phase[phase] = max(by_phase.get(phase, 0), candidate.total_bytes)
    best, phase = max(candidates, key=lambda c: c[0].total_bytes)
    return best, phase, by_phase


def zero_rank_result(
    local: TrialResult,
    plan: Plan,
    source: ModelSource,
    *,
    gpus: int,
    nodes: int = 1,
    params: list[ParamInfo] | None = None,
    target: str | None = None,
) -> TrialResult:
    """One rank of ``plan``'s ZeRO run: ``local`` (the replay of :func:`local_plan`) with its
    model states replaced by DeepSpeed's layout (module doc); ``target`` (``"cuda"``/``"cpu"``,
    else ``local``'s device) picks torch's default optimizer implementation there."""
    cut = zero_cut_of(plan)
    assert cut is not None
    named = dataclasses.replace(local, plan=plan.name, cuts=plan.cut_names)
    if not local.ok or local.tensor_peak is None:
        return named
    device = target or local.device
    layout, params = zero_layout_for(plan, source, local.batch_size, local.seq_len, gpus, params, device=device)
    tp = local.tensor_peak
    b = tp.breakdown
    activations = _step_activations(local)
    phase_peaks: dict[str, int] = {}
    if cut.stage == 3:
        gloo = not device.startswith("cuda")  # ranks on CPUs talk gloo
        breakdown, phase, phase_peaks = _stage3_peak(layout, b, activations, gloo=gloo)
    else:
        phase = "backward"  # all activations live, the gradients reduced into the bucket
        breakdown = MemoryBreakdown(
            parameter_bytes=layout.parameter_bytes + layout.gathered_parameter_bytes + layout.padding_bytes,
            buffer_bytes=b.buffer_bytes,
            gradient_bytes=layout.gradient_bytes + layout.fp32_gradient_bytes,
            optimizer_state_bytes=layout.master_bytes + layout.optimizer_state_bytes,
            input_bytes=b.input_bytes,
            activation_bytes=activations,
            communication_buffer_bytes=layout.communication_buffer_bytes,
        )
    resident = (
        layout.parameter_bytes + layout.persistent_parameter_bytes + layout.padding_bytes + layout.master_bytes
        + layout.optimizer_state_bytes + b.buffer_bytes
    )  # fmt: skip
    peak = TensorPeak(
        peak_bytes=breakdown.total_bytes,
        breakdown=breakdown,
        resident_before_step_bytes=resident,
        peak_phase=phase,
        provenance=Provenance.ESTIMATED,
    )
    trainable_bytes = sum(p.numel * p.element_bytes for p in params if p.trainable)
    weight_bytes = sum(p.numel * p.element_bytes for p in params)
    gathered = trainable_bytes if cut.stage < 3 else weight_bytes
    volume = comm_volume(
        cut.strategy, parameter_bytes=gathered, gradient_bytes=trainable_bytes,
        world_size=gpus, accumulation_steps=local.accumulation_steps,
    )  # fmt: skip
    record = DistributedRecord(
        world_size=gpus,
        rank=0,
        strategy=cut.strategy,
        nodes=nodes,
        communication_buffer_bytes=layout.communication_buffer_bytes,
        comm_bytes_per_step=sum(v for _, v in volume),
        host_bytes=layout.host_bytes,
        padding_bytes=layout.padding_bytes,
        layout={
            "parameters": layout.parameter_bytes,
            "gathered parameters": layout.gathered_parameter_bytes,
            "persistent parameters": layout.persistent_parameter_bytes,
            "gradients": layout.gradient_bytes,
            "fp32 master": layout.master_bytes,
            "optimizer state": layout.optimizer_state_bytes,
            "fp32 gradients": layout.fp32_gradient_bytes,
            "optimizer step temporaries": layout.step_temporary_bytes,
            "padding": layout.padding_bytes,
            "communication buffers": layout.communication_buffer_bytes,
            "host (offloaded)": layout.host_bytes,
            **{f"{phase} peak": v for phase, v in phase_peaks.items()},
        },
        settings={
            **dict(layout.buckets),
            "stage": cut.stage,
            "offload_optimizer": cut.offload_optimizer,
            "offload_params": cut.offload_params,
            "dtype_bytes": params[0].element_bytes if params else 0,
        },
        note=(
            f"DeepSpeed {DEEPSPEED_VERSION_FOLLOWED}'s ZeRO-{cut.stage} layout modelled per rank, "
            f"activations from the replay of {local.plan} on one rank's micro-batch"
        ),
        provenance=Provenance.ESTIMATED,
    )
    sim = local.simulation
    if sim is not None and sim.cuda_allocator is not None:
        # the replayed allocator's rounding over the single-device peak, kept over the new peak
        over = sim.cuda_allocator.max_reserved_bytes - tp.peak_bytes
        alloc = AllocatorPeak(
            max_allocated_bytes=peak.peak_bytes + max(0, sim.cuda_allocator.max_allocated_bytes - tp.peak_bytes),
            max_reserved_bytes=peak.peak_bytes + max(0, over),
            segments=sim.cuda_allocator.segments,
            provenance=Provenance.ESTIMATED,
        )
        sim = dataclasses.replace(sim, cuda_allocator=alloc)
    if sim is not None and layout.host_bytes:
        sim = dataclasses.replace(sim, host_peak_bytes=(sim.host_peak_bytes or 0) + layout.host_bytes)
    params_counts = local.params
    return dataclasses.replace(named, tensor_peak=peak, simulation=sim, distributed=record, params=params_counts)
