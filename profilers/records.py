"""Frozen records that a trial produces: the only currency between layers.

Bytes stay raw integers and times raw seconds until a front end renders them. Every group of
figures carries its provenance: ``measured`` (this machine ran it), ``simulated`` (the real step
replayed on fake tensors) or ``estimated`` (a formula or a fit).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


class Provenance(str, enum.Enum):
    """Where a figure comes from."""

    MEASURED = "measured"
    SIMULATED = "simulated"
    ESTIMATED = "estimated"


class TrialStatus(str, enum.Enum):
    """How a trial ended."""

    OK = "ok"
    OOM = "oom"
    UNSUPPORTED = "unsupported"
    ERROR = "error"


@dataclass(frozen=True)
class BackendStatus:
    """Whether a measurement backend could be used, and if not, why."""

    name: str  # "cpu-tensors", "cuda", "nvml", "host-rss"
    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts of the model as trained under the plan (unique tensors only)."""

    total: int
    trainable: int
    parameter_bytes: int  # bytes of all parameters (unique storages)
    trainable_bytes: int
    provenance: Provenance = Provenance.MEASURED

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


@dataclass(frozen=True)
class MemoryBreakdown:
    """Live tensor bytes at the step's peak, by role. The parts add up to the peak."""

    parameter_bytes: int
    buffer_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    input_bytes: int
    activation_bytes: int  # activations saved for backward and temporaries

    @property
    def total_bytes(self) -> int:
        return (
            self.parameter_bytes
            + self.buffer_bytes
            + self.gradient_bytes
            + self.optimizer_state_bytes
            + self.input_bytes
            + self.activation_bytes
        )


@dataclass(frozen=True)
class TensorPeak:
    """Peak of live tensor bytes during one steady-state training step (exact, storage level)."""

    peak_bytes: int
    breakdown: MemoryBreakdown  # at the peak
    resident_before_step_bytes: int  # what was live when the step began
    peak_phase: str  # "forward", "backward", "optimizer" or "zero_grad"
    provenance: Provenance = Provenance.MEASURED


@dataclass(frozen=True)
class CudaMemory:
    """The CUDA caching allocator's view of the tracked step (torch.cuda.memory_stats)."""

    device_name: str
    max_allocated_bytes: int
    max_reserved_bytes: int
    max_active_bytes: int
    total_memory_bytes: int
    provenance: Provenance = Provenance.MEASURED


@dataclass(frozen=True)
class NvmlMemory:
    """NVML's view, sampled in a background thread during the whole trial."""

    device_name: str
    peak_device_used_bytes: int  # whole device: CUDA context, other processes, allocator
    peak_process_used_bytes: int | None  # this process, when the driver reports it
    total_memory_bytes: int
    samples: int
    provenance: Provenance = Provenance.MEASURED


@dataclass(frozen=True)
class HostMemory:
    """Resident set size of this process: context only, not an exact tensor count."""

    rss_before_bytes: int
    rss_peak_bytes: int  # largest RSS sampled during the trial
    provenance: Provenance = Provenance.MEASURED


@dataclass(frozen=True)
class Timing:
    """Step times of uninstrumented steady-state steps (after warm-up)."""

    steps: int
    median_step_time_s: float
    min_step_time_s: float
    max_step_time_s: float
    tokens_per_step: int
    samples_per_step: int
    provenance: Provenance = Provenance.MEASURED

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.median_step_time_s if self.median_step_time_s else 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples_per_step / self.median_step_time_s if self.median_step_time_s else 0.0


@dataclass(frozen=True)
class TrialResult:
    """Everything one trial of one plan on one device found out."""

    model: str
    plan: str  # plan name, "baseline" for full fine-tuning in fp32 with AdamW
    cuts: tuple[str, ...]
    device: str  # "cpu", "cuda:0", "fake-cpu"
    batch_size: int  # micro-batch
    seq_len: int
    status: TrialStatus
    reason: str | None = None
    accumulation_steps: int = 1
    params: ParamCounts | None = None
    tensor_peak: TensorPeak | None = None
    cuda: CudaMemory | None = None
    nvml: NvmlMemory | None = None
    host: HostMemory | None = None
    timing: Timing | None = None
    backends: tuple[BackendStatus, ...] = ()
    wall_time_s: float = 0.0  # the whole trial, build included
    extra: dict[str, Any] = field(default_factory=dict)  # plan-specific figures (JSON-safe)

    @property
    def ok(self) -> bool:
        return self.status is TrialStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (enums as their values); derived figures are included for readers."""
        out = _to_jsonable(self)
        assert isinstance(out, dict)
        if self.timing is not None:
            out["timing"]["tokens_per_s"] = self.timing.tokens_per_s
            out["timing"]["samples_per_s"] = self.timing.samples_per_s
        if self.params is not None:
            out["params"]["trainable_percent"] = self.params.trainable_percent
        if self.tensor_peak is not None:
            out["tensor_peak"]["breakdown"]["total_bytes"] = self.tensor_peak.breakdown.total_bytes
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so newer files still load."""
        return _from_dict(cls, data)


# -- (de)serialisation of the records -------------------------------------------------------

_NESTED: dict[str, type] = {
    "params": ParamCounts,
    "tensor_peak": TensorPeak,
    "breakdown": MemoryBreakdown,
    "cuda": CudaMemory,
    "nvml": NvmlMemory,
    "host": HostMemory,
    "timing": Timing,
}


def _to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    return obj


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if value is not None and f.name in _NESTED:
            value = _from_dict(_NESTED[f.name], value)
        elif f.name == "provenance":
            value = Provenance(value)
        elif f.name == "status":
            value = TrialStatus(value)
        elif f.name == "backends":
            value = tuple(BackendStatus(**b) for b in value)
        elif f.name == "cuts":
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
