"""How the optimizer step runs: torch's ``foreach``, a per-parameter loop, or the ``fused`` kernel.

The three implementations hold the same state but different temporaries during ``step()``
(read in torch 2.13's ``torch/optim/adamw.py`` / ``adam.py``: ``_multi_tensor_adam``,
``_single_tensor_adam``, ``_fused_adam``):

* ``foreach`` — torch's default for CUDA tensors: one kernel over the whole tensor list, so an
  intermediate such as ``sqrt(exp_avg_sq)`` exists for every trainable tensor at once;
* ``loop`` — one tensor at a time (torch's default on CPU; the old ``transformers.AdamW`` of
  Trainer's ``adamw_hf``, and ``foreach=False``): the temporaries of one tensor only;
* ``fused`` — one fused kernel updating in place (``fused=True``, Trainer's
  ``adamw_torch_fused``): no full-size temporaries.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.registry import register_cut
from advisor.plans.types import Cut, Recipe
from advisor.plans.view import EstimateView

__all__ = ["OptimizerImplementation"]

# optimizers with each implementation in torch (Adafactor has no fused kernel)
_HAS = {"foreach": {"adamw", "sgd", "adafactor"}, "loop": {"adamw", "sgd", "adafactor"}, "fused": {"adamw", "sgd"}}
# the Trainer ``optim`` names that pick each implementation of AdamW
_TRAINER_OPTIM = {"foreach": "adamw_torch", "fused": "adamw_torch_fused"}


@register_cut
@dataclass(frozen=True)
class OptimizerImplementation(Cut):
    """Run the optimizer step as ``foreach``, a per-parameter ``loop`` or the ``fused`` kernel."""

    kind: str = "fused"

    name = "optim-impl"
    summary = "optimizer step implementation: kind=fused (in place), foreach (CUDA default) or loop"
    conflicts = frozenset({"adamw8bit"})
    order = 70  # after the optimizer cuts chose the optimizer
    opt_in = True
    title = "optimizer implementation"
    candidate = False

    def __post_init__(self) -> None:
        if self.kind not in _HAS:
            raise PlanError(
                f"optim-impl: kind must be one of {', '.join(_HAS)}, got {self.kind!r}",
                "for example optim-impl(kind=fused)",
            )

    def configure(self, recipe: Recipe) -> None:
        if recipe.optimizer not in _HAS[self.kind]:
            raise PlanError(
                f"optim-impl(kind={self.kind}): torch's {recipe.optimizer} has no {self.kind} implementation",
                f"use it with {' or '.join(sorted(_HAS[self.kind]))}",
            )
        recipe.optimizer_kwargs["foreach"] = self.kind == "foreach"
        if self.kind == "fused":
            recipe.optimizer_kwargs["foreach"] = False
            recipe.optimizer_kwargs["fused"] = True
        recipe.notes["optimizer_impl"] = self.kind

    def shape_estimate(self, view: EstimateView) -> None:
        view.optimizer_impl = self.kind

    def add_code(self, code: TrainingCode) -> None:
        optim = _TRAINER_OPTIM.get(self.kind)
        if optim is not None and "optim" not in code.training_arguments:
            code.training_arguments["optim"] = f'"{optim}"'
        flag = "fused=True" if self.kind == "fused" else f"foreach={self.kind == 'foreach'}"
        code.after_arguments.append(f"# torch optimizer: pass {flag} (optim-impl(kind={self.kind}))")
