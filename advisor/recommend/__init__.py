"""The recommender: verdict types, pure ranking, backends, and the orchestration that ranks
every plan of a model for a target GPU and workload. It never imports the report layer."""

from advisor.recommend.core import *  # noqa: F403
from advisor.recommend.core import (  # noqa: F401
    ACTIVATIONS,
    ALLOCATOR,
    ATTENTION,
    CONTEXT,
    DEFAULT_GPU,
    FAILED,
    GRADIENTS,
    NOT_EVALUATED,
    OPTIMIZER,
    PARAMETERS,
    TARGET,
    WORKSPACES,
    candidate_plans,
    cut_settings,
    default_backends,
    need_from_overheads,
    parse_plan_list,
    plan_title,
    reproduce_command,
    step_time_on,
    target_present,
    tensor_parts,
)
from advisor.recommend.core import __all__ as _core_all
from advisor.recommend.workload import RankBy, Workload

__all__ = [*_core_all, "RankBy", "Workload"]
