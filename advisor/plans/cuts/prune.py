"""Pruning cuts: structured pruning that really shrinks the model, and unstructured pruning
that does not.

``prune(amount, scope)`` removes whole attention heads (``heads``: key/value groups with their
query heads, so grouped-query attention stays consistent), MLP channels (``mlp``: the same
rows of ``gate_proj``/``up_proj`` and columns of ``down_proj``) or both from every decoder
layer of a Llama-family model, by shape arithmetic: each Linear is rebuilt with the kept rows or
columns (``index_select``), which works on real weights (the lowest-L2 heads/channels go) and on
the ``meta`` model a simulation builds (the first ones go; the shapes are the same). The
resulting layers equal what torch-pruning 1.6.1 produces with ``prune_linear_out_channels`` /
``prune_linear_in_channels`` over the same indices (its ``DependencyGraph`` groups the MLP
channels this way; the test compares). transformers 5.25 has no ``prune_heads`` any more.

``prune-unstructured(amount)`` is ``torch.nn.utils.prune.l1_unstructured``: it keeps the dense
weight as ``weight_orig`` plus a same-shape ``weight_mask`` buffer and rebuilds ``weight`` each
forward — it saves no training memory (it adds some); it is offered to show that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import is_hf
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut
from profilers.trial import UnsupportedConfiguration

__all__ = ["Prune", "UnstructuredPrune", "prune_llama", "pruned_counts"]

SCOPES = ("heads", "mlp", "both")


def pruned_counts(amount: float, num_kv_heads: int, intermediate: int) -> tuple[int, int]:
    """(key/value groups removed, MLP channels removed) per layer for ``amount``: rounded to
    the nearest whole group / channel, at least one of each left."""
    groups = min(round(amount * num_kv_heads), num_kv_heads - 1)
    channels = min(round(amount * intermediate), intermediate - 1)
    return groups, channels


def _shrink(linear: nn.Linear, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> nn.Linear:
    """``linear`` rebuilt with the rows ``out_idx`` and columns ``in_idx`` kept (in place)."""
    weight = linear.weight.detach()
    if out_idx is not None:
        weight = weight.index_select(0, out_idx.to(weight.device))
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.detach().index_select(0, out_idx.to(weight.device)))
    if in_idx is not None:
        weight = weight.index_select(1, in_idx.to(weight.device))
    linear.weight = nn.Parameter(weight.contiguous(), requires_grad=linear.weight.requires_grad)
    linear.out_features, linear.in_features = weight.shape
    return linear


def _keep(scores: torch.Tensor | None, total: int, remove: int) -> torch.Tensor:
    """Indices kept, ascending: the highest-scoring ``total - remove`` (the last ones without
    scores, on a meta model)."""
    if scores is None:
        return torch.arange(remove, total)
    return torch.sort(torch.topk(scores, total - remove).indices).values


def _row_norms(*weights: torch.Tensor) -> torch.Tensor | None:
    if any(w.is_meta for w in weights):
        return None
    return sum(w.detach().float().square().sum(1) for w in weights)  # type: ignore[return-value]


def prune_llama(model: nn.Module, amount: float, scope: str) -> dict[str, Any]:
    """Prune every decoder layer of a Llama-family model in place; returns what was removed."""
    config: Any = model.config
    layers: list[Any] = [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "mlp")]
    heads, kv_heads = int(config.num_attention_heads), int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    group = heads // kv_heads
    n_groups, n_channels = pruned_counts(amount, kv_heads, int(config.intermediate_size))
    done: dict[str, Any] = {}
    if scope in ("heads", "both") and n_groups:
        for layer in layers:
            attn = layer.self_attn
            q, k, v, o = attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj
            qn = _row_norms(q.weight)
            kvn = _row_norms(k.weight, v.weight)
            on = _row_norms(o.weight.t())
            scores = None
            if qn is not None and kvn is not None and on is not None:
                scores = (
                    qn.view(kv_heads, group * head_dim).sum(1)
                    + kvn.view(kv_heads, head_dim).sum(1)
                    + on.view(kv_heads, group * head_dim).sum(1)
                )
            kept = _keep(scores, kv_heads, n_groups)
            kv_rows = (kept[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
            q_rows = (kept[:, None] * group * head_dim + torch.arange(group * head_dim)).reshape(-1)
            _shrink(q, q_rows, None)
            _shrink(k, kv_rows, None)
            _shrink(v, kv_rows, None)
            _shrink(o, None, q_rows)
        config.head_dim = head_dim  # explicit: hidden_size // heads no longer holds
        config.num_key_value_heads = kv_heads - n_groups
        config.num_attention_heads = (kv_heads - n_groups) * group
        done["heads_removed_per_layer"] = n_groups * group
        done["kv_heads_removed_per_layer"] = n_groups
    if scope in ("mlp", "both") and n_channels:
        inter = int(config.intermediate_size)
        for layer in layers:
            mlp = layer.mlp
            scores = _row_norms(mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight.t())
            kept = _keep(scores, inter, n_channels)
            _shrink(mlp.gate_proj, kept, None)
            _shrink(mlp.up_proj, kept, None)
            _shrink(mlp.down_proj, None, kept)
            if hasattr(mlp, "intermediate_size"):
                mlp.intermediate_size = inter - n_channels
        config.intermediate_size = inter - n_channels
        done["mlp_channels_removed_per_layer"] = n_channels
    return done


def _is_llama_like(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    if not is_hf(model) or config is None or not hasattr(config, "intermediate_size"):
        return False
    for m in model.modules():
        if hasattr(m, "self_attn") and hasattr(m, "mlp"):
            attn, mlp = m.self_attn, m.mlp
            return all(isinstance(getattr(attn, n, None), nn.Linear) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and all(
                isinstance(getattr(mlp, n, None), nn.Linear) for n in ("gate_proj", "up_proj", "down_proj")
            )
    return False


@register_cut
@dataclass(frozen=True)
class Prune(Cut):
    """Structured pruning: ``amount`` of the attention heads (whole key/value groups), of the
    MLP channels, or of both, removed from every decoder layer; the model really shrinks."""

    amount: float = 0.3
    scope: str = "both"

    name = "prune"
    summary = (
        "structured pruning: remove amount (0.3) of the attention heads and/or MLP channels "
        "(scope=heads|mlp|both) of every layer; shrinks weights, grads, states, activations; "
        "costs quality (see the convergence probe)"
    )
    title = "structured pruning"
    order = 2  # before LoRA, freezing, checkpointing: they see the pruned layers
    opt_in = True  # it changes the model (quality): swept and offered on request only
    candidate = False

    def __post_init__(self) -> None:
        if not 0.0 < float(self.amount) < 1.0:
            raise PlanError(f"prune: amount must be in (0, 1), got {self.amount}", "for example prune(amount=0.3)")
        if self.scope not in SCOPES:
            raise PlanError(f"prune: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}", "for example prune(scope=mlp)")

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        if not _is_llama_like(model):
            raise UnsupportedConfiguration(
                f"structured pruning here handles Llama-family decoders (q/k/v/o and gate/up/down "
                f"projections); {type(model).__name__} is not one"
            )
        done = prune_llama(model, float(self.amount), self.scope)
        if not done:
            raise UnsupportedConfiguration(
                f"prune(amount={self.amount}) removes nothing from {type(model).__name__}: "
                "the amount rounds to zero heads and channels"
            )
        ctx.recipe.notes.update({f"prune_{k}": v for k, v in done.items()})
        return model

    def add_code(self, code: TrainingCode) -> None:
        code.after_arguments += [
            "# structured pruning (pip install torch-pruning): remove whole heads / MLP channels",
            "# before training, e.g. with torch_pruning's DependencyGraph and prune_linear_*_channels,",
            f"# amount={self.amount}, scope={self.scope}; update config.num_attention_heads / intermediate_size",
        ]


@register_cut
@dataclass(frozen=True)
class UnstructuredPrune(Cut):
    """Magnitude (L1) unstructured pruning with ``torch.nn.utils.prune``: the dense weights
    stay and a mask is added — no training memory saved."""

    amount: float = 0.3

    name = "prune-unstructured"
    summary = (
        "unstructured magnitude pruning (torch.nn.utils.prune): saves NO training memory — "
        "keeps the dense weight and adds a mask of the same shape"
    )
    title = "unstructured pruning"
    order = 2
    opt_in = True
    candidate = False

    def __post_init__(self) -> None:
        if not 0.0 < float(self.amount) < 1.0:
            raise PlanError(
                f"prune-unstructured: amount must be in (0, 1), got {self.amount}",
                "for example prune-unstructured(amount=0.5)",
            )

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        from torch.nn.utils import prune as torch_prune

        get_head: Any = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        count = 0
        for module in list(model.modules()):
            if isinstance(module, nn.Linear) and module is not head:
                torch_prune.l1_unstructured(module, "weight", amount=float(self.amount))
                count += 1
        if not count:
            raise UnsupportedConfiguration(f"{type(model).__name__} has no Linear layer to prune")
        ctx.recipe.notes["unstructured_pruned_linears"] = count
        return model
