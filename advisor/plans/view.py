"""What a plan changes, as the closed-form estimate sees it.

Each cut fills in its part of an :class:`EstimateView` from its own fields
(:meth:`advisor.plans.Cut.shape_estimate`); :mod:`advisor.engines.estimate` does the accounting
from the view alone, so it never reads cut names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EstimateView"]


@dataclass
class EstimateView:
    """The plan's effect on the estimate: the baseline (full fp32 AdamW fine-tuning) until a cut
    changes a field."""

    lora: bool = False  # a frozen base with low-rank adapters
    lora_r: int = 0  # set with ``lora``
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()  # empty: PEFT's defaults for the architecture
    qlora_bits: int = 0  # 0: no quantized base; 4 or 8
    frozen_embedding: bool = False
    frozen_layers: int = 0  # the first k repeated blocks are frozen
    grad_ckpt: bool = False
    precision: str = "fp32"  # "fp32", "autocast" (bf16/fp16 autocast) or "bf16" (pure bf16)
    optimizer: str = "adamw"  # "adamw", "sgd", "adafactor" or "adamw8bit"
    momentum: float = 0.0  # SGD's
    optimizer_impl: str | None = None  # "foreach", "loop" or "fused" (None: torch's default for the target)
    accumulation: int = 1  # gradient accumulation steps
    gradients_kept: bool = False  # zero_grad(set_to_none=False): gradients resident all step
    softmax_keeps_input: bool = False  # torch ≤ 1.10: softmax / log-softmax also save their input
    attention: str | None = None  # "eager" when a cut chooses it (None: the model's own)
    offload: bool = False  # saved activations in host memory
    notes: list[str] = field(default_factory=list)  # what the estimate had to assume
