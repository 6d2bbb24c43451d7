"""Optimizer cuts: SGD, Adafactor and bitsandbytes' 8-bit AdamW instead of AdamW."""

from __future__ import annotations

from dataclasses import dataclass

from advisor.plans.code import TRAINABLE_PARAMETERS, TrainingCode
from advisor.plans.cuts.blocks import bitsandbytes_reason
from advisor.plans.registry import register_cut
from advisor.plans.types import Cut, Recipe
from advisor.plans.view import EstimateView
from profilers.trial import UnsupportedConfiguration

__all__ = ["AdafactorCut", "AdamW8bit", "PagedAdamW8bit", "Sgd"]


@register_cut
@dataclass(frozen=True)
class Sgd(Cut):
    """Plain SGD: no optimizer state when ``momentum`` is 0 (one buffer per parameter else)."""

    momentum: float = 0.0

    name = "sgd"
    summary = "SGD instead of AdamW (momentum 0: no optimizer state)"
    group = "optimizer"
    title = "SGD"

    def configure(self, recipe: Recipe) -> None:
        recipe.optimizer = "sgd"
        recipe.optimizer_kwargs["momentum"] = self.momentum

    def shape_estimate(self, view: EstimateView) -> None:
        view.optimizer = "sgd"
        view.momentum = float(self.momentum)

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["optim"] = '"sgd"'
        code.torch_optimizer = [
            f"optimizer = torch.optim.SGD({TRAINABLE_PARAMETERS}, lr=1e-4, momentum={self.momentum!r})"
        ]


@register_cut
@dataclass(frozen=True)
class AdafactorCut(Cut):
    """Adafactor (torch's own where it has one): factored second moments, no first moment."""

    name = "adafactor"
    summary = "Adafactor instead of AdamW (factored second moment, no first moment)"
    group = "optimizer"
    title = "Adafactor"

    def configure(self, recipe: Recipe) -> None:
        recipe.optimizer = "adafactor"

    def shape_estimate(self, view: EstimateView) -> None:
        view.optimizer = "adafactor"

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["optim"] = '"adafactor"'
        code.torch_optimizer = [f"optimizer = torch.optim.Adafactor({TRAINABLE_PARAMETERS}, lr=1e-4)"]


@register_cut
@dataclass(frozen=True)
class AdamW8bit(Cut):
    """bitsandbytes' 8-bit AdamW; its default keeps tensors under 4096 elements in 32-bit state.

    Measured, it is ``bitsandbytes.optim.AdamW8bit`` (bitsandbytes needed); simulated, the replay
    runs :class:`profilers.simulate.optim8bit.AdamW8bitStandIn`, which allocates the same state
    (uint8 moments, one float32 absmax per 256 elements, the shared maps) without bitsandbytes.
    """

    name = "adamw8bit"
    summary = "8-bit AdamW (bitsandbytes): about one byte per moment"
    group = "optimizer"
    title = "8-bit AdamW"
    needs_bitsandbytes = True

    def check_available(self) -> None:
        reason = bitsandbytes_reason()
        if reason is not None:
            raise UnsupportedConfiguration(reason)

    def configure(self, recipe: Recipe) -> None:
        recipe.optimizer = "adamw8bit"

    def shape_estimate(self, view: EstimateView) -> None:
        view.optimizer = "adamw8bit"

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["optim"] = '"adamw_bnb_8bit"'
        code.torch_optimizer = [
            "import bitsandbytes as bnb",
            f"optimizer = bnb.optim.AdamW8bit({TRAINABLE_PARAMETERS}, lr=1e-4)",
        ]


@register_cut
@dataclass(frozen=True)
class PagedAdamW8bit(AdamW8bit):
    """bitsandbytes' paged 8-bit AdamW: on CUDA the moments of tensors with ≥ 100 000 elements
    live in unified memory (host-backed, paged in on demand), counted as host memory, apart from
    the device peak; on CPU it is plain 8-bit AdamW. Opt-in."""

    name = "paged-adamw8bit"
    summary = "paged 8-bit AdamW (bitsandbytes): large moments in CUDA unified (host) memory"
    title = "paged 8-bit AdamW"
    opt_in = True
    candidate = False

    def configure(self, recipe: Recipe) -> None:
        recipe.optimizer = "paged-adamw8bit"

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["optim"] = '"paged_adamw_8bit"'
        code.torch_optimizer = [
            "import bitsandbytes as bnb",
            f"optimizer = bnb.optim.PagedAdamW8bit({TRAINABLE_PARAMETERS}, lr=1e-4)",
        ]
