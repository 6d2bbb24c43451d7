"""Execution cuts: gradient accumulation, the attention implementation, activation offload and
``torch.compile``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import chain_context, is_hf
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut, Recipe
from advisor.plans.view import EstimateView
from profilers.simulate.offload import offload_to_host
from profilers.trial import StepProgram, UnsupportedConfiguration

__all__ = ["Accumulation", "ActivationOffload", "Compile", "EagerAttention", "SdpaAttention"]


@register_cut
@dataclass(frozen=True)
class Accumulation(Cut):
    """Micro-batches of ``batch / steps`` with gradient accumulation over ``steps``."""

    steps: int = 4

    name = "accum"
    summary = "gradient accumulation: micro-batch = batch / steps (steps=4 by default)"
    title = "accumulation"
    candidate = False
    splits_batch = True

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise PlanError(f"accum: steps must be ≥ 2, got {self.steps}", "for example accum(steps=4)")

    def configure(self, recipe: Recipe) -> None:
        if recipe.batch_size % self.steps:
            raise PlanError(
                f"accum(steps={self.steps}) needs a batch divisible by {self.steps}, got "
                f"batch_size={recipe.batch_size}",
                f"pass a batch that is a multiple of {self.steps}, or accum(steps=N) with N dividing it",
            )
        recipe.micro_batch_size = recipe.batch_size // self.steps
        recipe.notes["micro_batch_size"] = recipe.micro_batch_size

    def shape_estimate(self, view: EstimateView) -> None:
        view.accumulation = int(self.steps)

    def add_code(self, code: TrainingCode) -> None:
        code.accumulation_steps = self.steps
        code.training_arguments["gradient_accumulation_steps"] = str(self.steps)


class _Attention(Cut):
    """Choose a transformers attention implementation (``implementation``)."""

    implementation: ClassVar[str] = ""
    group = "attention"
    order = 5

    def configure(self, recipe: Recipe) -> None:
        recipe.attn_implementation = self.implementation

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        config = getattr(model, "config", None)
        if not is_hf(model) or config is None:
            raise UnsupportedConfiguration(
                f"{self.name} chooses a transformers attention implementation; "
                f"{type(model).__name__} runs its own attention code"
            )
        actual = getattr(config, "_attn_implementation", None)
        if actual != self.implementation:
            raise UnsupportedConfiguration(
                f"{type(model).__name__} runs attention '{actual}', not '{self.implementation}'"
            )
        ctx.recipe.notes["attn_implementation"] = actual
        return model

    def shape_estimate(self, view: EstimateView) -> None:
        view.attention = self.implementation

    def add_code(self, code: TrainingCode) -> None:
        code.load_kwargs["attn_implementation"] = f'"{self.implementation}"'


@register_cut
@dataclass(frozen=True)
class EagerAttention(_Attention):
    """Eager attention: the scores matrix materialized."""

    name = "eager-attn"
    summary = "eager (materialized) attention in transformers models"
    title = "eager attention"
    implementation = "eager"


@register_cut
@dataclass(frozen=True)
class SdpaAttention(_Attention):
    """SDPA attention: fused kernels where they apply."""

    name = "sdpa-attn"
    summary = "scaled_dot_product_attention (fused kernels) in transformers models"
    title = "SDPA attention"
    implementation = "sdpa"

    def shape_estimate(self, view: EstimateView) -> None:
        """The estimate counts SDPA where the model has it already."""


@register_cut
@dataclass(frozen=True)
class ActivationOffload(Cut):
    """Keep activations saved for backward in pinned host memory (``save_on_cpu``'s copies;
    saved weights stay on the device).

    Simulated for a CUDA target: the replay counts the host copies as host memory, apart from
    the device's (``SimulationRecord.host_peak_bytes``)."""

    name = "offload"
    summary = "offload activations saved for backward to host memory (CUDA only)"
    order = 85
    title = "activation offload"
    checked_on_target = True  # simulated for a CUDA target from the fake CPU device

    def check_device(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise UnsupportedConfiguration(
                f"activation offload moves saved activations from the GPU to host memory; on "
                f"{device.type} they are in host memory already, so there is nothing to save"
            )

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        # torch's save_on_cpu(pin_memory=True) hooks, leaving the saved weights (tensors on a
        # parameter's or buffer's storage) on the device as torchtune's OffloadActivations
        # does; in a replay, the host copies count as host memory (profilers.simulate.offload).
        # The storages are read at each forward: bitsandbytes recasts a bias in place once.
        model = prog.model

        def offload() -> Any:
            return offload_to_host(pin_memory=True, keep=[*model.parameters(), *model.buffers()])

        chain_context(prog, offload)
        prog.extra["activation_offload"] = True
        return prog

    def shape_estimate(self, view: EstimateView) -> None:
        view.offload = True

    def add_code(self, code: TrainingCode) -> None:
        code.after_arguments += [
            "# activation offload has no TrainingArguments flag: run forward and backward under",
            "# torch.autograd.graph.save_on_cpu(pin_memory=True) (e.g. in a Trainer.training_step override);",
            "# the figures leave saved weights on the GPU, as torchtune's OffloadActivations does",
        ]
        code.torch_contexts.append("torch.autograd.graph.save_on_cpu(pin_memory=True)")


@register_cut
@dataclass(frozen=True)
class Compile(Cut):
    """``torch.compile`` on the model (opt-in: compiling is slow, above all on CPU).

    Simulated as an upper bound: the eager replay of the plan without it."""

    backend: str = "inductor"

    name = "compile"
    summary = "torch.compile the model (opt-in; compiling is slow on CPU)"
    order = 90
    opt_in = True
    title = "torch.compile"
    # torch.compile fuses and reorders ops (usually needing less memory than the eager step):
    # the replay runs the eager step; measure it for the compiled figure
    simulation_upper_bound = "eager replay of a compiled plan"
    candidate = False

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        prog.model = torch.compile(prog.model, backend=self.backend)  # type: ignore[assignment]
        prog.extra["compiled_backend"] = self.backend
        # under the exact tracker (a TorchDispatchMode) torch 2.13's dynamo runs the eager
        # fallback, not the compiled graph (tests/profilers/test_compile_tracked.py): the timed
        # steps are compiled, the tracked peak is the eager step's — an upper bound, as simulated
        prog.extra["compile_peak"] = "eager step (torch.compile falls back to eager under the exact tracker)"
        return prog

    def shape_estimate(self, view: EstimateView) -> None:
        view.notes.append("compile: counted as the eager step (torch.compile usually needs less)")

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["torch_compile"] = "True"
        code.torch_compile.append("model = torch.compile(model)")
