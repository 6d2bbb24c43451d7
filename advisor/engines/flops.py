"""FLOPs of a training step, and from them an estimated step time on a target GPU.

The FLOPs come from the replay itself: while the tracked step runs on fake tensors, a
dispatch mode applies ``torch.utils.flop_counter``'s formulas to every matmul, convolution and
attention kernel (:class:`profilers.simulate.StepCostCounter`), by input dtype. Whatever the
step really runs is counted: the backward, the optimizer, and under gradient checkpointing the
recomputed forward. The same mode adds up the bytes each op reads and writes.

The step time is a roofline over those counts (provenance ``estimated``)::

    compute  = Σ_dtype FLOPs_dtype / (peak_dtype × compute_efficiency)
    memory   = bytes / (bandwidth × memory_efficiency)
    gpu      = max(compute, memory of the FLOP ops) + memory of every other op
    step     = max(gpu, ops × EAGER_OP_OVERHEAD_S)

The last term is eager PyTorch's per-op cost on the host (dispatch + kernel launch): the GPU
cannot finish a step faster than the host issues its kernels. It only matters for small
models, where the roofline alone would promise absurd speeds.

float32 matmuls use the GPU's FP32 (non-tensor) rate, as PyTorch does by default
(``allow_tf32`` is off for matmuls); bfloat16 and float16 use the tensor-core rates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from profilers.records import Provenance, TrialResult, TrialStatus
from profilers.simulate import StepCost

if TYPE_CHECKING:
    from advisor.catalog.gpus import GpuSpec

__all__ = [
    "DEFAULT_COMPUTE_EFFICIENCY",
    "DEFAULT_MEMORY_EFFICIENCY",
    "EFFICIENCY_SOURCES",
    "StepTimeEstimate",
    "calibrate_compute_efficiency",
    "estimate_for_gpu",
    "estimate_step_time",
    "peak_flops_by_dtype",
    "step_cost_of",
]

DEFAULT_COMPUTE_EFFICIENCY = 0.40
# host time to dispatch and launch one eager op; assumption, not measured here: PyTorch's
# eager overhead is commonly put at ~5–20 µs per op (CUDA launch ~5 µs plus dispatcher work)
EAGER_OP_OVERHEAD_S = 10e-6
DEFAULT_MEMORY_EFFICIENCY = 0.70
EFFICIENCY_SOURCES = {
    "compute": "assumption, not calibrated on a GPU here: 0.40 sits in the 30–50% model-FLOPs "
    "utilization reported for well-tuned large-model training (PaLM: 46.2%, Chowdhery et al. "
    "2022); eager single-GPU fine-tuning is usually at or below it. "
    "calibrate_compute_efficiency() derives it from a measured step",
    "memory": "assumption, not calibrated on a GPU here: large elementwise kernels reach 70–90% of "
    "peak DRAM bandwidth; eager PyTorch also runs many small ones",
    "op_overhead": "assumption, not measured here: ~10 µs per eager op for dispatch + kernel launch "
    "(commonly reported 5–20 µs); a floor on the step time, binding only for small models",
}


def step_cost_of(result: TrialResult) -> StepCost | None:
    """The FLOP/byte counts a simulated result carries, or ``None``."""
    return result.simulation.step_cost if result.simulation is not None else None


def peak_flops_by_dtype(gpu: GpuSpec) -> dict[str, float]:
    """Peak FLOP/s of ``gpu`` for each dtype a step's FLOPs are counted in."""
    fp16 = gpu.fp16_tflops * 1e12
    bf16 = (gpu.bf16_tflops or 0.0) * 1e12 or fp16  # no bf16 units: emulated no faster than fp16
    return {"float32": gpu.fp32_tflops * 1e12, "bfloat16": bf16, "float16": fp16}


@dataclass(frozen=True)
class StepTimeEstimate:
    """An estimated step time from counted FLOPs and bytes (provenance ``estimated``)."""

    flops: int
    bytes_moved: int
    compute_time_s: float
    memory_time_s: float
    step_time_s: float
    tokens_per_step: int
    compute_efficiency: float
    memory_efficiency: float
    bound: str  # "compute", "memory" or "launch" (host-bound: too many small ops)
    launch_time_s: float = 0.0  # ops × EAGER_OP_OVERHEAD_S
    provenance: Provenance = Provenance.ESTIMATED

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_time_s if self.step_time_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "flops": self.flops,
            "bytes_moved": self.bytes_moved,
            "compute_time_s": self.compute_time_s,
            "memory_time_s": self.memory_time_s,
            "step_time_s": self.step_time_s,
            "tokens_per_step": self.tokens_per_step,
            "tokens_per_s": self.tokens_per_s,
            "compute_efficiency": self.compute_efficiency,
            "memory_efficiency": self.memory_efficiency,
            "bound": self.bound,
            "launch_time_s": self.launch_time_s,
            "provenance": self.provenance.value,
        }


def _rate(flops_per_s: Mapping[str, float] | float, dtype: str) -> float:
    if isinstance(flops_per_s, (int, float)):
        return float(flops_per_s)
    rate = flops_per_s.get(dtype) or flops_per_s.get("float32")
    if not rate:
        raise ValueError(f"no peak FLOP/s for {dtype} (have {sorted(flops_per_s)})")
    return float(rate)


def _check_efficiency(name: str, value: float) -> None:
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def estimate_step_time(
    cost: StepCost,
    *,
    flops_per_s: Mapping[str, float] | float,
    bandwidth_bytes_per_s: float,
    tokens_per_step: int = 0,
    compute_efficiency: float = DEFAULT_COMPUTE_EFFICIENCY,
    memory_efficiency: float = DEFAULT_MEMORY_EFFICIENCY,
) -> StepTimeEstimate:
    """Step time of ``cost`` on a device with these peak rates (see the module doc).

    ``flops_per_s`` is one peak FLOP/s for every dtype, or a mapping ``dtype → FLOP/s``.
    """
    _check_efficiency("compute_efficiency", compute_efficiency)
    _check_efficiency("memory_efficiency", memory_efficiency)
    if bandwidth_bytes_per_s <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth_bytes_per_s}")
    compute = sum(
        flops / (_rate(flops_per_s, dtype) * compute_efficiency)
        for dtype, flops in cost.flops_by_dtype.items()
        if flops
    )
    bandwidth = bandwidth_bytes_per_s * memory_efficiency
    flop_op_memory = cost.flop_op_bytes / bandwidth
    other_memory = cost.other_op_bytes / bandwidth
    gpu_time = max(compute, flop_op_memory) + other_memory
    launch = cost.ops * EAGER_OP_OVERHEAD_S
    step = max(gpu_time, launch)
    if launch > gpu_time:
        bound = "launch"
    else:
        bound = "compute" if compute >= flop_op_memory + other_memory else "memory"
    return StepTimeEstimate(
        flops=cost.total_flops,
        bytes_moved=cost.total_bytes,
        compute_time_s=compute,
        memory_time_s=flop_op_memory + other_memory,
        step_time_s=step,
        tokens_per_step=tokens_per_step,
        compute_efficiency=compute_efficiency,
        memory_efficiency=memory_efficiency,
        bound=bound,
        launch_time_s=launch,
    )


def _tokens_per_step(result: TrialResult) -> int:
    tokens = result.simulation.tokens_per_step if result.simulation is not None else None
    return int(tokens) if tokens else result.batch_size * result.seq_len


def estimate_for_gpu(
    result: TrialResult,
    gpu: GpuSpec,
    *,
    compute_efficiency: float = DEFAULT_COMPUTE_EFFICIENCY,
    memory_efficiency: float = DEFAULT_MEMORY_EFFICIENCY,
) -> StepTimeEstimate | None:
    """The estimated step time of a simulated result on ``gpu``; ``None`` without counts."""
    cost = step_cost_of(result)
    if cost is None or result.status is not TrialStatus.OK:
        return None
    return estimate_step_time(
        cost,
        flops_per_s=peak_flops_by_dtype(gpu),
        bandwidth_bytes_per_s=gpu.bandwidth_bytes_per_s,
        tokens_per_step=_tokens_per_step(result),
        compute_efficiency=compute_efficiency,
        memory_efficiency=memory_efficiency,
    )


def calibrate_compute_efficiency(
    measured_step_time_s: float,
    cost: StepCost,
    *,
    flops_per_s: Mapping[str, float] | float,
    bandwidth_bytes_per_s: float,
    memory_efficiency: float = DEFAULT_MEMORY_EFFICIENCY,
) -> float:
    """The compute efficiency that makes :func:`estimate_step_time` match a measured step.

    Takes the step's counts (simulated for the same plan and sizes) and the peak rates of the
    device it was measured on. The memory part is kept at ``memory_efficiency``; the result is
    clamped to (0, 1].
    """
    if measured_step_time_s <= 0:
        raise ValueError(f"measured step time must be > 0, got {measured_step_time_s}")
    ideal = estimate_step_time(
        cost,
        flops_per_s=flops_per_s,
        bandwidth_bytes_per_s=bandwidth_bytes_per_s,
        compute_efficiency=1.0,
        memory_efficiency=memory_efficiency,
    )
    other = cost.other_op_bytes / (bandwidth_bytes_per_s * memory_efficiency)
    left = measured_step_time_s - other
    if ideal.compute_time_s <= 0:
        return 1.0
    if left <= 0:
        return 1.0  # the memory part alone explains the time: compute is not the bottleneck
    return float(min(1.0, max(1e-6, ideal.compute_time_s / left)))
