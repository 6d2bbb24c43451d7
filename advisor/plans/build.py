"""One builder for measuring and simulating: a plan's recipe, model and step program.

One skeleton, :func:`build_program`, builds a plan's program for a real device and for fake
tensors; building is split in two (:func:`build_model`, then :func:`finish_program`) so that
simulation can swap the parameters for fake tensors in between.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import is_fake

from advisor.core.errors import InvalidInputError, PlanError
from advisor.models import ModelSource
from advisor.plans.types import BuildContext, Cut, Plan, Recipe
from profilers.simulate.optim8bit import AdamW8bitStandIn
from profilers.trial import StepProgram, TrialSpec

__all__ = [
    "OPTIMIZERS",
    "build_model",
    "build_program",
    "distribute",
    "finish_program",
    "make_optimizer",
    "prepare",
    "program_builder",
    "trial_spec",
]

log = logging.getLogger(__name__)


def make_optimizer(recipe: Recipe, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer the recipe names, over the trainable parameters."""
    if not params:
        raise InvalidInputError(
            "the plan leaves no trainable parameter", "drop a freezing cut or unfreeze some layers"
        )
    factory = OPTIMIZERS.get(recipe.optimizer)
    if factory is None:
        raise InvalidInputError(
            f"unknown optimizer '{recipe.optimizer}'", f"choose one of {', '.join(OPTIMIZERS)}"
        )
    return factory(params, recipe)


def _adamw(params: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    # torch's own defaults (foreach on CUDA, single-tensor on CPU): what users really run
    kwargs: dict[str, Any] = {"lr": recipe.lr}
    kwargs.update(recipe.optimizer_kwargs)
    return torch.optim.AdamW(params, **kwargs)


def _sgd(params: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": recipe.lr, "momentum": 0.0}
    kwargs.update(recipe.optimizer_kwargs)
    return torch.optim.SGD(params, **kwargs)


def _adafactor(params: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": recipe.lr}
    kwargs.update(recipe.optimizer_kwargs)
    factory = getattr(torch.optim, "Adafactor", None)
    if factory is not None:  # torch ≥ 2.5: factored second moments, no first moment
        return factory(params, **kwargs)  # type: ignore[no-any-return]
    from transformers.optimization import Adafactor

    return Adafactor(params, scale_parameter=False, relative_step=False, warmup_init=False, **kwargs)


def _adamw8bit(params: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": recipe.lr}
    kwargs.update(recipe.optimizer_kwargs)
    paged = bool(kwargs.pop("is_paged", False))
    if any(is_fake(p) for p in params):  # a replay: the stand-in with bitsandbytes' state layout
        return AdamW8bitStandIn(params, is_paged=paged, **kwargs)
    import bitsandbytes as bnb

    factory = bnb.optim.PagedAdamW8bit if paged else bnb.optim.AdamW8bit
    return factory(params, **kwargs)  # type: ignore[no-any-return]


OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], Recipe], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "sgd": _sgd,
    "adafactor": _adafactor,
    "adamw8bit": _adamw8bit,
    "paged-adamw8bit": lambda params, recipe: _adamw8bit(
        params, dataclasses.replace(recipe, optimizer_kwargs={**recipe.optimizer_kwargs, "is_paged": True})
    ),
}


def prepare(plan: Plan, batch_size: int, seq_len: int, *, check_available: bool = True) -> Recipe:
    """Check the plan's cuts can run here and let them fill in the recipe.

    ``check_available=False`` skips the check for libraries this machine would need to run the
    cuts (bitsandbytes): a simulation runs none of them.
    """
    conflict = plan.conflict()
    if conflict is not None:
        raise PlanError(f"plan {plan.name} cannot run: {conflict}", "drop one of the two cuts")
    recipe = Recipe(batch_size=batch_size, seq_len=seq_len)
    for cut in plan.cuts:
        if check_available:
            cut.check_available()
        cut.configure(recipe)
    return recipe


def build_model(plan: Plan, ctx: BuildContext) -> nn.Module:
    """Build the source's model on ``ctx.device`` and apply the plan's model transforms
    (all but a strategy's: :func:`distribute` applies that one, last)."""
    recipe = ctx.recipe
    model = ctx.source.build(
        ctx.device,
        pretrained=recipe.pretrained,
        attn_implementation=recipe.attn_implementation,
        dtype=recipe.model_dtype,
    )
    for cut in sorted(plan.cuts, key=lambda c: c.order):
        if not cut.distributed:
            model = cut.apply_model(model, ctx)
    return model


def distribute(plan: Plan, model: nn.Module, ctx: BuildContext) -> nn.Module:
    """Apply the plan's strategy cut (ddp, fsdp2, …) to the model the other cuts made.

    It comes last, on the parameters the step will really hold: LoRA's adapters exist and are
    the only trainable ones, checkpointing wraps the blocks before they are sharded (as
    torchtitan applies activation checkpointing before ``fully_shard``), and in a simulation
    the parameters are already fake tensors, so the engine lays out fake shards.
    """
    for cut in plan.cuts:
        if cut.distributed:
            model = cut.apply_model(model, ctx)
    return model


def finish_program(plan: Plan, model: nn.Module, ctx: BuildContext) -> StepProgram:
    """Optimizer, batch and step program for a built model (runs under a fake mode too)."""
    recipe = ctx.recipe
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(recipe, params)
    batch = ctx.source.make_batch(recipe.micro_batch, recipe.seq_len, ctx.device)
    contexts = list(recipe.forward_contexts)

    def forward_context() -> AbstractContextManager[Any]:
        stack = contextlib.ExitStack()
        for make in contexts:
            stack.enter_context(make())
        return stack

    prog = StepProgram(
        model=model,
        optimizer=optimizer,
        batch=batch,
        loss_fn=ctx.source.loss,
        tokens_per_micro_batch=recipe.micro_batch * ctx.source.tokens_per_sample(recipe.seq_len),
        samples_per_micro_batch=recipe.micro_batch,
        accumulation_steps=recipe.accumulation_steps,
        extra=dict(recipe.notes),
    )
    if contexts:
        prog.forward_context = forward_context
    for cut in plan.cuts:
        prog = cut.wrap_program(prog, ctx)
    return prog


def build_program(
    plan: Plan,
    source: ModelSource,
    batch_size: int,
    seq_len: int,
    device: torch.device,
    *,
    check_on: torch.device | Callable[[Cut], torch.device] | None = None,
    build_on: torch.device | None = None,
    on_model: Callable[[nn.Module], Any] | None = None,
    batch_source: Callable[[ModelSource], ModelSource] | None = None,
    finish_context: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    check_available: bool = True,
) -> StepProgram:
    """The plan realised as a step program on ``device``, for measuring and simulating alike.

    The skeleton: check that the cuts can run, let them fill in the recipe, build and transform
    the model, make the optimizer, batch and program. The hooks are what simulation changes:
    ``check_on`` is the device the cuts' checks see (or a function of the cut giving it) and ``build_on`` where the model is built
    (both ``device`` by default; ``meta`` to simulate), ``on_model`` runs on the built model
    (swap its parameters for fakes), ``batch_source`` turns the source into the one that makes
    the batch, and ``finish_context`` is entered while the program is made (a fake mode);
    ``check_available=False`` (simulating) does not ask for the libraries the cuts run with.
    """
    for cut in plan.cuts:
        cut.check_device(check_on(cut) if callable(check_on) else (check_on or device))
    recipe = prepare(plan, batch_size, seq_len, check_available=check_available)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        recipe.world_size = torch.distributed.get_world_size()  # this process is one rank of N
    model = build_model(plan, BuildContext(source, build_on or device, recipe))
    if on_model is not None:
        on_model(model)
    ctx = BuildContext(batch_source(source) if batch_source else source, device, recipe)
    with finish_context():
        model = distribute(plan, model, ctx)
        return finish_program(plan, model, ctx)


def program_builder(
    plan: Plan, source: ModelSource, batch_size: int, seq_len: int
) -> Callable[[torch.device], StepProgram]:
    """A builder for :func:`profilers.trial.run_trial`: the plan realised on a real device."""
    source.check_sizes(batch_size, seq_len)

    def build(device: torch.device) -> StepProgram:
        return build_program(plan, source, batch_size, seq_len, device)

    return build


def trial_spec(
    plan: Plan,
    source: ModelSource,
    batch_size: int,
    seq_len: int,
    *,
    device: str = "auto",
    steps: int = 3,
    warmup_steps: int = 1,
) -> TrialSpec:
    """The record names and step counts of one trial of ``plan`` (measured or simulated)."""
    return TrialSpec(
        model=source.name,
        plan=plan.name,
        cuts=plan.cut_names,
        batch_size=batch_size,
        seq_len=seq_len,
        device=device,
        warmup_steps=warmup_steps,
        timed_steps=steps,
    )


