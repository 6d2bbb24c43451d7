"""Plans: Cut and Plan types, the cuts, one parser for plan text, the plan space, one builder.

The baseline plan is full fine-tuning in fp32 with AdamW. A :class:`Cut` changes that in up to
three places (its recipe, the built model, the step program); each cut class carries its own
traits (title, defaults, whether it can be simulated, what it needs, its part of the estimate,
its code fragment), so a new cut is one class in one file under :mod:`advisor.plans.cuts`.
"""

from advisor.plans.build import (
    OPTIMIZERS,
    build_model,
    build_program,
    finish_program,
    make_optimizer,
    prepare,
    program_builder,
    trial_spec,
)
from advisor.plans.code import TrainingCode
from advisor.plans.cuts import CUTS, default_cuts, describe_cuts, register_cut
from advisor.plans.parse import (
    CUT_SYNTAX_HINT,
    PLAN_SYNTAX_HINT,
    parse_cut,
    parse_cuts,
    parse_plan,
    parse_plans,
)
from advisor.plans.space import (
    PlanSpace,
    PrunedPlan,
    check_plan,
    combinations,
    explicit_plans,
    singles,
    user_plans,
)
from advisor.plans.types import BASELINE, BuildContext, Cut, Plan, Recipe, conflict_between, redundancy_in
from advisor.plans.view import EstimateView

__all__ = [
    "BASELINE",
    "CUTS",
    "CUT_SYNTAX_HINT",
    "OPTIMIZERS",
    "PLAN_SYNTAX_HINT",
    "BuildContext",
    "Cut",
    "EstimateView",
    "Plan",
    "PlanSpace",
    "PrunedPlan",
    "Recipe",
    "TrainingCode",
    "build_model",
    "build_program",
    "check_plan",
    "combinations",
    "conflict_between",
    "default_cuts",
    "describe_cuts",
    "explicit_plans",
    "finish_program",
    "make_optimizer",
    "parse_cut",
    "parse_cuts",
    "parse_plan",
    "parse_plans",
    "prepare",
    "program_builder",
    "redundancy_in",
    "register_cut",
    "singles",
    "trial_spec",
    "user_plans",
]
