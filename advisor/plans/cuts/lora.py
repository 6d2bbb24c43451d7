"""Cut 2: LoRA (PEFT) on a frozen base, and QLoRA, its variant on a 4-/8-bit quantized base."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import (
    bitsandbytes_reason,
    check_targets,
    default_lora_targets,
    find_repeated_blocks,
    leaf_modules_summary,
    matches_target,
)
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut
from advisor.plans.view import EstimateView
from profilers.trial import UnsupportedConfiguration

__all__ = ["LoRA", "QLoRA"]


def _lora(model: nn.Module, cut: LoRA | QLoRA, ctx: BuildContext) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    targets = tuple(cut.targets) or default_lora_targets(model)
    check_targets(model, targets)
    config = LoraConfig(
        r=cut.r,
        lora_alpha=cut.alpha,
        lora_dropout=cut.dropout,
        target_modules=list(targets),
        bias="none",
        fan_in_fan_out=_targets_conv1d(model, targets),  # GPT-2 stores its linears transposed
    )
    with warnings.catch_warnings():  # peft asks the deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    ctx.recipe.notes["lora_targets"] = list(targets)
    ctx.recipe.notes["lora_r"] = cut.r
    return peft_model  # type: ignore[no-any-return]


def _targets_conv1d(model: nn.Module, targets: Sequence[str]) -> bool:
    """True when the targeted layers are transformers' ``Conv1D`` (weights stored (in, out))."""
    for name, module in model.named_modules():
        if type(module).__name__ == "Conv1D" and any(matches_target(name, t) for t in targets):
            return True
    return False


def _check_lora_params(cut: LoRA | QLoRA) -> None:
    if cut.r < 1:
        raise PlanError(f"{cut.name}: r must be ≥ 1, got {cut.r}", f"for example {cut.name}(r=8)")
    if not 0.0 <= cut.dropout < 1.0:
        raise PlanError(
            f"{cut.name}: dropout must be in [0, 1), got {cut.dropout}",
            f"for example {cut.name}(dropout=0.05)",
        )


def _lora_estimate(cut: LoRA | QLoRA, view: EstimateView) -> None:
    view.lora = True
    view.lora_r = int(cut.r)
    view.lora_dropout = float(cut.dropout)
    view.lora_targets = tuple(cut.targets)


def _lora_code(cut: LoRA | QLoRA, code: TrainingCode) -> None:
    code.lora_kwargs = {"r": repr(cut.r), "lora_alpha": repr(cut.alpha), "lora_dropout": repr(cut.dropout)}
    code.lora_targets = tuple(cut.targets)


@register_cut
@dataclass(frozen=True)
class LoRA(Cut):
    """Low-rank adapters through PEFT on a frozen base; ``targets`` empty → automatic."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ()

    name = "lora"
    summary = "freeze the base, train low-rank adapters (PEFT LoRA: r, alpha, dropout, targets)"
    conflicts = frozenset({"qlora"})
    order = 30
    title = "LoRA"
    trains_subset = True

    def __post_init__(self) -> None:
        _check_lora_params(self)

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        return _lora(model, self, ctx)

    def shape_estimate(self, view: EstimateView) -> None:
        _lora_estimate(self, view)

    def add_code(self, code: TrainingCode) -> None:
        _lora_code(self, code)


_COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _quantize_blocks(
    model: nn.Module, bits: int, device: torch.device, compute_dtype: torch.dtype = torch.float32
) -> int:
    """Swap every ``nn.Linear`` in the repeated blocks for a frozen bitsandbytes 4-bit (NF4) or
    8-bit layer holding the same weights. Returns the number of layers swapped."""
    import bitsandbytes as bnb

    _, blocks = find_repeated_blocks(model)
    scope = blocks or [model]
    swapped = 0
    for block in scope:
        for parent in list(block.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not nn.Linear:
                    continue
                has_bias = child.bias is not None
                weight = child.weight.data.detach().to("cpu", torch.float32)
                new: nn.Module
                if bits == 4:
                    new = bnb.nn.Linear4bit(
                        child.in_features, child.out_features, bias=has_bias,
                        compute_dtype=compute_dtype, quant_type="nf4",
                    )  # fmt: skip
                    new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
                else:
                    new = bnb.nn.Linear8bitLt(
                        child.in_features, child.out_features, bias=has_bias, has_fp16_weights=False
                    )
                    new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
                if has_bias:
                    new.bias = nn.Parameter(child.bias.data.detach().to("cpu"), requires_grad=False)
                setattr(parent, child_name, new.to(device))  # moving quantizes the weights
                swapped += 1
    return swapped


@register_cut
@dataclass(frozen=True)
class QLoRA(Cut):
    """LoRA on a base whose block linears are quantized by bitsandbytes (NF4 or int8)."""

    bits: int = 4
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ()
    compute_dtype: str = "float32"  # the 4-bit layers' matmul dtype: float32, bfloat16, float16

    name = "qlora"
    summary = "LoRA on a frozen base quantized to 4-bit NF4 or 8-bit (bitsandbytes)"
    conflicts = frozenset({"lora", "bf16-weights"})
    order = 29
    title = "QLoRA"
    simulation_unsupported = (
        "bitsandbytes quantizes from the real weight values, which a meta/fake model does "
        "not have; measure it, or estimate it"
    )
    speed_stand_in = "lora"
    needs_bitsandbytes = True
    trains_subset = True

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        compute = str(settings.get("compute_dtype", ""))
        return "bf16" in compute or "bfloat16" in compute

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise PlanError(f"qlora: bits must be 4 or 8, got {self.bits}", "qlora(bits=4) or qlora(bits=8)")
        dtype = _DTYPE_ALIASES.get(self.compute_dtype, self.compute_dtype)
        if dtype not in _COMPUTE_DTYPES:
            raise PlanError(
                f"qlora: compute_dtype must be one of {', '.join(_COMPUTE_DTYPES)}, got {self.compute_dtype}",
                "for example qlora(compute_dtype=bfloat16)",
            )
        object.__setattr__(self, "compute_dtype", dtype)  # one spelling, one plan name
        _check_lora_params(self)

    def check_available(self) -> None:
        reason = bitsandbytes_reason()
        if reason is not None:
            raise UnsupportedConfiguration(reason)

    def check_device(self, device: torch.device) -> None:
        if device.type not in ("cpu", "cuda"):
            raise UnsupportedConfiguration(f"bitsandbytes quantization does not run on {device.type}")

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(False)
        swapped = _quantize_blocks(model, self.bits, ctx.device, _COMPUTE_DTYPES[self.compute_dtype])
        if not swapped:
            raise PlanError(
                f"qlora found no nn.Linear layer to quantize in {type(model).__name__}",
                "use lora instead; layers there: " + leaf_modules_summary(model),
            )
        ctx.recipe.notes["quantized_layers"] = swapped
        ctx.recipe.notes["quantized_bits"] = self.bits
        return _lora(model, self, ctx)

    def shape_estimate(self, view: EstimateView) -> None:
        _lora_estimate(self, view)
        view.qlora_bits = int(self.bits)

    def add_code(self, code: TrainingCode) -> None:
        _lora_code(self, code)
        code.peft_imports.append("prepare_model_for_kbit_training")
        code.transformers_imports.append("BitsAndBytesConfig")
        if self.bits == 4:
            compute = "torch.bfloat16" if "bf16" in code.cut_names else "torch.float32"
            code.before_load += [
                "bnb = BitsAndBytesConfig(",
                "    load_in_4bit=True,",
                '    bnb_4bit_quant_type="nf4",',
                f"    bnb_4bit_compute_dtype={compute},",
                ")",
            ]
        else:
            code.before_load.append("bnb = BitsAndBytesConfig(load_in_8bit=True)")
        code.load_kwargs["quantization_config"] = "bnb"
        code.after_load.append(
            "model = prepare_model_for_kbit_training(model, use_gradient_checkpointing="
            f"{'grad-ckpt' in code.cut_names})"
        )
