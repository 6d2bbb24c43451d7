"""Strategies over several GPUs as cuts: ``ddp``, ``fsdp2`` and ``hsdp``, on torch's own engines.

Each is applied last (:func:`advisor.plans.build.distribute`), to the model the other cuts made,
in a process that is one rank of ``Recipe.world_size``:

* ``fsdp2(reshard=true|false, wrap=layer|root)`` — torch's FSDP2, ``fully_shard`` on each
  repeated block (``wrap=layer``) and on the root, over a 1-D device mesh of every rank;
  ``reshard=false`` keeps the gathered parameters from forward to backward
  (``reshard_after_forward=False``);
* ``hsdp(shard=N)`` — the same ``fully_shard`` over a 2-D mesh (replicas × ``N``-way shards):
  parameters sharded within a group of ``N`` ranks, gradients all-reduced across groups;
* ``ddp`` — ``DistributedDataParallel``: a whole replica per rank, gradients all-reduced in
  buckets.

On fake tensors (a simulated rank, on torch's fake process group) FSDP2 and HSDP run as they
are: ``fully_shard`` lays out the DTensor shards (padded to a multiple of the world size) and
its all-gather / reduce-scatter buffers are real allocations of the replay. DDP cannot run
there (its C++ reducer reads tensor data), so the replay runs the replica's step with DDP's
gradient buckets held beside it (:class:`_DdpBuckets`: one flat buffer per dtype, as many bytes
as the trainable parameters, as the reducer of torch 2.13 allocates them in
``Reducer::initialize_buckets``); a measured DDP run registers its real buckets, caught by a
communication hook, so the two count the same thing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import nn
from torch._subclasses.fake_tensor import is_fake, unset_fake_temporarily

from advisor.core.errors import InvalidInputError, PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import find_repeated_blocks
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut, Plan
from advisor.plans.view import EstimateView
from profilers.tracker import TensorMemoryTracker
from profilers.trial import UnsupportedConfiguration

__all__ = ["Ddp", "Fsdp2", "Hsdp", "check_world", "strategy_of"]

log = logging.getLogger(__name__)

WRAPS = ("layer", "root")


def strategy_of(plan: Plan) -> _Strategy | None:
    """The plan's strategy cut (one at most: they share the group ``strategy``), or ``None``."""
    return next((c for c in plan.cuts if isinstance(c, _Strategy)), None)


def check_world(plan: Plan, gpus: int, nodes: int = 1) -> None:
    """Raise :class:`InvalidInputError` when ``plan`` cannot run on ``gpus`` GPUs over
    ``nodes`` machines: a count below 1, a strategy on one GPU, several GPUs without a strategy,
    or a shard size that does not divide the count."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise InvalidInputError(
            f"the number of GPUs must be a whole number ≥ 1, got {gpus!r}", "pass gpus=2 or more"
        )
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1 or gpus % nodes:
        raise InvalidInputError(
            f"nodes must be a whole number ≥ 1 that divides the GPUs ({gpus}), got {nodes!r}",
            "pass nodes=1, or a count of machines that divides gpus",
        )
    strategy = next((c for c in plan.cuts if c.distributed), None)  # ddp, fsdp2, hsdp, zero
    if strategy is None:
        if gpus > 1:
            raise InvalidInputError(
                f"{gpus} GPUs need a strategy: plan {plan.name} has none",
                "add one of ddp, fsdp2, hsdp(shard=N) to the plan, e.g. fsdp2+lora",
            )
        return
    if gpus == 1:
        raise InvalidInputError(
            f"{strategy.label()} is a distributed strategy and needs more than one GPU (it shards "
            "over several), but gpus=1",
            "pass gpus=2 or more, or drop the strategy from the plan",
        )
    if isinstance(strategy, _Strategy):
        strategy.check_world(gpus)


def _mesh(device_type: str, shape: tuple[int, ...], names: tuple[str, ...]) -> Any:
    """A device mesh over every rank, made outside any fake mode (it reads its rank map)."""
    from torch.distributed.device_mesh import init_device_mesh

    with unset_fake_temporarily():
        return init_device_mesh(device_type, shape, mesh_dim_names=names)


def _need_group(cut: Cut) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        raise UnsupportedConfiguration(
            f"{cut.name} needs a process group of several ranks: simulate or profile with gpus=N (N ≥ 2)"
        )
    return dist.get_world_size()


class _Strategy(Cut):
    """What the strategies share: their group, their place in the order, their traits."""

    group = "strategy"
    order = 95  # after every model transform (distribute() applies it last anyway)
    opt_in = True  # a one-GPU sweep never tries them
    candidate = False
    distributed = True

    def check_world(self, gpus: int) -> None:
        """Raise :class:`InvalidInputError` when this strategy cannot run on ``gpus`` ranks."""

    def comm_pattern(self, world_size: int) -> tuple[str, int | None]:
        """The collectives this strategy runs per step, as :func:`advisor.engines.comm.comm_volume`
        names them (``"fsdp2"``, ``"fsdp2-noreshard"``, ``"hsdp"``, ``"ddp"``), and the shard
        group's size where it is not every rank."""
        raise NotImplementedError

    def shape_estimate(self, view: EstimateView) -> None:
        view.notes.append(f"{self.name}: per-rank sharding is not in the closed-form estimate; simulate it")


@register_cut
@dataclass(frozen=True)
class Fsdp2(_Strategy):
    """torch's FSDP2: ``fully_shard`` per repeated block and on the root."""

    reshard: bool = True
    wrap: str = "layer"

    name = "fsdp2"
    summary = "FSDP2 (torch fully_shard): parameters, gradients and optimizer state sharded over the GPUs"
    title = "FSDP2"
    mesh_names: ClassVar[tuple[str, ...]] = ("shard",)

    def __post_init__(self) -> None:
        if self.wrap not in WRAPS:
            raise PlanError(f"{self.name}: wrap must be one of {', '.join(WRAPS)}, got {self.wrap!r}",
                            f"for example {self.name}(wrap=layer)")  # fmt: skip

    def mesh_shape(self, world_size: int) -> tuple[int, ...]:
        return (world_size,)

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        from torch.distributed.fsdp import fully_shard

        world = _need_group(self)
        self.check_world(world)
        mesh = _mesh(ctx.device.type, self.mesh_shape(world), self.mesh_names)
        units: list[nn.Module] = []
        if self.wrap == "layer":
            _, units = find_repeated_blocks(model)
        for block in units:
            fully_shard(block, mesh=mesh, reshard_after_forward=self.reshard)
        fully_shard(model, mesh=mesh, reshard_after_forward=self.reshard)
        ctx.recipe.notes["strategy"] = self.label()
        ctx.recipe.notes["sharded_units"] = len(units) + 1
        return model

    def comm_pattern(self, world_size: int) -> tuple[str, int | None]:
        if self.name == "hsdp":
            return "hsdp", self.mesh_shape(world_size)[-1]
        return ("fsdp2" if self.reshard else "fsdp2-noreshard"), None

    def add_code(self, code: TrainingCode) -> None:
        code.torch_recompute += [
            "from torch.distributed.fsdp import fully_shard  # launch with torchrun --nproc_per_node N",
            "for block in model.layers:  # your repeated blocks",
            f"    fully_shard(block, reshard_after_forward={self.reshard})",
            f"fully_shard(model, reshard_after_forward={self.reshard})",
        ]


@register_cut
@dataclass(frozen=True)
class Hsdp(Fsdp2):
    """FSDP2 over a 2-D mesh: ``shard``-way sharding inside each replica group."""

    shard: int = 2

    name = "hsdp"
    summary = "HSDP (fully_shard on a 2-D mesh): sharded within groups of shard GPUs, replicated across them"
    title = "HSDP"
    mesh_names = ("replicate", "shard")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.shard, bool) or self.shard < 1:
            raise PlanError(f"hsdp: shard must be ≥ 1, got {self.shard}", "for example hsdp(shard=8)")

    def check_world(self, gpus: int) -> None:
        if gpus % self.shard:
            raise InvalidInputError(
                f"hsdp(shard={self.shard}) needs a number of GPUs divisible by {self.shard}, got {gpus}",
                f"pass gpus as a multiple of {self.shard}, or hsdp(shard=N) with N dividing {gpus}",
            )

    def mesh_shape(self, world_size: int) -> tuple[int, ...]:
        return (world_size // self.shard, self.shard)


class _DdpBuckets(nn.Module):
    """DDP's replica on fake tensors: the module as it is, with the reducer's gradient buckets
    (one flat buffer per dtype of the trainable parameters) held beside it. The ring all-reduce
    runs in place in those buckets, so it adds nothing else to the peak."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        sizes: dict[tuple[torch.dtype, torch.device], int] = {}
        for p in module.parameters():
            if p.requires_grad:
                key = (p.dtype, p.device)
                sizes[key] = sizes.get(key, 0) + p.numel()
        self._buckets = [torch.empty(n, dtype=dtype, device=device) for (dtype, device), n in sizes.items()]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def communication_buffers(self) -> list[torch.Tensor]:
        return list(self._buckets)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _ddp(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel`` with its gradient buckets caught by a communication hook, so
    the tracker can count them (they are allocated by the C++ reducer, out of its sight)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel

    buckets: dict[int, torch.Tensor] = {}

    class TrackedDdp(DistributedDataParallel):
        def communication_buffers(self) -> list[torch.Tensor]:
            return list(buckets.values())

        def _pre_forward(self, *inputs: Any, **kwargs: Any) -> Any:
            # torch 2.13's reducer rebuilds its buckets once, in the second iteration's
            # ``_pre_forward`` (``Reducer::rebuild_buckets``: in the order the gradients became
            # ready, the first bucket capped at ``dist._DEFAULT_FIRST_BUCKET_BYTES``), and frees
            # the old ones. Do it here first, so that a tracker sees the new buckets as
            # communication buffers, and let the old ones go: the hook's references would keep
            # a dead set alive beside the new one until each index is reused (on GPT-2, whose
            # tied embedding's gradient is ready last, through the whole backward)
            if torch.is_grad_enabled() and not self._has_rebuilt_buckets:
                with _as_communication():
                    rebuilt = self.reducer._rebuild_buckets()
                if rebuilt:
                    self._has_rebuilt_buckets = True
                    buckets.clear()
            return super()._pre_forward(*inputs, **kwargs)

    wrapped = TrackedDdp(model)

    def hook(state: Any, bucket: Any) -> torch.futures.Future[torch.Tensor]:
        buckets[bucket.index()] = bucket.buffer()
        return allreduce_hook(state, bucket)

    # DDP checks the hook's annotations (real classes, not this module's postponed strings)
    hook.__annotations__ = {
        "state": object,
        "bucket": dist.GradBucket,
        "return": torch.futures.Future[torch.Tensor],
    }
    wrapped.register_comm_hook(None, hook)
    return wrapped


def _as_communication() -> contextlib.AbstractContextManager[None]:
    """Storages made inside count as communication buffers for the tensor tracker watching this
    step, if one is (:meth:`profilers.tracker.TensorMemoryTracker.communicating`)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    for mode in reversed(_get_current_dispatch_mode_stack()):
        if isinstance(mode, TensorMemoryTracker):
            return mode.communicating()
    return contextlib.nullcontext()


def _fake_params(model: nn.Module) -> bool:
    first: Iterator[nn.Parameter] = model.parameters()
    return any(is_fake(p) for p in first)


@register_cut
@dataclass(frozen=True)
class Ddp(_Strategy):
    """``DistributedDataParallel``: a whole replica per rank, gradients all-reduced in buckets."""

    name = "ddp"
    summary = "DDP (DistributedDataParallel): a full replica per GPU, gradients all-reduced"
    title = "DDP"

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        _need_group(self)
        ctx.recipe.notes["strategy"] = self.label()
        if _fake_params(model):  # the reducer reads data: hold its buckets, run the replica
            return _DdpBuckets(model)
        return _ddp(model)

    def comm_pattern(self, world_size: int) -> tuple[str, int | None]:
        return "ddp", None

    def add_code(self, code: TrainingCode) -> None:
        code.torch_recompute += [
            "from torch.nn.parallel import DistributedDataParallel  # launch with torchrun --nproc_per_node N",
            "model = DistributedDataParallel(model)",
        ]
