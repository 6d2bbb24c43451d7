"""Cut 3: warm-start embeddings and layers — freeze the token embeddings (copied from a user
matrix first, when given) or the first k transformer layers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import (
    find_repeated_blocks,
    input_embeddings,
    load_embedding_file,
    tied_elsewhere,
)
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut
from advisor.plans.view import EstimateView

__all__ = ["FreezeLayers", "FrozenEmbeddings"]

_UNDER_LORA = "LoRA freezes every base weight already"


@register_cut
@dataclass(frozen=True)
class FrozenEmbeddings(Cut):
    """Freeze the token embeddings, after copying a user matrix into them when ``path`` is set."""

    path: str | None = None

    name = "frozen-emb"
    summary = "freeze the token embeddings (optionally copied from a .pt/.safetensors/.npy first)"
    redundant_with = frozenset({"lora", "qlora"})
    redundancy_reason = _UNDER_LORA
    order = 40
    title = "frozen embeddings"
    trains_subset = True

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        emb = input_embeddings(model)
        weight = emb.weight
        if self.path is not None:
            matrix = load_embedding_file(self.path)
            if tuple(matrix.shape) != tuple(weight.shape):
                raise PlanError(
                    f"embedding file {self.path} has shape {tuple(matrix.shape)} but the model's "
                    f"input embeddings are {tuple(weight.shape)} (vocab × hidden)",
                    f"give a {weight.shape[0]} × {weight.shape[1]} matrix, or use a model with "
                    f"vocab {matrix.shape[0]} and hidden size {matrix.shape[1]}",
                )
            if weight.device.type != "meta":
                with torch.no_grad():
                    weight.copy_(matrix.to(weight.dtype))
            ctx.recipe.notes["embedding_file"] = str(self.path)
        weight.requires_grad_(False)
        tied = tied_elsewhere(model, weight)
        ctx.recipe.notes["frozen_embedding_params"] = weight.numel()
        ctx.recipe.notes["embeddings_tied_to"] = tied
        return model

    def shape_estimate(self, view: EstimateView) -> None:
        view.frozen_embedding = True

    def add_code(self, code: TrainingCode) -> None:
        if self.path:
            code.freeze += [
                "with torch.no_grad():",
                f"    model.get_input_embeddings().weight.copy_(torch.load({self.path!r}))",
            ]
        code.freeze.append("model.get_input_embeddings().weight.requires_grad_(False)")
        code.torch_freeze.append(
            "next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)).weight.requires_grad_(False)"
        )


@register_cut
@dataclass(frozen=True)
class FreezeLayers(Cut):
    """Freeze the first ``k`` repeated blocks (transformer layers)."""

    k: int = 1

    name = "freeze-layers"
    summary = "freeze the first k transformer layers (k=1 by default)"
    redundant_with = frozenset({"lora", "qlora"})
    redundancy_reason = _UNDER_LORA
    order = 41
    title = "freezing layers"
    trains_subset = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise PlanError(f"freeze-layers: k must be ≥ 1, got {self.k}", "for example freeze-layers(k=2)")

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        path, blocks = find_repeated_blocks(model)
        if not blocks:
            raise PlanError(
                f"freeze-layers found no repeated blocks in {type(model).__name__}",
                "keep the model's layers in an nn.ModuleList, or use frozen-emb",
            )
        if self.k > len(blocks):
            raise PlanError(
                f"freeze-layers(k={self.k}) but {path} has {len(blocks)} layers",
                f"choose k from 1 to {len(blocks)}",
            )
        frozen = 0
        for block in blocks[: self.k]:
            for p in block.parameters():
                if p.requires_grad:
                    frozen += p.numel()
                p.requires_grad_(False)
        ctx.recipe.notes["frozen_layer_params"] = frozen
        return model

    def leading_layers(self) -> int:
        return self.k

    def with_leading_layers(self, layers: int) -> FreezeLayers:
        return dataclasses.replace(self, k=layers)

    def shape_estimate(self, view: EstimateView) -> None:
        view.frozen_layers = int(self.k)

    def add_code(self, code: TrainingCode) -> None:
        code.freeze += [
            f"for layer in model.base_model.layers[:{self.k}]:  # the first {self.k} transformer layer(s)",
            "    layer.requires_grad_(False)",
        ]
        code.torch_freeze += [
            f"for block in model.layers[:{self.k}]:  # your repeated blocks",
            "    block.requires_grad_(False)",
        ]
