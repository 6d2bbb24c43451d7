"""Cut 1: fine-tune, don't train from scratch — ``scratch`` trains from random init instead, to
compare (the same memory per step; the difference is in the tokens needed)."""

from __future__ import annotations

from dataclasses import dataclass

from advisor.plans.code import TrainingCode
from advisor.plans.registry import register_cut
from advisor.plans.types import Cut, Recipe
from advisor.plans.view import EstimateView

__all__ = ["Scratch"]


@register_cut
@dataclass(frozen=True)
class Scratch(Cut):
    """Random init instead of the pretrained weights."""

    name = "scratch"
    summary = "train from random init instead of pretrained weights (same memory; see `convergence`)"
    order = 0
    title = "random init"
    candidate = False
    starts_from_scratch = True

    def configure(self, recipe: Recipe) -> None:
        recipe.pretrained = False
        recipe.notes["start"] = "random-init"

    def shape_estimate(self, view: EstimateView) -> None:
        """The same memory per step as fine-tuning."""

    def add_code(self, code: TrainingCode) -> None:
        code.from_config = True
        code.transformers_imports.append("AutoConfig")
