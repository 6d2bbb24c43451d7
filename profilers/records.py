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

from profilers.timeline import MemoryTimeline

__all__ = [
    "AllocatorPeak",
    "BackendStatus",
    "CudaMemory",
    "DistributedRecord",
    "HostMemory",
    "MemoryBreakdown",
    "NvmlMemory",
    "ParamCounts",
    "Provenance",
    "RepeatReplay",
    "RunMoments",
    "SimulationRecord",
    "StepCost",
    "TensorPeak",
    "Timing",
    "TrialResult",
    "TrialStatus",
]


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
    # a sharded step's all-gather / reduce-scatter buffers (FSDP2's, DDP's buckets); 0 on one GPU
    communication_buffer_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return (
            self.parameter_bytes
            + self.buffer_bytes
            + self.gradient_bytes
            + self.optimizer_state_bytes
            + self.input_bytes
            + self.activation_bytes
            + self.communication_buffer_bytes
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

    @property
    def spread(self) -> float | None:
        """How much the timed steps varied: ``(max − min) / median``, a fraction (0.25: the
        slowest step took a quarter of the median longer than the fastest). ``None`` with
        fewer than two timed steps or no median: one step cannot show its noise."""
        if self.steps < 2 or not self.median_step_time_s > 0:
            return None
        return (self.max_step_time_s - self.min_step_time_s) / self.median_step_time_s


@dataclass(frozen=True)
class StepCost:
    """What one optimizer step costs in arithmetic and memory traffic (counted, not timed).

    ``flops_by_dtype`` uses ``torch.utils.flop_counter``'s formulas (matmuls, convolutions,
    attention; attention counted dense, as torch does, even when causal). Bytes are what each
    op reads and writes (inputs and outputs, views excluded): eager PyTorch runs one kernel per
    op, so this is the traffic to device memory without fusion.
    """

    flops_by_dtype: dict[str, int] = field(default_factory=dict)  # "bfloat16" → FLOPs
    flop_op_bytes: int = 0  # bytes read + written by the ops that have FLOPs (matmul, attention)
    other_op_bytes: int = 0  # bytes read + written by every other op (elementwise, norms, copies)
    ops: int = 0
    attention_ops: dict[str, int] = field(default_factory=dict)  # attention kernel → calls
    max_attention_query_elements: int = 0  # largest query (B·H·S·D) given to a fused kernel
    provenance: Provenance = Provenance.SIMULATED

    @property
    def total_flops(self) -> int:
        return sum(self.flops_by_dtype.values())

    @property
    def total_bytes(self) -> int:
        return self.flop_op_bytes + self.other_op_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, with ``total_flops`` for readers."""
        out = _to_jsonable(self)
        out["total_flops"] = self.total_flops
        return out  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepCost:
        """Inverse of :meth:`to_dict`; missing counts are 0, unknown keys are ignored."""
        return cls(
            flops_by_dtype={str(k): int(v) for k, v in data.get("flops_by_dtype", {}).items()},
            flop_op_bytes=int(data.get("flop_op_bytes", 0)),
            other_op_bytes=int(data.get("other_op_bytes", 0)),
            ops=int(data.get("ops", 0)),
            attention_ops={str(k): int(v) for k, v in data.get("attention_ops", {}).items()},
            max_attention_query_elements=int(data.get("max_attention_query_elements", 0)),
            provenance=Provenance(data.get("provenance", Provenance.SIMULATED.value)),
        )


@dataclass(frozen=True)
class AllocatorPeak:
    """What the caching allocator would have held: like ``torch.cuda.max_memory_*``."""

    max_allocated_bytes: int  # blocks handed out (rounded, unsplit remainders included)
    max_reserved_bytes: int  # segments obtained with cudaMalloc
    segments: int
    provenance: Provenance = Provenance.SIMULATED


@dataclass(frozen=True)
class RunMoments:
    """Peak live tensor bytes at the moments of a run beyond the steady training step, and
    which moment decides the run's peak. ``None``: that moment is not predicted."""

    step_bytes: int  # the steady step's peak (the tensor peak)
    loading_bytes: int | None = None  # from_pretrained and the casts up to training
    loading_path: str = ""  # how the weights are loaded, e.g. "float32 checkpoint, .to(bfloat16)"
    saving_bytes: int | None = None  # a checkpoint save between steps (resident + what it allocates)
    saving_path: str = ""  # what is saved, e.g. "save_pretrained (MoE experts reverted)"

    @property
    def deciding(self) -> str:
        """The moment with the highest peak: "loading", "saving" or "step" (a tie goes to the
        step, then to loading)."""
        best, name = self.step_bytes, "step"
        for moment, value in (("loading", self.loading_bytes), ("saving", self.saving_bytes)):
            if value is not None and value > best:
                best, name = value, moment
        return name

    @property
    def peak_bytes(self) -> int:
        return max(self.step_bytes, self.loading_bytes or 0, self.saving_bytes or 0)


@dataclass(frozen=True)
class RepeatReplay:
    """How a simulated trial reached the model's full depth: extrapolated exactly from replays
    of a few repeats of its repeating block (``probes``), or replayed in full, and why."""

    extrapolated: bool
    blocks: int | None = None  # repeating blocks of the real model (a block is period_layers layers)
    probes: tuple[int, ...] = ()  # blocks in each replayed probe
    period_layers: int = 1  # layers per block: 2 for alternating sliding/global attention
    prefix_layers: int = 0  # layers before the repeats, kept in every probe (dense before MoE)
    suffix_layers: int = 0  # layers after the repeats, kept in every probe
    layers_path: str = ""  # the ModuleList of the layers, e.g. "model.layers"
    allocator_exact: bool | None = None  # the caching-allocator replay was affine on the probes
    reason: str | None = None  # why the full replay (no repeating block, not affine, asked for)
    # of ``blocks``, the first ones a cut treats unlike the rest (freeze-layers), extrapolated as
    # a segment of their own: ``probes`` then are the blocks of each segment in the probes
    frozen_blocks: int = 0

    @property
    def detail(self) -> str:
        """``simulated (extrapolated from 2..4 of 32 blocks)`` or ``simulated (full replay: …)``."""
        if self.extrapolated and self.probes and self.frozen_blocks and self.blocks is not None:
            span = f"{self.probes[0]}..{self.probes[-1]}"
            return (f"simulated (extrapolated from {span} of {self.frozen_blocks} frozen and {span} of "
                    f"{self.blocks - self.frozen_blocks} other blocks)")  # fmt: skip
        if self.extrapolated and self.probes:
            return f"simulated (extrapolated from {self.probes[0]}..{self.probes[-1]} of {self.blocks} blocks)"
        return f"simulated (full replay: {self.reason or 'asked for'})"


@dataclass(frozen=True)
class SimulationRecord:
    """What a simulated trial adds to its :class:`TrialResult` beyond the tensor peak.

    Every part is optional: a failed replay stops early, and an estimated trial may carry only
    the step cost of the plan whose FLOPs stand in for its own.
    """

    fake_device: str | None = None  # the fake device the step ran on: "cpu" or "cuda"
    target: str | None = None  # where the step is meant to run: "cpu" or "cuda"
    tokens_per_step: int | None = None
    optimizer_foreach: bool | None = None  # target cuda: whether foreach was switched on
    phase_peaks: dict[str, int] = field(default_factory=dict)  # phase → its peak of live bytes
    # phase → live bytes when it first began ("backward": resident + saved for backward + loss)
    phase_start_bytes: dict[str, int] = field(default_factory=dict)
    step_cost: StepCost | None = None  # FLOPs and bytes moved (when counted)
    cuda_allocator: AllocatorPeak | None = None  # target cuda: the caching allocator replayed
    unknown_value_reads: int = 0  # values read back that were not known (answered 0 / False)
    autocast_policy: str | None = None  # whose autocast op lists: "cuda policy (torch 2.13)"
    # activation offload: peak of host (pinned) bytes holding saved tensors; None when none
    host_peak_bytes: int | None = None
    # why the figures are an upper bound, e.g. "upper bound: eager replay of a compiled plan"
    upper_bound: str | None = None
    repeats: RepeatReplay | None = None  # extrapolated from a few repeats of the block, or why not
    moe_routing: str | None = None  # mixture of experts: the routing assumed, in one line
    moments: RunMoments | None = None  # peaks over the whole run (loading vs step), when predicted

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (the step cost with its ``total_flops``)."""
        out = _to_jsonable(self)
        if self.step_cost is not None:
            out["step_cost"] = self.step_cost.to_dict()
        return out  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationRecord:
        """Inverse of :meth:`to_dict`; also reads the untyped ``extra["simulation"]`` dict of
        earlier versions (the same keys, absent ones meaning "not recorded")."""
        return _from_dict(cls, data)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DistributedRecord:
    """What one rank of a distributed plan holds and sends: the rank's figures, not the sum.

    Which rank of how many, under which strategy; ``comm_bytes_per_step`` is what this rank
    sends per optimizer step (ring collectives, estimated); ``layout`` names the bytes by role
    where the engine's layout was modelled (ZeRO), and ``settings`` the engine settings assumed
    (bucket sizes, in DeepSpeed's config keys). For a measured ``torchrun`` trial,
    ``rank_peak_bytes`` holds every rank's peak (the result's tensor peak is their maximum).
    """

    world_size: int
    rank: int = 0  # the rank whose breakdown the result carries
    strategy: str = ""  # the strategy cut's label: "fsdp2", "ddp", "hsdp(shard=2)", "zero-3"
    nodes: int = 1
    # bytes live in communication buffers at the peak (also in the breakdown)
    communication_buffer_bytes: int = 0
    comm_bytes_per_step: int | None = None  # bytes this rank sends per step (all-gather + reduce)
    host_bytes: int = 0  # offloaded to host memory (optimizer partition, parameters)
    padding_bytes: int = 0  # alignment padding of flat buffers and partitions (in the peak)
    layout: dict[str, int] = field(default_factory=dict)  # role → bytes on this rank
    settings: dict[str, Any] = field(default_factory=dict)  # engine settings assumed
    note: str | None = None  # how the figures were obtained, in one line
    provenance: Provenance = Provenance.SIMULATED
    rank_peak_bytes: tuple[int, ...] = ()  # measured: every rank's tensor peak, rank order
    runs: int = 1  # measured: how many torchrun jobs the peaks are the maximum over
    backend: str = ""  # the process group: "fake" (simulated), "gloo", "nccl"

    @property
    def spread(self) -> float | None:
        """(max − min) / max over the ranks' peaks; ``None`` with fewer than two."""
        if len(self.rank_peak_bytes) < 2 or max(self.rank_peak_bytes) == 0:
            return None
        return (max(self.rank_peak_bytes) - min(self.rank_peak_bytes)) / max(self.rank_peak_bytes)


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
    simulation: SimulationRecord | None = None  # what a simulated trial adds
    timeline: MemoryTimeline | None = None  # live bytes over the step, when asked for
    distributed: DistributedRecord | None = None  # one rank of a distributed plan

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
            out["timing"]["spread"] = self.timing.spread
        if self.params is not None:
            out["params"]["trainable_percent"] = self.params.trainable_percent
        if self.tensor_peak is not None:
            out["tensor_peak"]["breakdown"]["total_bytes"] = self.tensor_peak.breakdown.total_bytes
        if self.simulation is not None:
            out["simulation"] = self.simulation.to_dict()
        if self.timeline is not None:
            out["timeline"] = self.timeline.to_dict()
        if self.distributed is not None:
            out["distributed"]["spread"] = self.distributed.spread
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so newer files still load.

        Files of earlier versions kept the simulation's figures in ``extra["simulation"]``:
        they load into :attr:`simulation`.
        """
        extra = data.get("extra")
        if data.get("simulation") is None and isinstance(extra, dict) and "simulation" in extra:
            extra = dict(extra)
            legacy = extra.pop("simulation")
            data = {**data, "extra": extra, "simulation": legacy if isinstance(legacy, dict) else None}
        return _from_dict(cls, data)  # type: ignore[no-any-return]


# -- (de)serialisation of the records -------------------------------------------------------

_NESTED: dict[str, type] = {
    "params": ParamCounts,
    "tensor_peak": TensorPeak,
    "breakdown": MemoryBreakdown,
    "cuda": CudaMemory,
    "nvml": NvmlMemory,
    "host": HostMemory,
    "timing": Timing,
    "simulation": SimulationRecord,
    "step_cost": StepCost,
    "cuda_allocator": AllocatorPeak,
    "repeats": RepeatReplay,
    "distributed": DistributedRecord,
    "moments": RunMoments,
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
        if value is not None and f.name == "timeline":
            value = MemoryTimeline.from_dict(value)
        elif value is not None and f.name in _NESTED:
            value = _from_dict(_NESTED[f.name], value)
        elif f.name == "provenance":
            value = Provenance(value)
        elif f.name == "status":
            value = TrialStatus(value)
        elif f.name == "backends":
            value = tuple(BackendStatus(**b) for b in value)
        elif f.name in ("cuts", "probes", "rank_peak_bytes"):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
