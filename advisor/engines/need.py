"""The GPU memory one training step needs on a target: named parts, each with its provenance.

A :class:`PredictedNeed` is the tensor peak split by role (parameters, gradients, optimizer
state, activations) plus the target's overheads (allocator rounding, CUDA context, kernel
workspaces, attention scratch). :func:`advisor.engines.overheads.predict_gpu_need` and
:func:`advisor.engines.overheads.gpu_need` build one from a trial; reports keep it as
``{"value", "unit", "provenance", "parts"}`` (:meth:`PredictedNeed.to_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from advisor.core.budget import DEFAULT_MARGIN, check_margin, fits_in, usable_bytes
from advisor.core.errors import InvalidInputError
from profilers.records import Provenance, TrialResult

__all__ = [
    "ACTIVATIONS",
    "ALLOCATOR",
    "ATTENTION",
    "COMMUNICATION",
    "CONTEXT",
    "DEFAULT_MARGIN",
    "GRADIENTS",
    "OPTIMIZER",
    "OVERHEAD_PARTS",
    "PARAMETERS",
    "TENSOR_PARTS",
    "WORKSPACES",
    "NeedPart",
    "PredictedNeed",
    "check_margin",
    "fits_in",
    "tensor_parts",
    "usable_bytes",
    "weakest",
]

# part names, in the order they stack in tables and charts
PARAMETERS = "parameters"
GRADIENTS = "gradients"
OPTIMIZER = "optimizer state"
ACTIVATIONS = "activations"  # activations + temporaries + the input batch
ALLOCATOR = "allocator rounding"
CONTEXT = "CUDA context"
WORKSPACES = "kernel workspaces"
ATTENTION = "attention scratch"  # fused-attention backward buffers on CUDA
COMMUNICATION = "communication buffers"  # distributed plans: all-gather / reduce buckets
TENSOR_PARTS = (PARAMETERS, GRADIENTS, OPTIMIZER, ACTIVATIONS, COMMUNICATION)
OVERHEAD_PARTS = (ALLOCATOR, CONTEXT, WORKSPACES, ATTENTION)


# strongest first: a sum is as good as its weakest part
_STRENGTH = {Provenance.MEASURED: 0, Provenance.SIMULATED: 1, Provenance.ESTIMATED: 2}


def weakest(provenances: Sequence[Provenance]) -> Provenance:
    """The least direct of several provenances (measured > simulated > estimated)."""
    return max(provenances, key=_STRENGTH.__getitem__) if provenances else Provenance.ESTIMATED


@dataclass(frozen=True)
class NeedPart:
    """One part of the predicted need, with where it comes from."""

    name: str  # one of TENSOR_PARTS or OVERHEAD_PARTS (or a backend's own overhead name)
    size_bytes: int
    provenance: Provenance
    calibrated: bool = False  # measured on the user's own GPU by `vram-advisor calibrate`

    @property
    def source_text(self) -> str:
        """Its provenance for people: ``measured (calibrated)`` for a calibration's figure."""
        return f"{self.provenance.value} (calibrated)" if self.calibrated else self.provenance.value


@dataclass(frozen=True)
class PredictedNeed:
    """GPU memory one training step needs on the target: tensor peak by role plus overheads."""

    parts: tuple[NeedPart, ...]

    @property
    def total_bytes(self) -> int:
        return sum(p.size_bytes for p in self.parts)

    @property
    def tensor_bytes(self) -> int:
        """The tensor peak: the parts in :data:`TENSOR_PARTS`."""
        return sum(p.size_bytes for p in self.parts if p.name in TENSOR_PARTS)

    @property
    def provenance(self) -> Provenance:
        return weakest([p.provenance for p in self.parts])

    @property
    def calibrated(self) -> bool:
        """Whether the device overheads come from a calibration of this GPU (not the catalog)."""
        return any(p.calibrated for p in self.parts)

    def part(self, name: str) -> int:
        """The bytes of the part ``name`` (0 when there is none)."""
        return sum(p.size_bytes for p in self.parts if p.name == name)

    def source(self, name: str) -> Provenance:
        """Where the part ``name`` comes from (``estimated`` when there is none)."""
        return weakest([p.provenance for p in self.parts if p.name == name])

    # -- the overhead model's components -----------------------------------------------------

    @property
    def tensor_peak_bytes(self) -> int:
        return self.tensor_bytes

    @property
    def tensor_peak_source(self) -> Provenance:
        return weakest([p.provenance for p in self.parts if p.name in TENSOR_PARTS])

    @property
    def allocator_overhead_bytes(self) -> int:
        """Reserved beyond the live tensors (rounding, segments)."""
        return self.part(ALLOCATOR)

    @property
    def allocator_source(self) -> Provenance:
        """Simulated (replay), measured (CUDA) or estimated (a fraction of the peak)."""
        return self.source(ALLOCATOR)

    @property
    def cuda_context_bytes(self) -> int:
        return self.part(CONTEXT)

    @property
    def workspace_bytes(self) -> int:
        """cuBLAS/hipBLAS workspaces."""
        return self.part(WORKSPACES)

    @property
    def attention_workspace_bytes(self) -> int:
        """Fused-attention backward scratch on CUDA."""
        return self.part(ATTENTION)

    @property
    def reserved_bytes(self) -> int:
        """What ``torch.cuda.max_memory_reserved`` would show (allocator view, no context)."""
        return self.tensor_bytes + self.allocator_overhead_bytes

    def fits(self, memory_bytes: int, margin: float = DEFAULT_MARGIN) -> bool:
        """Whether the need fits ``memory_bytes`` with a share ``margin`` kept free
        (:func:`fits_in`, the one fit rule)."""
        return fits_in(self.total_bytes, memory_bytes, margin)

    # -- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "unit", "provenance", "calibrated", "parts": [{"name", "value", "unit",
        "provenance", "calibrated"}]}``."""
        return {
            "value": self.total_bytes,
            "unit": "bytes",
            "provenance": self.provenance.value,
            "calibrated": self.calibrated,
            "parts": [
                {
                    "name": p.name,
                    "value": p.size_bytes,
                    "unit": "bytes",
                    "provenance": p.provenance.value,
                    "calibrated": p.calibrated,
                }
                for p in self.parts
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PredictedNeed:
        """Inverse of :meth:`to_dict` (``KeyError``/``ValueError`` on a damaged dict)."""
        return cls(
            tuple(
                NeedPart(str(p["name"]), int(p["value"]), Provenance(p["provenance"]), bool(p.get("calibrated", False)))
                for p in d["parts"]
            )
        )


def tensor_parts(trial: TrialResult) -> tuple[NeedPart, ...]:
    """The tensor peak of a trial as need parts (parameters, gradients, optimizer, activations)."""
    tp = trial.tensor_peak
    if tp is None:
        raise InvalidInputError(f"trial of {trial.plan} has no tensor peak", "run it with track_memory")
    b, src = tp.breakdown, tp.provenance
    parts: tuple[NeedPart, ...] = (
        NeedPart(PARAMETERS, b.parameter_bytes + b.buffer_bytes, src),
        NeedPart(GRADIENTS, b.gradient_bytes, src),
        NeedPart(OPTIMIZER, b.optimizer_state_bytes, src),
        NeedPart(ACTIVATIONS, b.activation_bytes + b.input_bytes, src),
    )
    if b.communication_buffer_bytes:  # one rank of a distributed plan
        parts += (NeedPart(COMMUNICATION, b.communication_buffer_bytes, src),)
    return parts
