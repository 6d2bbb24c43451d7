"""Precision cuts: bf16 or fp16 mixed precision (autocast), and pure bf16 weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import chain_context
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut, Recipe
from advisor.plans.view import EstimateView
from profilers.trial import StepProgram, UnsupportedConfiguration

__all__ = ["Bf16Autocast", "Bf16Weights", "Fp16Autocast"]


def _autocast_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why autocast to ``dtype`` cannot run on this machine's ``device``, or ``None``. A device
    that is not here (a CUDA target simulated on a CPU machine) is not checked."""
    if device.type == "meta" or (device.type == "cuda" and not torch.cuda.is_available()):
        return None
    try:
        with torch.autocast(device.type, dtype=dtype):
            pass
    except Exception as exc:
        return f"{dtype} autocast is not supported on {device.type}: {exc}"
    return None


@register_cut
@dataclass(frozen=True)
class Bf16Autocast(Cut):
    """bf16 autocast around forward and the loss; weights and optimizer stay fp32."""

    name = "bf16"
    summary = "bf16 mixed precision (autocast; fp32 weights and optimizer)"
    group = "precision"
    order = 80
    title = "bf16 autocast"

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        return True

    def check_device(self, device: torch.device) -> None:
        if device.type == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise UnsupportedConfiguration("this GPU has no bf16 support (needs compute capability ≥ 8.0)")
        reason = _autocast_reason(device, torch.bfloat16)
        if reason:
            raise UnsupportedConfiguration(reason)

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        device_type = ctx.device.type
        chain_context(prog, lambda: torch.autocast(device_type, dtype=torch.bfloat16))
        prog.extra["autocast"] = "bfloat16"
        return prog

    def shape_estimate(self, view: EstimateView) -> None:
        view.precision = "autocast"

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["bf16"] = "True"
        code.torch_contexts.append('torch.autocast("cuda", dtype=torch.bfloat16)')


@register_cut
@dataclass(frozen=True)
class Fp16Autocast(Cut):
    """fp16 autocast with a GradScaler; weights and optimizer stay fp32."""

    name = "fp16"
    summary = "fp16 mixed precision (autocast + GradScaler; fp32 weights and optimizer)"
    group = "precision"
    order = 80
    title = "fp16 autocast"

    def check_device(self, device: torch.device) -> None:
        reason = _autocast_reason(device, torch.float16)
        if reason:
            raise UnsupportedConfiguration(reason)

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        device_type = ctx.device.type
        try:
            scaler = torch.amp.GradScaler(device_type)
        except Exception as exc:
            raise UnsupportedConfiguration(f"no GradScaler for {device_type}: {exc}") from exc
        optimizer = prog.optimizer
        chain_context(prog, lambda: torch.autocast(device_type, dtype=torch.float16))

        def step() -> None:
            scaler.step(optimizer)
            scaler.update()

        prog.scale_loss = scaler.scale
        prog.optimizer_step = step
        prog.extra["autocast"] = "float16"
        return prog

    def shape_estimate(self, view: EstimateView) -> None:
        view.precision = "autocast"

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["fp16"] = "True"
        code.torch_contexts.append('torch.autocast("cuda", dtype=torch.float16)')
        code.grad_scaler = True


@register_cut
@dataclass(frozen=True)
class Bf16Weights(Cut):
    """Pure bf16: the model is built, trained and stepped in bfloat16."""

    name = "bf16-weights"
    summary = "pure bf16: weights, gradients and optimizer state in bfloat16"
    group = "precision"
    order = 70
    title = "bf16 weights"

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        return True

    def configure(self, recipe: Recipe) -> None:
        recipe.model_dtype = torch.bfloat16  # built in bf16: never a full fp32 copy in memory

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        return model.to(torch.bfloat16)  # what was added since (LoRA adapters) follows

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        def cast(x: Any) -> Any:
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                return x.to(torch.bfloat16)
            if isinstance(x, dict):
                return {k: cast(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return type(x)(cast(v) for v in x)
            return x

        prog.batch = cast(prog.batch)
        return prog


    def shape_estimate(self, view: EstimateView) -> None:
        view.precision = "bf16"

    def add_code(self, code: TrainingCode) -> None:
        code.load_kwargs["dtype"] = "torch.bfloat16"
        code.torch_dtype.append("model = model.to(torch.bfloat16)")
