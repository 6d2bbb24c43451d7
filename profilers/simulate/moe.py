"""Mixture-of-experts layers in a replay: expert dispatch under an explicit routing assumption.

A router picks each token's top-k experts from its values, and transformers' expert dispatch
is data-dependent: the eager loop (``MixtralExperts.forward`` in transformers 5.25, the same in
Qwen3-MoE and the other ``@use_experts_implementation`` classes) takes ``nonzero`` of the expert
mask and ``torch.where`` per expert, so the tensors' shapes depend on the router's values, which
fake tensors do not have. During a replay :func:`routed_experts` therefore replaces the dispatch
of every such experts module by a deterministic one: the same ops, in the same order, saving the
same tensors for backward as the eager loop, with each expert given a fixed number of tokens.

The routing assumption is explicit (:class:`MoeRouting`): balanced by default, every expert
getting ``tokens × top_k / experts`` token-slots; with ``imbalance`` > 1 the hottest expert
gets that many times its balanced share (at most every token) and the others share the rest
evenly. The shapes of the router itself (a linear layer, softmax, top-k) do not depend on the
values, so it runs as it is. Whatever experts implementation the model's config names
(``grouped_mm``, ``batched_mm``), the replay follows the eager per-expert loop: that is the
assumption the record states.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from profilers.trial import UnsupportedConfiguration

__all__ = ["MoeRouting", "expert_token_counts", "find_experts", "routed_experts", "routing_note"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MoeRouting:
    """The routing a replay assumes: ``imbalance`` = the hottest expert's share over the
    balanced share (1.0: perfectly balanced)."""

    imbalance: float = 1.0

    def __post_init__(self) -> None:
        if not (self.imbalance >= 1.0 and math.isfinite(self.imbalance)):
            raise ValueError(f"the MoE imbalance must be a finite number ≥ 1, got {self.imbalance}")

    def describe(self, experts: int, top_k: int, layers: int) -> str:
        """One line for the record: what was assumed, and for how many layers."""
        balanced = f"tokens × {top_k} / {experts}"
        share = (
            f"balanced routing, each expert gets {balanced}"
            if self.imbalance == 1.0
            else f"hottest expert gets {self.imbalance:g}× its balanced {balanced}, the rest even"
        )
        plural = "s" if layers != 1 else ""
        return f"{share} ({layers} MoE layer{plural}, eager per-expert dispatch)"


def expert_token_counts(tokens: int, top_k: int, experts: int, imbalance: float = 1.0) -> list[int]:
    """How many token-slots each expert gets: ``tokens × top_k`` in all, none over ``tokens``.

    Expert 0 is the hottest: ``min(tokens, ceil(imbalance × tokens × top_k / experts))``; the
    others share the rest as evenly as whole numbers allow (the first ones one more).
    """
    if tokens < 0 or top_k < 1 or experts < top_k:
        raise ValueError(f"bad MoE shape: {tokens} tokens, top-{top_k} of {experts} experts")
    slots = tokens * top_k
    if experts == 1:
        return [slots]
    hot = min(tokens, math.ceil(imbalance * slots / experts))
    rest = slots - hot
    base, extra = divmod(rest, experts - 1)
    counts = [hot] + [base + (1 if i < extra else 0) for i in range(experts - 1)]
    if max(counts[1:]) > tokens:  # the others cannot take more than every token each
        raise ValueError(f"{slots} token-slots do not fit {experts} experts of ≤ {tokens} tokens")
    return counts


def _looks_like_experts(module: nn.Module) -> bool:
    """Experts weights stored as 3D tensors, as transformers' ``@use_experts_implementation``
    classes keep them."""
    up = getattr(module, "gate_up_proj", None)
    up = up if up is not None else getattr(module, "up_proj", None)
    return (
        isinstance(up, torch.Tensor) and up.dim() == 3
        and isinstance(getattr(module, "num_experts", None), int)
        and hasattr(type(module), "_apply_gate")
    )  # fmt: skip


# the statements of the eager loop mirrored by _dispatch (MixtralExperts.forward, transformers 5.25)
_EAGER_LOOP = (
    "top_k_pos, token_idx = torch.where(expert_mask[expert_idx])",
    "current_state = hidden_states[token_idx]",
    "gate, up = nn.functional.linear(current_state, self.gate_up_proj[expert_idx]).chunk(2, dim=-1)",
    "current_hidden_states = self.act_fn(gate) * up",
    "current_hidden_states = nn.functional.linear(current_hidden_states, self.down_proj[expert_idx])",
    "current_hidden_states = current_hidden_states * top_k_weights[token_idx, top_k_pos, None]",
    "final_hidden_states.index_add_(0, token_idx, current_hidden_states.to(final_hidden_states.dtype))",
)


_MIRRORED: dict[type, bool] = {}


def _mirrored(cls: type) -> bool:
    """Whether ``cls``'s own eager forward is the loop :func:`_dispatch` mirrors."""
    if cls not in _MIRRORED:
        forward: Any = getattr(cls, "forward", None)
        forward = getattr(forward, "__wrapped__", forward)  # under @use_experts_implementation
        try:
            source = inspect.getsource(forward)
        except (OSError, TypeError):
            source = ""
        _MIRRORED[cls] = all(line in source for line in _EAGER_LOOP)
    return _MIRRORED[cls]


def _is_experts(module: nn.Module) -> bool:
    """An experts module whose eager loop is mirrored here (fused gate/up, no bias, not
    transposed, no post-expert norm)."""
    return (
        _looks_like_experts(module)
        and isinstance(getattr(module, "down_proj", None), torch.Tensor)
        and getattr(module, "has_gate", True) and not getattr(module, "has_bias", False)
        and not getattr(module, "is_transposed", False)
        and not getattr(module, "has_post_expert_norm", False)
        and _mirrored(type(module))
    )  # fmt: skip


def find_experts(model: nn.Module) -> list[nn.Module]:
    """The experts modules of ``model`` whose dispatch a replay replaces.

    Raises:
        UnsupportedConfiguration: the model has experts of another layout (biases, transposed
            weights, another loop), whose data-dependent dispatch a replay cannot follow.
    """
    found, other = [], set()
    for m in model.modules():
        if _is_experts(m):
            found.append(m)
        elif _looks_like_experts(m):
            other.add(type(m).__name__)
    if other:
        raise UnsupportedConfiguration(
            f"the mixture-of-experts layers ({', '.join(sorted(other))}) are not of the layout the "
            "replay follows (transformers' eager loop over fused gate/up experts without biases), "
            "so their routing cannot be simulated"
        )
    return found


def _dispatch(routing: MoeRouting) -> Callable[..., torch.Tensor]:
    """The eager expert loop of transformers 5.25 with fixed per-expert token counts."""

    def forward(
        self: Any, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        device = hidden_states.device
        tokens, top_k = top_k_index.shape
        counts = expert_token_counts(tokens, top_k, self.num_experts, routing.imbalance)
        final_hidden_states = torch.zeros_like(hidden_states)
        with torch.no_grad():
            expert_mask = torch.nn.functional.one_hot(top_k_index, num_classes=self.num_experts + 1)
            expert_mask = expert_mask.permute(2, 1, 0)
            hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0)
            # .nonzero() of the hit experts: its shape is the assumption's, not the values'
            hit.new_empty((sum(1 for c in counts if c), 1), dtype=torch.long)
        for expert_idx, count in enumerate(counts):
            if count == 0:
                continue
            # torch.where(expert_mask[e]): one (count, 2) int64 nonzero, unbound into two views
            top_k_pos, token_idx = torch.empty((count, 2), dtype=torch.long, device=device).unbind(1)
            current_state = hidden_states[token_idx]
            gate, up = nn.functional.linear(current_state, self.gate_up_proj[expert_idx]).chunk(2, dim=-1)
            current_hidden_states = self.act_fn(gate) * up
            current_hidden_states = nn.functional.linear(current_hidden_states, self.down_proj[expert_idx])
            current_hidden_states = current_hidden_states * top_k_weights[token_idx, top_k_pos, None]
            final_hidden_states.index_add_(0, token_idx, current_hidden_states.to(final_hidden_states.dtype))
        return final_hidden_states

    return forward


def _note(experts: list[nn.Module], routing: MoeRouting) -> str:
    config = getattr(experts[0], "config", None)
    top_k = int(getattr(config, "num_experts_per_tok", 0) or 0)
    count = experts[0].num_experts
    assert isinstance(count, int)  # find_experts checked it
    return routing.describe(count, top_k, len(experts))


def routing_note(model: nn.Module, routing: MoeRouting | None = None) -> str | None:
    """What :func:`routed_experts` would state for ``model`` (``None``: no experts), e.g. for
    a model replayed with fewer blocks and extrapolated to this one."""
    experts = find_experts(model)
    return _note(experts, routing or MoeRouting()) if experts else None


@contextlib.contextmanager
def routed_experts(model: nn.Module, routing: MoeRouting | None = None) -> Iterator[str | None]:
    """For the duration, every experts module of ``model`` dispatches under ``routing``
    (balanced by default). Yields the assumption in one line, or ``None`` for a model without
    experts (which is left untouched)."""
    routing = routing or MoeRouting()
    experts = find_experts(model)
    if not experts:
        yield None
        return
    forward = _dispatch(routing)
    note = _note(experts, routing)
    log.info("MoE: %s", note)
    previous = {id(m): vars(m).get("forward") for m in experts}
    try:
        for module in experts:
            module.forward = types.MethodType(forward, module)
        yield note
    finally:
        for module in experts:
            before = previous[id(module)]
            if before is None:
                vars(module).pop("forward", None)
            else:
                module.forward = before
