"""What autograd keeps for backward, as an older torch kept it.

Up to torch 1.10, softmax and log-softmax saved their input as well as their output for
backward: eager attention kept one more ``batch × heads × seq²`` tensor per layer, and the loss
kept the logits. torch 1.11 saves only the input's dtype (pytorch/pytorch#65242). The saved
fields of every backward node were compared in the generated ``Functions.h`` of the torch
1.10.2, 1.11.0 and 1.12.1 wheels against torch 2.13.0's; :mod:`profilers.autograd_saves` keeps
the table and emulates the softmax rows. ``autograd-saves(version=1.10)`` makes the step save
what torch 1.10 saved — for comparing with figures measured on such a stack (the transformers
v4.21 guide's BERT runs, ``benchmarks/published``); for torch ≥ 1.11 it changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import chain_context
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut
from advisor.plans.view import EstimateView
from profilers.autograd_saves import SOFTMAX_KEEPS_INPUT_UNTIL, older_autograd_saves, parse_torch_version
from profilers.trial import StepProgram

__all__ = ["AutogradSaves"]


@register_cut
@dataclass(frozen=True)
class AutogradSaves(Cut):
    """Save for backward what torch ``version``'s autograd saved (≤ 1.10: softmax's input too)."""

    version: str = "1.10"

    name = "autograd-saves"
    summary = "save for backward what an older torch saved: version=1.10 keeps softmax inputs (torch <= 1.10)"
    order = 74  # describes the stack; after the loop's cuts
    opt_in = True
    title = "torch 1.10 autograd saves"
    candidate = False

    def __post_init__(self) -> None:
        try:
            parse_torch_version(self.version)
        except ValueError as exc:
            raise PlanError(f"autograd-saves: {exc}", "for example autograd-saves(version=1.10)") from None

    @property
    def keeps_softmax_input(self) -> bool:
        return parse_torch_version(self.version) <= SOFTMAX_KEEPS_INPUT_UNTIL

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        if not self.keeps_softmax_input:
            return prog
        version = self.version
        chain_context(prog, lambda: older_autograd_saves(version), around="step")
        prog.extra["autograd_saves"] = f"torch {version}: softmax and log-softmax keep their input"
        return prog

    def shape_estimate(self, view: EstimateView) -> None:
        view.softmax_keeps_input = self.keeps_softmax_input

    def add_code(self, code: TrainingCode) -> None:
        code.after_arguments.append(
            f"# autograd-saves(version={self.version}): the figures are for a torch {self.version} stack, "
            "whose softmax kept its input for backward; on torch >= 1.11 the step needs less"
        )
