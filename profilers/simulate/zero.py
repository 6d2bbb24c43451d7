"""DeepSpeed ZeRO-1/2/3: the per-rank layout of model states and communication buffers.

DeepSpeed cannot run on fake tensors (its optimizers flatten real storages and its partitioned
parameters hook ``torch.nn.Parameter`` construction), so its per-rank layout is modelled here
from the parameters alone, following DeepSpeed 0.19.8's own code:

* ``deepspeed/runtime/zero/stage_1_and_2.py`` (``DeepSpeedZeroOptimizer.__init__``): only the
  parameters that require grad (``is_optimized_parameter``) are flattened into one 16-bit flat
  buffer per param group, padded to a multiple of ``nccl_start_alignment_factor (2) × world
  size`` (``parameter_alignment`` off by default); each rank owns ``padded / N`` of it, with an
  fp32 master copy of its partition (``single_partition_of_fp32_groups``), the optimizer's
  state for that partition, and an fp32 gradient partition. Stage 2 reduces its gradients
  straight into that fp32 partition when the weights are 16-bit (no 16-bit gradient
  partition: ``_use_compact_grad_partition_buffer``); stage 1 keeps full 16-bit gradients.
  Frozen parameters stay as ordinary module parameters: no partition, no optimizer state, no
  gradient. With ``contiguous_gradients`` (default true) the reduction staging buffer is
  ``reduce_bucket_size`` elements (``setup_buckets``) in the weights' dtype at both stages
  (``_gradient_reduction_buffer_dtype``; a measured stage-1 bf16 run holds 500M × 2 B); double with ``overlap_comm``,
  whose default is on only for stage 3 (``config.py: overlap_comm_valid``).
* ``partition_parameters.py`` (``_aligned_size``/``_padding_size``) and ``stage3.py``: stage 3
  partitions every parameter (frozen ones too) one by one, each padded to a multiple of N;
  the fp32 master, optimizer state and gradient partitions exist for the trainable ones only.
  Gradients are reduce-scattered through one ``reduce_bucket_size`` bucket in the weights'
  dtype (``IPGBucketZ3``, allocated at the first backward and kept for reuse: ``clear_params``).
* Persistent parameters (``parameter_offload.py: mark_persistent_parameters``): every parameter
  of ≤ ``stage3_param_persistence_threshold`` (1e5) elements, while their running total stays
  ≤ ``stage3_model_persistence_threshold`` (unbounded by default), is never released by the
  coordinator (``partitioned_param_coordinator.py: __params_to_release`` skips ``ds_persist``):
  it stays whole (16-bit) on every rank beside its partition (``_partition_param`` still makes
  its ``ds_tensor``, on the local device), so its fp32 master, Adam state and gradient are
  partitioned like any other's. ``stage3.py: step`` releases them with every parameter
  (``_partition_all_parameters``) and ``_post_step`` gathers them again: whole during forward,
  backward and after the step, partitioned during the optimizer step.
* Prefetch (``partitioned_param_coordinator.py: fetch_sub_module``): once the trace is complete
  (from the second step) the coordinator all-gathers, after the current module's parameters,
  the next not-yet-available parameters of the trace until ``numel_prefetching`` reaches
  ``min(stage3_max_live_parameters − available, stage3_prefetch_bucket_size)``: a limit on
  parameters gathered ahead into their own storages, not an allocated buffer. Modelled with the
  trace taken as the modules in definition order (forward) and its reverse (backward): the
  most bytes a module's own non-persistent parameters and those prefetched after it hold
  (:func:`_gathered_at_once`).
* The optimizer step (``stage3.py: step``, one ``sub_group_size`` sub-group at a time): the
  persistent parameters are released, the sub-group's fp32 gradient is made
  (``_prepare_fp32_grad_for_sub_group``) and the wrapped optimizer steps on its flat fp32
  partition with its own temporaries (torch 2.13 AdamW: ``_single_tensor_adam``'s
  ``exp_avg_sq.sqrt() / bias_correction2_sqrt``, two fp32 copies live at once, on CPU;
  ``_multi_tensor_adam``'s one ``_foreach_sqrt`` copy with foreach, CUDA's default).

Compared with DeepSpeed's own estimators (``estimate_zero2_model_states_mem_needs``, which it
offers for stages 1 and 2, and ``estimate_zero3_model_states_mem_needs``), for full
fine-tuning with 16-bit weights and Adam, padding apart (:attr:`ZeroLayout.padding_bytes`):

* stage 2 is below the estimator by the 16-bit gradient partition it counts, ``2·T/N``
  (2 + 16/N bytes per parameter, as a real DeepSpeed 0.19.8 run on this machine holds them:
  ``benchmarks/results/zero-measured.md``); with fp32 weights the gradient partition is kept;
* stage 1 is above it by the unpartitioned 16-bit gradients, ``2·T·(1 − 1/N)`` (the estimator
  treats stage 1 as stage 2);
* stage 3 replaces the estimator's 18/N bytes per parameter by what stage3.py keeps: 16-bit
  parameter and gradient partitions, fp32 master and Adam partitions (16/N), and the fp32
  gradient of one sub-group at the step (``min(sub_group_size, T/N) × 4``); and in place of
  the estimator's ``4 × largest_layer`` (the largest module's parameters and gradients
  gathered), the persistent parameters whole, the gathered non-persistent ones (the largest
  module and the prefetch window) and the largest module's 16-bit gradients.

For a LoRA plan the figures are below the same comparison by exactly the frozen parameters'
optimizer and gradient bytes, which the estimators count although DeepSpeed allocates none
(DeepSpeed issue #5304). ``benchmarks/zero.py`` checks both terms byte for byte.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

__all__ = [
    "DEEPSPEED_VERSION_FOLLOWED",
    "ZERO_DEFAULTS",
    "ParamInfo",
    "ZeroConfig",
    "ZeroLayout",
    "deepspeed_estimate_bytes",
    "largest_layer_params",
    "params_of",
    "persistent_params",
    "zero_layout",
]

DEEPSPEED_VERSION_FOLLOWED = "0.19.8"

# deepspeed/runtime/zero/config.py (0.19.8): DeepSpeedZeroConfig's defaults, in elements
ZERO_DEFAULTS: dict[str, int] = {
    "reduce_bucket_size": 500_000_000,
    "allgather_bucket_size": 500_000_000,
    "stage3_prefetch_bucket_size": 50_000_000,
    "stage3_max_live_parameters": 1_000_000_000,
    "stage3_param_persistence_threshold": 100_000,
    "sub_group_size": 1_000_000_000,
}

_NCCL_START_ALIGNMENT_FACTOR = 2  # stage_1_and_2.py: "4-byte alignment/sizeof(fp16) = 2"
_FP32 = 4


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as the layout sees it: elements, element size, trainable, its module."""

    numel: int
    element_bytes: int
    trainable: bool
    module: str = ""  # the owning module's qualified name (largest layer = largest module)


@dataclass(frozen=True)
class ZeroConfig:
    """The ZeRO settings modelled: the stage, offload targets and the bucket sizes (elements)."""

    stage: int
    world_size: int
    offload_optimizer: str = "none"  # "none" or "cpu"
    offload_params: str = "none"  # "none" or "cpu" (stage 3 only)
    optimizer_state_bytes_per_element: int = 8  # Adam: fp32 exp_avg + exp_avg_sq
    reduce_bucket_size: int = ZERO_DEFAULTS["reduce_bucket_size"]
    allgather_bucket_size: int = ZERO_DEFAULTS["allgather_bucket_size"]
    stage3_prefetch_bucket_size: int = ZERO_DEFAULTS["stage3_prefetch_bucket_size"]
    stage3_max_live_parameters: int = ZERO_DEFAULTS["stage3_max_live_parameters"]
    stage3_param_persistence_threshold: int = ZERO_DEFAULTS["stage3_param_persistence_threshold"]
    sub_group_size: int = ZERO_DEFAULTS["sub_group_size"]
    stage3_model_persistence_threshold: int = sys.maxsize  # config.py default (elements)
    # the wrapped optimizer's own temporaries at its step, per element of the fp32 partition
    # (torch AdamW: 8 single-tensor, CPU's default; 4 foreach, CUDA's default; SGD: 0)
    optimizer_step_temp_bytes_per_element: int = 8

    def __post_init__(self) -> None:
        if self.stage not in (1, 2, 3):
            raise ValueError(f"ZeRO stage must be 1, 2 or 3, got {self.stage}")
        if self.world_size < 1:
            raise ValueError(f"world size must be ≥ 1, got {self.world_size}")
        for name in ("offload_optimizer", "offload_params"):
            if getattr(self, name) not in ("none", "cpu"):
                raise ValueError(f"{name} must be none or cpu, got {getattr(self, name)}")
        if self.offload_params == "cpu" and self.stage != 3:
            raise ValueError("offload_params needs stage 3 (DeepSpeed offloads parameters only in ZeRO-3)")

    def buckets(self) -> dict[str, int]:
        """The bucket sizes used, by DeepSpeed config key (elements)."""
        keys = ["reduce_bucket_size", "allgather_bucket_size"]
        if self.stage == 3:
            keys += [
                "stage3_prefetch_bucket_size",
                "stage3_max_live_parameters",
                "stage3_param_persistence_threshold",
                "sub_group_size",
            ]
        return {k: int(getattr(self, k)) for k in keys}


@dataclass(frozen=True)
class ZeroLayout:
    """What one rank holds under ZeRO: device bytes by role, host bytes, and padding.

    ``*_bytes`` are without padding (DeepSpeed's estimators' accounting); the padding of the
    flat buffers and partitions is :attr:`padding_bytes`, on the device unless offloaded.
    """

    stage: int
    world_size: int
    parameter_bytes: int  # 16-bit (or compute-dtype) parameters resident on the device
    gathered_parameter_bytes: int  # stage 3: non-persistent parameters gathered at once (module + prefetch)
    gradient_bytes: int  # compute-dtype gradients (full, partitioned, or the gathered layer's)
    master_bytes: int  # fp32 master partition (DeepSpeed keeps it even for fp32 weights)
    optimizer_state_bytes: int  # optimizer state of the owned partition
    fp32_gradient_bytes: int  # fp32 gradient partition fed to the optimizer
    padding_bytes: int  # alignment padding of flat buffers / partitions (device unless offloaded)
    communication_buffer_bytes: int  # reduce / prefetch buckets
    host_bytes: int  # offloaded to host memory (optimizer partition, parameters)
    buckets: tuple[tuple[str, int], ...]  # the bucket sizes used (DeepSpeed config keys, elements)
    # stage 3: the persistent parameters (≤ stage3_param_persistence_threshold elements) whole,
    # 16-bit, on every rank (beside their partitions, in parameter_bytes), except during the step
    persistent_parameter_bytes: int = 0
    # stage 3: the optimizer step's temporaries for one sub-group (fp32 gradient apart)
    step_temporary_bytes: int = 0
    # stage 3: the part of gradient_bytes that is the current module's 16-bit gradients
    # (gone by the step), the rest being the gradient partition
    module_gradient_bytes: int = 0
    # stage 3: one reduce-scatter of the bucket's gradients (coalesced_collectives.py
    # reduce_scatter_coalesced): its torch.cat of the padded partitions, bytes (one copy)
    reduce_copy_bytes: int = 0
    # stage 3: whether every gradient fits one bucket (reduced once, after backward: no
    # activation left then), and the largest module's released parameters gathered then
    single_reduce: bool = False
    reduce_module_bytes: int = 0

    @property
    def model_state_bytes(self) -> int:
        """Device model states without padding: what DeepSpeed's estimators count on the GPU."""
        return (
            self.parameter_bytes
            + self.persistent_parameter_bytes
            + self.gathered_parameter_bytes
            + self.gradient_bytes
            + self.master_bytes
            + self.optimizer_state_bytes
            + self.fp32_gradient_bytes
        )

    @property
    def device_bytes(self) -> int:
        """Everything the layout puts on the device: model states, padding, buffers."""
        return self.model_state_bytes + self.padding_bytes + self.communication_buffer_bytes


def largest_layer_params(params: Iterable[ParamInfo]) -> int:
    """The largest module's own parameter count, as DeepSpeed's ``model_to_params`` finds it
    (``m.parameters(recurse=False)`` for every module)."""
    by_module: dict[str, int] = {}
    for p in params:
        by_module[p.module] = by_module.get(p.module, 0) + p.numel
    return max(by_module.values(), default=0)


def persistent_params(params: Iterable[ParamInfo], config: ZeroConfig) -> list[bool]:
    """Which parameters ZeRO-3 keeps whole (``parameter_offload.py: mark_persistent_parameters``,
    0.19.8: in order, ``ds_numel ≤ param_threshold`` while the running total stays ≤
    ``model_threshold``)."""
    out: list[bool] = []
    total = 0
    for p in params:
        if p.numel + total > config.stage3_model_persistence_threshold:
            out.append(False)
            continue
        keep = p.numel <= config.stage3_param_persistence_threshold
        total += p.numel if keep else 0
        out.append(keep)
    return out


def _gathered_at_once(released: list[ParamInfo], window: int) -> int:
    """The most bytes of non-persistent parameters gathered at once: a module's own and those
    prefetched ahead of it (``partitioned_param_coordinator.py: fetch_sub_module``: after the
    current module's, the next parameters of the trace until ``numel_prefetching`` reaches the
    window, the one crossing it included), the trace being the modules in definition order
    (forward) or its reverse (backward)."""
    modules: dict[str, list[ParamInfo]] = {}
    for p in released:
        modules.setdefault(p.module, []).append(p)
    order = list(modules.values())
    best = 0
    for trace in (order, order[::-1]):
        flat = [p for ps in trace for p in ps]
        start = 0  # index in flat of the first parameter after the current module
        for own in trace:
            start += len(own)
            held = sum(p.numel * p.element_bytes for p in own)
            ahead = 0
            k = start  # no slice: a copy per module would be quadratic in the parameter count
            while k < len(flat) and ahead < window:
                ahead += flat[k].numel
                held += flat[k].numel * flat[k].element_bytes
                k += 1
            best = max(best, held)
    return best


def _largest_layer(params: list[ParamInfo]) -> tuple[int, int, int]:
    """(all, trainable elements, bytes) of the largest module's own parameters."""
    by_module: dict[str, list[ParamInfo]] = {}
    for p in params:
        by_module.setdefault(p.module, []).append(p)
    if not by_module:
        return 0, 0, 0
    best = max(by_module.values(), key=lambda ps: sum(p.numel for p in ps))
    return (
        sum(p.numel for p in best),
        sum(p.numel for p in best if p.trainable),
        sum(p.numel * p.element_bytes for p in best),
    )


def zero_layout(params: Iterable[ParamInfo], config: ZeroConfig) -> ZeroLayout:
    """Per-rank bytes of ZeRO ``config.stage`` over ``config.world_size`` ranks (module doc)."""
    params = list(params)
    n = config.world_size
    trainable = [p for p in params if p.trainable]
    frozen = [p for p in params if not p.trainable]
    t_numel = sum(p.numel for p in trainable)
    # the compute dtype of the trainable weights (16-bit under bf16/fp16, else fp32)
    b = trainable[0].element_bytes if trainable else (params[0].element_bytes if params else 2)
    state_per_el = _FP32 + config.optimizer_state_bytes_per_element + _FP32  # master, state, fp32 grad
    host = 0
    gathered = persistent = step_temps = module_grads = reduce_copy = reduce_module = 0
    single_reduce = False
    opt_el = config.optimizer_state_bytes_per_element

    def partitioned(grad_el: int) -> tuple[int, int, int, int]:
        """(16-bit grad, fp32 master, optimizer state, fp32 grad) partition bytes, floored once
        over their sum as DeepSpeed's estimator floors ``int(18 * P / N)``."""
        total = (grad_el + _FP32 + opt_el + _FP32) * t_numel // n
        master, optim, fp32_grad = t_numel * _FP32 // n, t_numel * opt_el // n, t_numel * _FP32 // n
        return total - master - optim - fp32_grad, master, optim, fp32_grad

    if config.stage in (1, 2):
        align = _NCCL_START_ALIGNMENT_FACTOR * n
        padded = math.ceil(t_numel / align) * align if t_numel else 0
        pad_el = padded - t_numel  # the flat buffer's tail; each rank owns pad_el / N of it
        param_bytes = t_numel * b + sum(p.numel * p.element_bytes for p in frozen)
        padding = pad_el * b
        # 16-bit weights: the reduced gradient goes straight into an fp32 partition buffer
        # (stage_1_and_2.py ``_use_compact_grad_partition_buffer``: gradient_accumulation_dtype
        # fp32 ≠ the 16-bit dtype), no 16-bit gradient partition; fp32 weights keep the
        # partition (``averaged_gradients``) and its flattened copy fed to the optimizer.
        # Measured: benchmarks/results/zero-measured.md (a real DeepSpeed 0.19.8 run on 2 ranks).
        grad_part_el = b if b == _FP32 else 0
        if config.stage == 1:
            _, master, optim, fp32_grad = partitioned(0)
            grad_bytes = t_numel * b  # full 16-bit gradients, reduced after backward
        else:
            grad_bytes, master, optim, fp32_grad = partitioned(grad_part_el)
            padding += pad_el * grad_part_el // n
        part_padding = pad_el * state_per_el // n
        # the staging bucket is in the weights' dtype at both stages (``setup_buckets``:
        # ``_gradient_reduction_buffer_dtype`` is ``self.dtype`` without grad_accum attributes;
        # measured: 500M elements × 2 B under bf16 at stage 1 too)
        comm = config.reduce_bucket_size * b  # one staging buffer (overlap_comm off)
    else:
        # every parameter partitioned on its own, padded to a multiple of N
        def part(p: ParamInfo) -> int:
            return math.ceil(p.numel / n)

        all_param_bytes = sum(p.numel * p.element_bytes for p in params)
        param_bytes = all_param_bytes // n
        padding = sum(part(p) * p.element_bytes for p in params) - param_bytes
        _layer_all, layer_trainable, _layer_bytes = _largest_layer(params)
        # persistent parameters whole on every rank; the rest gathered module by module, the
        # current one and up to the prefetch window ahead (module doc)
        persist = persistent_params(params, config)
        persistent = sum(p.numel * p.element_bytes for p, keep in zip(params, persist, strict=True) if keep)
        released = [p for p, keep in zip(params, persist, strict=True) if not keep]
        window = min(config.stage3_prefetch_bucket_size, config.stage3_max_live_parameters)
        gathered = _gathered_at_once(released, window)
        reduce_module = _largest_layer(released)[2]
        # the bucket holds whole gradients up to reduce_bucket_size elements; each reduce
        # copies them, each padded to a multiple of N, into one flat buffer (torch.cat)
        t_padded = sum(math.ceil(p.numel / n) * n for p in trainable)
        single_reduce = t_padded <= config.reduce_bucket_size
        reduce_copy = min(config.reduce_bucket_size, t_padded) * b
        grad_part = t_numel * b // n  # the persistent 16-bit gradient partition
        master, optim = t_numel * _FP32 // n, t_numel * opt_el // n
        # the fp32 gradient exists for one sub-group at a time, at the optimizer step
        # (stage3.py: _prepare_fp32_grad_for_sub_group; sub_group_size, config.py default 1e9)
        sub_group = min(config.sub_group_size, math.ceil(t_numel / n)) if t_numel else 0
        fp32_grad = sub_group * _FP32
        step_temps = sub_group * config.optimizer_step_temp_bytes_per_element
        module_grads = layer_trainable * b
        grad_bytes = grad_part + module_grads  # and the module's 16-bit gradients
        t_part = sum(part(p) for p in trainable)
        grad_part_padding = t_part * b - t_numel * b // n
        padding += grad_part_padding
        part_padding = t_part * (_FP32 + opt_el) - t_numel * (_FP32 + opt_el) // n
        # stage3.py: one contiguous ipg bucket of reduce_bucket_size per gradient dtype (the
        # prefetch is a limit, counted in ``gathered``, not a buffer)
        comm = config.reduce_bucket_size * b
        if config.offload_params == "cpu":
            host += param_bytes + padding - grad_part_padding
            padding = grad_part_padding
            param_bytes = 0
    if config.offload_optimizer == "cpu":
        # the fp32 master, optimizer state and fp32 gradient partitions live on the host
        host += master + optim + fp32_grad + part_padding
        master = optim = fp32_grad = step_temps = 0
    else:
        padding += part_padding
    return ZeroLayout(
        stage=config.stage,
        world_size=n,
        parameter_bytes=param_bytes,
        gathered_parameter_bytes=gathered,
        gradient_bytes=grad_bytes,
        master_bytes=master,
        optimizer_state_bytes=optim,
        fp32_gradient_bytes=fp32_grad,
        padding_bytes=int(padding),
        communication_buffer_bytes=int(comm),
        host_bytes=int(host),
        buckets=tuple(sorted(config.buckets().items())),
        persistent_parameter_bytes=int(persistent),
        step_temporary_bytes=int(step_temps),
        module_gradient_bytes=int(module_grads),
        reduce_copy_bytes=int(reduce_copy),
        single_reduce=single_reduce,
        reduce_module_bytes=int(reduce_module),
    )


def deepspeed_estimate_bytes(
    stage: int, total_params: int, largest_layer: int, gpus_per_node: int, nodes: int = 1
) -> int:
    """DeepSpeed's own per-GPU estimate of model states (no offload), by its own functions.

    Stage 1 and 2 use ``estimate_zero2_model_states_mem_needs`` (DeepSpeed has no stage-1
    estimator), stage 3 ``estimate_zero3_model_states_mem_needs``. Needs deepspeed installed.
    """
    if stage in (1, 2):
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        _, gpu = estimate_zero2_model_states_mem_needs(
            total_params, num_gpus_per_node=gpus_per_node, num_nodes=nodes, cpu_offload=False
        )
        return int(gpu)
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    _, gpu3, _ = estimate_zero3_model_states_mem_needs(
        total_params, largest_layer, num_gpus_per_node=gpus_per_node, num_nodes=nodes,
        cpu_offload=False, cpu_offload_params=False,
    )  # fmt: skip
    return int(gpu3)


def params_of(model: nn.Module, element_bytes: int) -> list[ParamInfo]:
    """The model's unique parameters as the layout sees them: DeepSpeed casts the whole module
    to the engine's dtype (``element_bytes``: 2 under bf16/fp16, 4 in fp32); a tied parameter
    counts once, in the first module that owns it."""
    seen: set[int] = set()
    out: list[ParamInfo] = []
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            out.append(ParamInfo(p.numel(), element_bytes, p.requires_grad, name))
    return out
