"""How the training loop clears the gradients after each optimizer step.

``optimizer.zero_grad(set_to_none=True)`` (torch ≥ 2.0's default) frees the gradients, so the
next backward allocates them anew, one by one, as it reaches each parameter. With
``set_to_none=False`` they are zeroed in place and stay allocated through the next forward and
backward, which then accumulates into them: the step's forward/backward peak grows by the
trainable gradient bytes when no accumulation kept them alive anyway.

Sources: ``Module.zero_grad`` and ``Optimizer.zero_grad`` took ``set_to_none=False`` by default
from its introduction in torch 1.7 (pytorch/pytorch#44423) until torch 2.0 switched the default
to ``True`` (pytorch/pytorch#92731); transformers 4.21's ``Trainer._inner_training_loop`` calls
``model.zero_grad()`` without arguments after each ``optimizer.step()`` (trainer.py, read in the
4.21.0 wheel), so a Trainer run on torch 1.x kept its gradients allocated as zeros. Plans for
such a stack carry ``zero-grad(set_to_none=false)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.plans.code import TrainingCode
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut, Recipe
from advisor.plans.view import EstimateView
from profilers.trial import StepProgram

__all__ = ["ZeroGrad"]


@register_cut
@dataclass(frozen=True)
class ZeroGrad(Cut):
    """Clear the gradients with ``zero_grad(set_to_none=...)``: ``False`` keeps them allocated."""

    set_to_none: bool = True

    name = "zero-grad"
    summary = "how gradients are cleared after a step: set_to_none=false zeroes them in place (torch < 2.0)"
    order = 72  # describes the loop; after the optimizer cuts
    # DeepSpeed's engine keeps and clears its own gradient partitions (the ZeRO layout replaces
    # the replayed model states), so the loop's zero_grad has nothing to say there
    conflicts = frozenset({"zero"})
    opt_in = True
    title = "gradients zeroed in place"
    candidate = False

    def configure(self, recipe: Recipe) -> None:
        recipe.notes["zero_grad_set_to_none"] = bool(self.set_to_none)

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        prog.zero_grad_set_to_none = bool(self.set_to_none)
        return prog

    def shape_estimate(self, view: EstimateView) -> None:
        view.gradients_kept = not self.set_to_none

    def add_code(self, code: TrainingCode) -> None:
        code.zero_grad_set_to_none = bool(self.set_to_none)
        if not self.set_to_none:
            code.after_arguments.append(
                "# zero-grad(set_to_none=false): gradients zeroed in place, torch < 2.0's zero_grad() "
                "default; on torch >= 2.0 the Trainer frees them (set_to_none=True)"
            )
