"""vram-advisor: which memory-saving techniques let your model train on your GPU.

The public API, grouped by the subpackage that owns each name (see ``docs/architecture.md``).
Names load on first use, so ``import advisor`` is quick and never imports the TUI (textual);
old module paths (``advisor.cuts``, ``advisor.gpus``, …) still import, with a
``DeprecationWarning`` naming the new place.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from advisor import _compat
from advisor.core.version import __version__

# name -> the module that defines it, one group per subpackage (the order of the layers)
_API = {
    "profile": "advisor.api",
    "simulate": "advisor.api",
    "sweep": "advisor.api",
    "advise": "advisor.api",
    "check_config": "advisor.api",
    "watch": "advisor.api",
    "timeline": "advisor.api",
    "advise_cluster": "advisor.api",
}
_CORE = {
    "AdvisorError": "advisor.core.errors",
    "InvalidInputError": "advisor.core.errors",
    "OutputPathError": "advisor.core.errors",
    "PlanError": "advisor.core.errors",
    "ReportError": "advisor.core.errors",
    "UnknownGpuError": "advisor.core.errors",
    "UnknownModelError": "advisor.core.errors",
    "parse_memory": "advisor.core.units",
    "LengthDistribution": "advisor.core.lengths",
    "parse_lengths": "advisor.core.lengths",
}
_CATALOG = {
    "GpuSpec": "advisor.catalog.gpus",
    "custom_gpu": "advisor.catalog.gpus",
    "get_gpu": "advisor.catalog.gpus",
    "list_gpus": "advisor.catalog.gpus",
}
_MODELS = {
    "ModelSource": "advisor.models",
    "ModuleSource": "advisor.models",
    "builtin_models": "advisor.models",
    "resolve_model": "advisor.models",
    "dataset_lengths": "advisor.models.datasets",
}
_PLANS = {
    "Cut": "advisor.plans",
    "Plan": "advisor.plans",
    "PlanSpace": "advisor.plans",
    "default_cuts": "advisor.plans",
    "parse_cuts": "advisor.plans",
    "parse_plans": "advisor.plans",
    "ConfigConflictError": "advisor.plans.configs",
    "ConfigError": "advisor.plans.configs",
    "ConfigNotSupportedError": "advisor.plans.configs",
    "ConfigPlan": "advisor.plans.configs",
    "plan_from_config": "advisor.plans.configs",
}
_ENGINES = {
    "ConvergenceResult": "advisor.engines.convergence",
    "LossCurve": "advisor.engines.convergence",
    "convergence_probe": "advisor.engines.convergence",
    "PruningQuality": "advisor.engines.prune_quality",
    "pruning_probe": "advisor.engines.prune_quality",
    "EstimatedPeak": "advisor.engines.estimate",
    "estimate_peak": "advisor.engines.estimate",
    "StepTimeEstimate": "advisor.engines.flops",
    "estimate_for_gpu": "advisor.engines.flops",
    "GrowthFit": "advisor.engines.growth",
    "fit_growth": "advisor.engines.growth",
    "simulate_growth": "advisor.engines.growth",
    "predict_gpu_need": "advisor.engines.overheads",
    "PlanChange": "advisor.engines.sweep",
    "SweepProgress": "advisor.engines.sweep",
    "SweepResult": "advisor.engines.sweep",
    "load_sweep": "advisor.engines.sweep",
}
_RECOMMEND = {
    "PlanVerdict": "advisor.recommend",
    "PredictedNeed": "advisor.engines.need",
    "Recommendation": "advisor.recommend",
    "RankBy": "advisor.recommend",
    "Workload": "advisor.recommend",
    "ClusterRecommendation": "advisor.recommend.cluster",
}
_REPORT = {
    "Advice": "advisor.report",
    "Watch": "advisor.report.watch",
    "WatchReport": "advisor.report.watch",
    "load_report": "advisor.report",
    "config_snippets": "advisor.report.configs",
}
_RECORDS = {  # the runtime's result types (profilers.records)
    "MemoryTimeline": "profilers.timeline",
    "DistributedRecord": "profilers.records",
    "MemoryBreakdown": "profilers.records",
    "ParamCounts": "profilers.records",
    "Provenance": "profilers.records",
    "TensorPeak": "profilers.records",
    "Timing": "profilers.records",
    "TrialResult": "profilers.records",
    "TrialStatus": "profilers.records",
}
_WHERE: dict[str, str] = {
    **_API, **_CORE, **_CATALOG, **_MODELS, **_PLANS, **_ENGINES, **_RECOMMEND, **_REPORT, **_RECORDS,
}  # fmt: skip

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'advisor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


_compat.install()

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from advisor.api import advise, advise_cluster, check_config, profile, simulate, sweep, timeline, watch
    from advisor.catalog.gpus import GpuSpec, custom_gpu, get_gpu, list_gpus
    from advisor.core.errors import (
        AdvisorError,
        InvalidInputError,
        OutputPathError,
        PlanError,
        ReportError,
        UnknownGpuError,
        UnknownModelError,
    )
    from advisor.core.lengths import LengthDistribution, parse_lengths
    from advisor.core.units import parse_memory
    from advisor.engines.convergence import ConvergenceResult, LossCurve, convergence_probe
    from advisor.engines.estimate import EstimatedPeak, estimate_peak
    from advisor.engines.flops import StepTimeEstimate, estimate_for_gpu
    from advisor.engines.growth import GrowthFit, fit_growth, simulate_growth
    from advisor.engines.need import PredictedNeed
    from advisor.engines.overheads import predict_gpu_need
    from advisor.engines.prune_quality import PruningQuality, pruning_probe
    from advisor.engines.sweep import PlanChange, SweepProgress, SweepResult, load_sweep
    from advisor.models import ModelSource, ModuleSource, builtin_models, resolve_model
    from advisor.models.datasets import dataset_lengths
    from advisor.plans import Cut, Plan, PlanSpace, default_cuts, parse_cuts, parse_plans
    from advisor.plans.configs import (
        ConfigConflictError,
        ConfigError,
        ConfigNotSupportedError,
        ConfigPlan,
        plan_from_config,
    )
    from advisor.recommend import PlanVerdict, RankBy, Recommendation, Workload
    from advisor.recommend.cluster import ClusterRecommendation
    from advisor.report import Advice, load_report
    from advisor.report.configs import config_snippets
    from advisor.report.watch import Watch, WatchReport
    from profilers.records import (
        DistributedRecord,
        MemoryBreakdown,
        ParamCounts,
        Provenance,
        TensorPeak,
        Timing,
        TrialResult,
        TrialStatus,
    )
    from profilers.timeline import MemoryTimeline
