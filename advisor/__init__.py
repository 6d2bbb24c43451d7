"""vram-advisor: which memory-saving techniques let your model train on your GPU.

The public API. Importing this package never imports the TUI (textual).
"""

from __future__ import annotations

__version__ = "0.1.0"

from advisor.api import profile
from advisor.errors import (
    AdvisorError,
    InvalidInputError,
    PlanError,
    ReportError,
    UnknownGpuError,
    UnknownModelError,
)
from advisor.models import ModelSource, ModuleSource, builtin_models, resolve_model
from advisor.plans import Cut, Plan
from profilers.records import (
    MemoryBreakdown,
    ParamCounts,
    Provenance,
    TensorPeak,
    Timing,
    TrialResult,
    TrialStatus,
)

__all__ = [
    "AdvisorError",
    "Cut",
    "InvalidInputError",
    "MemoryBreakdown",
    "ModelSource",
    "ModuleSource",
    "ParamCounts",
    "Plan",
    "PlanError",
    "Provenance",
    "ReportError",
    "TensorPeak",
    "Timing",
    "TrialResult",
    "TrialStatus",
    "UnknownGpuError",
    "UnknownModelError",
    "__version__",
    "builtin_models",
    "profile",
    "resolve_model",
]
