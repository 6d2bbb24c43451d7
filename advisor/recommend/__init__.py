"""The recommender: verdict types (:mod:`~advisor.recommend.types`), pure ranking
(:mod:`~advisor.recommend.ranking`), backends (:mod:`~advisor.recommend.backends`), the default
candidate plans (:mod:`~advisor.recommend.candidates`) and the orchestration that ranks every
plan of a model for a target GPU and workload (:mod:`~advisor.recommend.orchestrate`). It never
imports the report layer.
"""

from advisor.engines.need import (
    ACTIVATIONS,
    ALLOCATOR,
    ATTENTION,
    CONTEXT,
    GRADIENTS,
    OPTIMIZER,
    OVERHEAD_PARTS,
    PARAMETERS,
    TENSOR_PARTS,
    WORKSPACES,
    NeedPart,
    PredictedNeed,
    tensor_parts,
)
from advisor.recommend.backends import (
    Backends,
    cut_settings,
    default_backends,
    estimated_trial,
    speed_sibling,
    step_time_on,
    target_present,
)
from advisor.recommend.candidates import CANDIDATE_COMBOS, batching_plans, candidate_plans
from advisor.recommend.command import DEFAULT_GPU, reproduce_command
from advisor.recommend.orchestrate import recommend
from advisor.recommend.ranking import (
    NOISY_SPREAD,
    estimate_max_batch,
    is_noisy,
    largest_fitting_batch,
    mark_pareto,
    plan_title,
    rank_verdicts,
    target_exclusion,
    why_line,
)
from advisor.recommend.types import (
    CATALOG,
    FAILED,
    INPUT,
    KIND,
    NOT_EVALUATED,
    TARGET,
    Mode,
    PathCost,
    PlanVerdict,
    Recommendation,
    ScratchComparison,
)
from advisor.recommend.workload import RankBy, Workload

__all__ = [
    "ACTIVATIONS",
    "ALLOCATOR",
    "ATTENTION",
    "CANDIDATE_COMBOS",
    "CATALOG",
    "CONTEXT",
    "DEFAULT_GPU",
    "FAILED",
    "GRADIENTS",
    "INPUT",
    "KIND",
    "NOISY_SPREAD",
    "NOT_EVALUATED",
    "OPTIMIZER",
    "OVERHEAD_PARTS",
    "PARAMETERS",
    "TARGET",
    "TENSOR_PARTS",
    "WORKSPACES",
    "Backends",
    "Mode",
    "NeedPart",
    "PathCost",
    "PlanVerdict",
    "PredictedNeed",
    "RankBy",
    "Recommendation",
    "ScratchComparison",
    "Workload",
    "batching_plans",
    "candidate_plans",
    "cut_settings",
    "default_backends",
    "estimate_max_batch",
    "estimated_trial",
    "is_noisy",
    "largest_fitting_batch",
    "mark_pareto",
    "plan_title",
    "rank_verdicts",
    "recommend",
    "reproduce_command",
    "speed_sibling",
    "step_time_on",
    "target_exclusion",
    "target_present",
    "tensor_parts",
    "why_line",
]

