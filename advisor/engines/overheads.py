"""What a CUDA GPU needs beyond the tensor peak: the target's overheads, in one small model.

The tensor peak (measured or simulated) counts live tensor bytes. A process training on a
CUDA GPU holds more:

* the **caching allocator**'s blocks and segments: requests are rounded up and carved out of
  cached segments, so ``max_memory_reserved`` exceeds the live bytes. A simulated result
  carries its step replayed through a model of the allocator
  (:func:`profilers.simulate.replay_caching_allocator`); a result measured on CUDA carries the
  real figure; anything else gets :data:`CONSTANTS` ``allocator_fallback_fraction``;
* the **CUDA context** (driver state, loaded kernel modules), outside PyTorch's allocator;
* **library workspaces**: one cuBLAS workspace per (handle, stream), and training uses two
  handles (the forward on the main thread, the backward on autograd's device thread);
* **attention kernels** whose memory differs between the CPU and CUDA implementations: both
  save the output and a float32 log-sum-exp (the replay counts those exactly), but the CUDA
  FlashAttention backward also holds a float32 ``dq`` accumulator for its duration.

Every constant lives in :data:`CONSTANTS` with its value, unit and source. None is measured on
a GPU in this project yet (no GPU was available); :func:`observed_overheads` reads them off a
result measured on CUDA, for calibration.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from advisor.catalog.calibration import CalibrationProfile, calibration_for
from advisor.engines.need import (
    ALLOCATOR,
    ATTENTION,
    CONTEXT,
    WORKSPACES,
    NeedPart,
    PredictedNeed,
    tensor_parts,
)
from profilers.records import Provenance, SimulationRecord, StepCost, TrialResult
from profilers.simulate import CachingAllocatorModel

if TYPE_CHECKING:
    from advisor.catalog.gpus import GpuSpec

log = logging.getLogger(__name__)

__all__ = [
    "CONSTANTS",
    "Constant",
    "PredictedNeed",
    "allocator_model",
    "cublas_workspace_bytes",
    "gpu_need",
    "observed_overheads",
    "predict_gpu_need",
]

_MIB = 2**20
_ALLOC = "PyTorch c10/cuda/CUDACachingAllocator.cpp (constants in c10/core/AllocatorConfig.h)"
_CUBLAS = "PyTorch aten/src/ATen/cuda/CublasHandlePool.cpp, parseChosenWorkspaceSize()"


@dataclass(frozen=True)
class Constant:
    """One constant of the overhead model, with where it comes from."""

    value: float
    unit: str
    source: str


CONSTANTS: MappingProxyType[str, Constant] = MappingProxyType(
    {
        # the caching allocator (default PYTORCH_CUDA_ALLOC_CONF)
        "allocator_min_block_bytes": Constant(
            512, "B", f"{_ALLOC}: kMinBlockSize, every request rounded up to it"
        ),
        "allocator_small_size_bytes": Constant(
            1 * _MIB, "B", f"{_ALLOC}: kSmallSize, largest small-pool request"
        ),
        "allocator_small_segment_bytes": Constant(
            2 * _MIB, "B", f"{_ALLOC}: kSmallBuffer, small-pool segment size"
        ),
        "allocator_large_segment_bytes": Constant(
            20 * _MIB, "B", f"{_ALLOC}: kLargeBuffer, segment for requests of 1–10 MiB"
        ),
        "allocator_min_large_alloc_bytes": Constant(
            10 * _MIB, "B", f"{_ALLOC}: kMinLargeAlloc, from here a request gets its own segment"
        ),
        "allocator_round_large_bytes": Constant(
            2 * _MIB, "B", f"{_ALLOC}: kRoundLarge, own segments rounded up to it"
        ),
        "allocator_fallback_fraction": Constant(
            0.10,
            "of the tensor peak",
            "estimate, not calibrated: reserved exceeds allocated by a few to ~20% in transformer "
            "training; used only when a result has neither a simulated allocator replay nor a "
            "CUDA measurement",
        ),
        # the CUDA context
        "cuda_context_bytes": Constant(
            450 * _MIB,
            "B",
            "published figures with lazy module loading (CUDA ≥ 11.7, PyTorch's default): "
            "287,047,680 B after a first tensor (pytorch/pytorch PR #86509), 'around 400MB' "
            "(pytorch/pytorch issue #109888), 426 MiB on an RTX 6000 Ada with torch 2.10+cu130 "
            "(unslothai/unsloth-zoo PR #1053); training loads more kernels, so the upper end, "
            "rounded up. Not measured here: no GPU was available",
        ),
        "cuda_context_bytes_eager_loading": Constant(
            1343 * _MIB,
            "B",
            "eager module loading (CUDA < 11.7, or torch < 1.13, which first set "
            "CUDA_MODULE_LOADING=LAZY by default: pytorch/pytorch PR #86509): every kernel of the "
            "loaded CUDA libraries is put in the context at start, '>1000MB' (ptrblck, "
            "pytorch/pytorch issue #107667); 1343 MiB read with NVML after a first tensor on a "
            "Tesla V100 16GB, PyTorch 1.x, CUDA 11 (transformers v4.21 docs, perf_train_gpu_one). "
            "One GPU's figure: the eager context grows with the kernels built for the architecture",
        ),
        # library workspaces
        "cublas_workspace_bytes_hopper_blackwell": Constant(
            32 * _MIB, "B", f"{_CUBLAS}: 4096 KiB × 8 for compute capability 9.x, 10.x, 12.x"
        ),
        "cublas_workspace_bytes_other": Constant(
            4096 * 1024 * 2 + 16 * 1024 * 8, "B", f"{_CUBLAS}: ':4096:2:16:8' default before Hopper"
        ),
        "hipblas_workspace_bytes": Constant(32 * _MIB, "B", f"{_CUBLAS}: ROCm default"),
        "hipblas_workspace_bytes_cdna3": Constant(128 * _MIB, "B", f"{_CUBLAS}: ROCm gfx94x/gfx95x (MI300)"),
        "cublas_handles_training": Constant(
            2,
            "handles",
            "a workspace per (handle, stream) and a handle per thread: the forward runs on the "
            "main thread, the backward on autograd's device thread",
        ),
        # attention kernels
        "attention_backward_bytes_per_query_element": Constant(
            4,
            "B",
            "FlashAttention backward (flash_api.cpp mha_bwd, vendored in PyTorch's "
            "aten/src/ATen/native/transformers/cuda/flash_attn): a float32 dq_accum of "
            "batch × seqlen_q × heads × head_dim, live during the backward kernel",
        ),
    }
)


def _c(name: str) -> float:
    return CONSTANTS[name].value


def allocator_model(alloc_conf: str | None = None) -> CachingAllocatorModel:
    """The caching-allocator model built from :data:`CONSTANTS`, under ``alloc_conf`` (a
    ``PYTORCH_CUDA_ALLOC_CONF`` string; default: this process's environment, where the user
    would start the training)."""
    conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "") if alloc_conf is None else alloc_conf
    model = CachingAllocatorModel(
        min_block_bytes=int(_c("allocator_min_block_bytes")),
        small_size_bytes=int(_c("allocator_small_size_bytes")),
        small_buffer_bytes=int(_c("allocator_small_segment_bytes")),
        large_buffer_bytes=int(_c("allocator_large_segment_bytes")),
        min_large_alloc_bytes=int(_c("allocator_min_large_alloc_bytes")),
        round_large_bytes=int(_c("allocator_round_large_bytes")),
    )
    return model.with_alloc_conf(conf)[0] if conf else model


_BIG_CUBLAS = {"hopper", "blackwell"}


def cublas_workspace_bytes(architecture: str | None, vendor: str | None = None) -> int:
    """One BLAS workspace on a GPU of ``architecture`` ("Hopper", "Ampere", "CDNA3", …)."""
    arch = (architecture or "").strip().lower()
    if (vendor or "").lower() == "amd" or arch.startswith("cdna"):
        key = "hipblas_workspace_bytes_cdna3" if arch == "cdna3" else "hipblas_workspace_bytes"
        return int(_c(key))
    if arch in _BIG_CUBLAS:
        return int(_c("cublas_workspace_bytes_hopper_blackwell"))
    return int(_c("cublas_workspace_bytes_other"))


def _simulation(result: TrialResult) -> SimulationRecord:
    return result.simulation or SimulationRecord()


def predict_gpu_need(
    result: TrialResult,
    gpu: GpuSpec | None = None,
    *,
    architecture: str | None = None,
    vendor: str | None = None,
    context_bytes: int | None = None,
    module_loading: str = "lazy",
) -> PredictedNeed:
    """The GPU memory ``result``'s step needs: its tensor peak plus the target's overheads.

    ``gpu`` (a catalog entry) or ``architecture``/``vendor`` pick the BLAS workspace size;
    ``context_bytes`` overrides the CUDA context estimate (e.g. one measured on the target);
    ``module_loading`` ``"eager"`` takes the context of a stack without lazy module loading
    (CUDA < 11.7 or torch < 1.13) instead of today's lazy one.
    Where ``vram-advisor calibrate`` saved a profile for ``gpu``, its measured context and
    workspaces replace the estimates (parts marked ``calibrated``).
    """
    if result.tensor_peak is None:
        raise ValueError(f"result of {result.model}/{result.plan} has no tensor peak ({result.reason})")
    peak = result.tensor_peak.peak_bytes
    sim = _simulation(result)
    if gpu is not None:
        architecture = architecture or gpu.architecture
        vendor = vendor or gpu.vendor

    replay = sim.cuda_allocator
    if replay is not None:
        allocator = max(0, replay.max_reserved_bytes - peak)
        allocator_source = replay.provenance  # estimated where extrapolated from a few blocks
    elif result.cuda is not None:
        allocator = max(0, result.cuda.max_reserved_bytes - peak)
        allocator_source = Provenance.MEASURED
    else:
        allocator = int(peak * _c("allocator_fallback_fraction"))
        allocator_source = Provenance.ESTIMATED

    est = Provenance.ESTIMATED
    calibration = _calibration(gpu) if context_bytes is None else None
    if calibration is not None:
        context = NeedPart(CONTEXT, calibration.context_bytes, Provenance.MEASURED, calibrated=True)
        workspaces = NeedPart(WORKSPACES, calibration.workspace_bytes, Provenance.MEASURED, calibrated=True)
    else:
        if module_loading not in ("lazy", "eager"):
            raise ValueError(f"module_loading must be 'lazy' or 'eager', got {module_loading!r}")
        name = "cuda_context_bytes_eager_loading" if module_loading == "eager" else "cuda_context_bytes"
        context = NeedPart(CONTEXT, int(_c(name)) if context_bytes is None else context_bytes, est)
        workspace = int(_c("cublas_handles_training")) * cublas_workspace_bytes(architecture, vendor)
        workspaces = NeedPart(WORKSPACES, workspace, est)

    attention = 0
    cost = sim.step_cost or StepCost()
    fused = any("backward" in name for name in cost.attention_ops)
    if fused and result.tensor_peak.peak_phase == "backward":
        attention = cost.max_attention_query_elements * int(
            _c("attention_backward_bytes_per_query_element")
        )
    parts = [*tensor_parts(result), NeedPart(ALLOCATOR, allocator, allocator_source), context, workspaces]
    if attention:
        parts.append(NeedPart(ATTENTION, attention, est))
    return PredictedNeed(tuple(parts))


def gpu_need(trial: TrialResult, gpu: GpuSpec) -> PredictedNeed:
    """What the recommender takes for ``trial``'s need on ``gpu``, each part with its provenance.

    A trial measured on the target takes the allocator's reserved peak (cuBLAS workspaces come
    from the allocator) and, where NVML reports it, this process's device memory beyond it (the
    context); the context is estimated otherwise. Any other trial gets :func:`predict_gpu_need`:
    the replayed caching allocator (simulated), the CUDA context, cuBLAS workspaces and
    fused-attention scratch (estimated).
    """
    if trial.cuda is None:
        return predict_gpu_need(trial, gpu)
    parts = list(tensor_parts(trial))
    assert trial.tensor_peak is not None
    peak = trial.tensor_peak.peak_bytes
    meas = Provenance.MEASURED
    proc = trial.nvml.peak_process_used_bytes if trial.nvml is not None else None
    reserved = trial.cuda.max_reserved_bytes
    parts.append(NeedPart(ALLOCATOR, max(0, reserved - peak), meas))
    calibration = _calibration(gpu)
    if proc is not None and proc > reserved:
        parts.append(NeedPart(CONTEXT, proc - reserved, meas))
    elif calibration is not None:
        parts.append(NeedPart(CONTEXT, calibration.context_bytes, meas, calibrated=True))
    else:
        parts.append(NeedPart(CONTEXT, int(_c("cuda_context_bytes")), Provenance.ESTIMATED))
    return PredictedNeed(tuple(parts))


def _calibration(gpu: GpuSpec | None) -> CalibrationProfile | None:
    """The user's calibration of ``gpu`` (``vram-advisor calibrate``), if one was saved."""
    return calibration_for(gpu.key) if gpu is not None else None


def observed_overheads(result: TrialResult) -> dict[str, int] | None:
    """The overheads a result measured on CUDA shows, for calibrating :data:`CONSTANTS`.

    ``allocator_overhead_bytes`` is ``max_memory_reserved`` − tensor peak; ``non_pytorch_bytes``
    (context, workspaces outside the allocator, other libraries) is NVML's peak for this
    process − ``max_memory_reserved``. ``None`` when the result was not measured on CUDA.
    """
    if result.cuda is None or result.tensor_peak is None:
        return None
    out = {
        "tensor_peak_bytes": result.tensor_peak.peak_bytes,
        "max_allocated_bytes": result.cuda.max_allocated_bytes,
        "max_reserved_bytes": result.cuda.max_reserved_bytes,
        "allocator_overhead_bytes": result.cuda.max_reserved_bytes - result.tensor_peak.peak_bytes,
    }
    if result.nvml is not None and result.nvml.peak_process_used_bytes is not None:
        out["non_pytorch_bytes"] = result.nvml.peak_process_used_bytes - result.cuda.max_reserved_bytes
    return out
