"""vram-advisor: which memory-saving techniques let your model train on your GPU.

The public API. Importing this package never imports the TUI (textual).
"""

from __future__ import annotations

__version__ = "0.1.0"

from advisor.api import advise, profile, sweep
from advisor.convergence import ConvergenceResult, LossCurve, convergence_probe
from advisor.cuts import PlanSpace, default_cuts, parse_cuts, parse_plans
from advisor.errors import (
    AdvisorError,
    InvalidInputError,
    PlanError,
    ReportError,
    UnknownGpuError,
    UnknownModelError,
)
from advisor.estimate import EstimatedPeak, estimate_peak
from advisor.flops import StepTimeEstimate, estimate_for_gpu
from advisor.gpus import GpuSpec, custom_gpu, get_gpu, list_gpus, parse_memory
from advisor.growth import GrowthFit, fit_growth, simulate_growth
from advisor.models import ModelSource, ModuleSource, builtin_models, resolve_model
from advisor.overheads import predict_gpu_need
from advisor.plans import Cut, Plan
from advisor.recommend import Advice, PlanVerdict, PredictedNeed, Recommendation
from advisor.report import load_report
from advisor.simulate import simulate
from advisor.sweep import PlanChange, SweepProgress, SweepResult, load_sweep
from advisor.workload import RankBy, Workload
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
    "Advice",
    "AdvisorError",
    "ConvergenceResult",
    "Cut",
    "EstimatedPeak",
    "GpuSpec",
    "GrowthFit",
    "InvalidInputError",
    "LossCurve",
    "MemoryBreakdown",
    "ModelSource",
    "ModuleSource",
    "ParamCounts",
    "Plan",
    "PlanChange",
    "PlanError",
    "PlanSpace",
    "PlanVerdict",
    "PredictedNeed",
    "Provenance",
    "RankBy",
    "Recommendation",
    "ReportError",
    "StepTimeEstimate",
    "SweepProgress",
    "SweepResult",
    "TensorPeak",
    "Timing",
    "TrialResult",
    "TrialStatus",
    "UnknownGpuError",
    "UnknownModelError",
    "Workload",
    "__version__",
    "advise",
    "builtin_models",
    "convergence_probe",
    "custom_gpu",
    "default_cuts",
    "estimate_for_gpu",
    "estimate_peak",
    "fit_growth",
    "get_gpu",
    "list_gpus",
    "load_report",
    "load_sweep",
    "parse_cuts",
    "parse_memory",
    "parse_plans",
    "predict_gpu_need",
    "profile",
    "resolve_model",
    "simulate",
    "simulate_growth",
    "sweep",
]
