"""Fused-kernel cuts (Liger-Kernel style): fused linear cross-entropy, RMSNorm, SwiGLU and RoPE.

On a GPU these are ``liger-kernel``'s Triton kernels; here the model is patched the way
``liger_kernel.transformers.apply_liger_kernel_to_llama`` patches it, with the CPU stand-ins of
:mod:`profilers.fused`, which keep what the kernels keep for backward (Liger-Kernel commit
``00eba634c2e9``). So the measured CPU figure and the fake-tensor replay both show the kernels'
memory; the kernels' speed is not modelled (the stand-ins run plain torch ops).
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advisor.models import Task
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import is_hf
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut
from profilers.fused import (
    LIGER_COMMIT,
    FusedRMSNorm,
    FusedSwiGLUMLP,
    fused_linear_cross_entropy,
    liger_rotary_pos_emb,
)
from profilers.trial import StepProgram, UnsupportedConfiguration

__all__ = ["FusedLinearCE", "FusedRMSNormCut", "FusedRoPE", "FusedSwiGLU", "fused_causal_lm_loss"]

IGNORE_INDEX = -100  # transformers' ForCausalLMLoss default

# RMSNorms computing ``weight * (x * rsqrt(mean(x²) + eps)).to(dtype)`` in float32, as
# LlamaRMSNorm does in transformers 5.25 (Gemma's ``1 + weight`` is not one of them)
_LLAMA_NORMS = frozenset(
    {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "MixtralRMSNorm", "Olmo2RMSNorm"}
)


def _liger_code(code: TrainingCode, kwargs: str) -> None:
    code.after_arguments += [
        "# pip install liger-kernel  (CUDA + triton); patch the model class before loading it",
        "from liger_kernel.transformers import apply_liger_kernel_to_llama",
        f"apply_liger_kernel_to_llama({kwargs})",
    ]


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under ``torch.compile`` and PEFT wrappers."""
    model = getattr(model, "_orig_mod", model)
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model  # type: ignore[no-any-return]


def fused_causal_lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A causal LM's loss as Liger's ``lce_forward`` computes it: the decoder's hidden states
    and the LM head's weight go to the fused linear cross-entropy; the logits are never built.

    Labels are shifted as transformers' ``ForCausalLMLoss`` shifts them (pad one ignored label,
    drop the first), so the loss equals ``model(**batch).loss``."""
    hf = _unwrap(model)
    decoder = hf.get_decoder()  # type: ignore[operator]
    head = hf.get_output_embeddings()  # type: ignore[operator]
    out = decoder(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
    hidden = out[0]
    labels = nn.functional.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)[..., 1:]
    width = hidden.shape[-1]
    return fused_linear_cross_entropy(hidden.reshape(-1, width), head.weight, labels.reshape(-1), IGNORE_INDEX)


@register_cut
@dataclass(frozen=True)
class FusedLinearCE(Cut):
    """Liger's fused linear cross-entropy: the LM head and the loss computed chunk by chunk of
    tokens; the ``tokens × vocab`` logits (and their fp32 copy and gradient) never exist."""

    name = "fused-linear-ce"
    summary = (
        "fused linear cross-entropy (Liger): LM head + loss in token chunks, no full logits "
        "(causal LMs; CPU stand-in of the kernel)"
    )
    title = "fused linear cross-entropy"
    order = 88

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        hf = _unwrap(model)
        head = hf.get_output_embeddings() if is_hf(hf) else None  # type: ignore[operator]
        if head is None or getattr(ctx.source, "task", None) is not Task.CAUSAL_LM:
            raise UnsupportedConfiguration(
                f"fused linear cross-entropy replaces a causal LM's head and loss; "
                f"{type(hf).__name__} is not a causal LM"
            )
        if type(head) is not nn.Linear:
            raise UnsupportedConfiguration(
                f"fused linear cross-entropy needs the LM head as a plain Linear weight, got "
                f"{type(head).__name__} (a LoRA/quantized head)"
            )
        ctx.recipe.notes["fused_linear_ce"] = f"liger-kernel@{LIGER_COMMIT} (CPU stand-in)"
        return model

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        prog.loss_fn = fused_causal_lm_loss
        return prog

    def add_code(self, code: TrainingCode) -> None:
        _liger_code(code, "fused_linear_cross_entropy=True, cross_entropy=False")


def _swap_modules(model: nn.Module, pick: Any, make: Any) -> int:
    count = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if pick(child):
                setattr(parent, child_name, make(child))
                count += 1
    return count


@register_cut
@dataclass(frozen=True)
class FusedRMSNormCut(Cut):
    """Liger's RMSNorm: saves the input and one float32 ``rstd`` per row instead of the float32
    copies and products the eager norm keeps."""

    name = "fused-rmsnorm"
    summary = "fused RMSNorm (Liger): saves x and rstd only (Llama-family norms; CPU stand-in)"
    title = "fused RMSNorm"
    order = 6
    opt_in = True  # mostly a speed cut; sweep it on request
    candidate = False

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        n = _swap_modules(
            model,
            lambda m: type(m).__name__ in _LLAMA_NORMS,
            lambda m: FusedRMSNorm(m.weight, float(m.variance_epsilon)),
        )
        if not n:
            raise UnsupportedConfiguration(
                f"fused RMSNorm replaces Llama-family RMSNorms; {type(_unwrap(model)).__name__} has none"
            )
        ctx.recipe.notes["fused_rmsnorm_modules"] = n
        return model

    def add_code(self, code: TrainingCode) -> None:
        _liger_code(code, "rms_norm=True")


@register_cut
@dataclass(frozen=True)
class FusedSwiGLU(Cut):
    """Liger's SwiGLU: ``silu(gate) * up`` saving gate and up only (the activation is recomputed
    in backward), one ``tokens × intermediate`` tensor less per layer."""

    name = "fused-swiglu"
    summary = "fused SwiGLU MLP (Liger): recomputes silu in backward (Llama-family MLPs; CPU stand-in)"
    title = "fused SwiGLU"
    order = 6
    opt_in = True  # mostly a speed cut; sweep it on request
    candidate = False

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        def pick(m: nn.Module) -> bool:
            act = getattr(m, "act_fn", None)
            return (
                all(hasattr(m, n) for n in ("gate_proj", "up_proj", "down_proj"))
                and type(act).__name__ in {"SiLU", "SiLUActivation"}
            )

        n = _swap_modules(model, pick, lambda m: FusedSwiGLUMLP(m.gate_proj, m.up_proj, m.down_proj))
        if not n:
            raise UnsupportedConfiguration(
                f"fused SwiGLU replaces gate/up/down SiLU MLPs; {type(_unwrap(model)).__name__} has none"
            )
        ctx.recipe.notes["fused_swiglu_modules"] = n
        return model

    def add_code(self, code: TrainingCode) -> None:
        _liger_code(code, "swiglu=True")


# attention classes whose forward calls their module's ``apply_rotary_pos_emb`` with the
# rotate-half Llama rotation, q/k as ``batch × heads × seq × head_dim`` (transformers 5.25)
_LLAMA_ROPE_ATTENTION = frozenset(
    {"LlamaAttention", "MistralAttention", "Qwen2Attention", "Qwen3Attention", "MixtralAttention"}
)
_ROPE_CLASSES: dict[type, type] = {}


def _rope_class(cls: type) -> type:
    """``cls`` with its forward's ``apply_rotary_pos_emb`` bound to the Liger stand-in.

    ``apply_liger_kernel_to_llama(rope=True)`` sets ``modeling_llama.apply_rotary_pos_emb``
    process-wide; a module global patched here would leak into every other plan of the worker
    (and a scoped patch would miss checkpointing's recomputation in backward), so the same
    forward code runs with a globals dict in which that one name is the stand-in. The
    ``deprecate_kwarg("past_key_values")`` shim around the forward is left out (training
    passes ``cache=``)."""
    sub = _ROPE_CLASSES.get(cls)
    if sub is None:
        inner = inspect.unwrap(cls.forward)  # type: ignore[attr-defined]
        glb = dict(inner.__globals__)
        glb["apply_rotary_pos_emb"] = liger_rotary_pos_emb
        fwd = types.FunctionType(inner.__code__, glb, inner.__name__, inner.__defaults__, inner.__closure__)
        fwd.__kwdefaults__ = inner.__kwdefaults__
        sub = type(f"LigerRope{cls.__name__}", (cls,), {"forward": fwd, "__module__": cls.__module__})
        _ROPE_CLASSES[cls] = sub
    return sub


@register_cut
@dataclass(frozen=True)
class FusedRoPE(Cut):
    """Liger's RoPE: q and k rotated in place (no new q/k tensors, no ``rotate_half``
    temporaries), only ``cos``/``sin`` saved — which the eager rotation saves too, so the saving
    is the transient q/k copies, and the speed of one kernel."""

    name = "fused-rope"
    summary = "fused RoPE (Liger): q/k rotated in place, saves cos/sin only (Llama-family attention; CPU stand-in)"
    title = "fused RoPE"
    order = 6
    opt_in = True  # mostly a speed cut; sweep it on request
    candidate = False

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        n = 0
        for module in model.modules():
            cls = type(module)
            if cls.__name__ in _LLAMA_ROPE_ATTENTION and "apply_rotary_pos_emb" in inspect.unwrap(cls.forward).__code__.co_names:
                module.__class__ = _rope_class(cls)
                n += 1
        if not n:
            raise UnsupportedConfiguration(
                f"fused RoPE replaces the Llama-family rotary embedding; {type(_unwrap(model)).__name__} has none"
            )
        ctx.recipe.notes["fused_rope_modules"] = n
        return model

    def add_code(self, code: TrainingCode) -> None:
        _liger_code(code, "rope=True")
