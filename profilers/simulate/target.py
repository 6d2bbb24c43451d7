"""Running the replay as it would run on its CUDA target, from whatever fake device it is on.

Targeting CUDA, the optimizer runs the ``foreach`` implementation torch picks by default on CUDA
(its temporaries are a whole tensor list, not one tensor; :func:`use_cuda_optimizer_defaults`),
and from a fake CPU device, attention with dropout runs a fused kernel as on CUDA
(:func:`cuda_attention_choice`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["cuda_attention_choice", "use_cuda_optimizer_defaults"]

def use_cuda_optimizer_defaults(optimizer: torch.optim.Optimizer) -> bool:
    """Make ``optimizer`` run the implementation torch picks by default for CUDA tensors.

    On CUDA, torch's AdamW, Adam, SGD… default to ``foreach`` (one kernel over the whole tensor
    list; its intermediates, e.g. AdamW's ``sqrt(exp_avg_sq)``, are as large as all trainable
    parameters together), while on CPU — and for fake tensors — they run one tensor at a time.
    Returns whether anything changed. Groups that set ``foreach`` or ``fused`` are left alone.
    """
    changed = False
    for group in optimizer.param_groups:
        if "foreach" in group and group["foreach"] is None and not group.get("fused"):
            if group.get("differentiable"):
                continue
            group["foreach"] = True
            changed = True
    return changed


_ORIGINAL_SDPA = torch.nn.functional.scaled_dot_product_attention


def _sdpa_as_on_cuda(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    if dropout_p > 0.0 and query.device.type == "cpu":
        if enable_gqa and key.size(-3) != query.size(-3):
            key = key.repeat_interleave(query.size(-3) // key.size(-3), dim=-3)
            value = value.repeat_interleave(query.size(-3) // value.size(-3), dim=-3)
        out, _ = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale
        )
        return out  # type: ignore[no-any-return]
    return _ORIGINAL_SDPA(
        query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
        scale=scale, enable_gqa=enable_gqa,
    )  # fmt: skip


_ORIGINAL_DROPOUT = torch.nn.functional.dropout


def _dropout_as_on_cuda(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> torch.Tensor:
    # CPU dropout keeps a mask in the input's dtype for backward; CUDA's fused kernel
    # (native_dropout) keeps a 1-byte bool mask. native_dropout runs on CPU too.
    if training and 0.0 < p < 1.0 and not inplace and input.device.type == "cpu":
        return torch.native_dropout(input, p, True)[0]
    return _ORIGINAL_DROPOUT(input, p, training, inplace)


@contextlib.contextmanager
def cuda_attention_choice() -> Iterator[None]:
    """Run ``scaled_dot_product_attention`` with dropout as a fused kernel, as CUDA does.

    With ``dropout_p > 0`` the CPU picks the math path (the full ``B·H·S·S`` scores and dropout
    mask saved for backward), while CUDA's flash and memory-efficient kernels take dropout and
    save only the output and the log-sum-exp. Inside this context such calls go to the fused
    CPU kernel, whose saved tensors match CUDA's (GQA is expanded, as the math path does). It
    swaps ``torch.nn.functional.scaled_dot_product_attention`` for the duration, so that
    recomputation under checkpointing takes the same path.

    Plain dropout (``nn.Dropout``, e.g. LoRA's) goes to ``native_dropout`` likewise: CUDA's
    kernel saves a 1-byte mask where the CPU's saves one in the input's dtype.
    """
    functional = torch.nn.functional
    functional.scaled_dot_product_attention = _sdpa_as_on_cuda  # type: ignore[assignment]
    functional.dropout = _dropout_as_on_cuda  # type: ignore[assignment]
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = _ORIGINAL_SDPA
        functional.dropout = _ORIGINAL_DROPOUT
