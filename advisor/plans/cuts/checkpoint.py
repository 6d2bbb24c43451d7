"""Cut 4: gradient checkpointing — recompute each layer's activations in backward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import checkpoint_blocks, is_hf
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut
from advisor.plans.view import EstimateView

__all__ = ["GradCheckpointing"]


@register_cut
@dataclass(frozen=True)
class GradCheckpointing(Cut):
    """Recompute activations in backward: the HF API for HF models, else wrap repeated blocks."""

    name = "grad-ckpt"
    summary = "gradient (activation) checkpointing: recompute each layer's activations in backward"
    order = 25
    title = "checkpointing"

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        if is_hf(model) and getattr(model, "supports_gradient_checkpointing", False):
            kwargs = {"use_reentrant": False}
            config: Any = getattr(model, "config", None)
            if getattr(config, "use_cache", None):
                config.use_cache = False  # a KV cache is pointless in training
            enable = getattr(model, "activation_checkpointing_enable", None)
            if enable is not None:  # transformers ≥ 5.x: the non-deprecated name
                enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)  # type: ignore[operator]
            ctx.recipe.notes["checkpointing"] = "transformers"
        else:
            ctx.recipe.notes["checkpointed_blocks"] = checkpoint_blocks(model)
            ctx.recipe.notes["checkpointing"] = "torch.utils.checkpoint"
        return model


    def shape_estimate(self, view: EstimateView) -> None:
        view.grad_ckpt = True

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["gradient_checkpointing"] = "True"
        code.training_arguments["gradient_checkpointing_kwargs"] = '{"use_reentrant": False}'
        code.torch_recompute += [
            "from torch.utils.checkpoint import checkpoint",
            "for block in model.layers:  # your repeated blocks: recompute their activations in backward",
            "    block.forward = (lambda f: lambda *a, **k: checkpoint(f, *a, use_reentrant=False, **k))(block.forward)",
        ]
