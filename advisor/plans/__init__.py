"""Plans: Cut and Plan types, the cuts, one parser for plan text, the plan space, one builder.

The baseline plan is full fine-tuning in fp32 with AdamW. A :class:`Cut` changes that in up to
three places (its recipe, the built model, the step program); each cut class carries its own
traits (title, defaults, whether it can be simulated, what it needs), so a new cut is one class.
"""

from advisor.plans.build import (
    OPTIMIZERS,
    build_model,
    finish_program,
    make_optimizer,
    prepare,
    program_builder,
    trial_spec,
)
from advisor.plans.types import BASELINE, BuildContext, Cut, Plan, Recipe, conflict_between, redundancy_in

__all__ = [
    "BASELINE",
    "OPTIMIZERS",
    "BuildContext",
    "Cut",
    "Plan",
    "Recipe",
    "build_model",
    "conflict_between",
    "finish_program",
    "make_optimizer",
    "prepare",
    "program_builder",
    "redundancy_in",
    "trial_spec",
]
