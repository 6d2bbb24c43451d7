"""Plan types: a Cut, a Plan (a set of cuts), the Recipe the cuts fill in.

The baseline plan is full fine-tuning in fp32 with AdamW. A :class:`Cut` changes that in up to
three places, in this order:

1. :meth:`Cut.configure` edits the :class:`Recipe` before anything is built (pretrained or not,
   attention implementation, optimizer, micro-batch and accumulation, precision);
2. :meth:`Cut.apply_model` transforms the built model (LoRA, freezing, checkpointing, …);
3. :meth:`Cut.wrap_program` adjusts the finished :class:`StepProgram` (autocast, offload, …).

Before any of that, :meth:`Cut.check_available` and :meth:`Cut.check_device` raise
``UnsupportedConfiguration`` with the reason when the cut cannot run here (no bitsandbytes, no
CUDA). The cuts themselves live in :mod:`advisor.plans.cuts`.

Building is split in two (:func:`build_model`, then :func:`finish_program`) so that simulation
can swap the parameters for fake tensors in between.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from advisor.models import ModelSource
from advisor.plans.code import TrainingCode
from advisor.plans.view import EstimateView
from profilers.trial import StepProgram

__all__ = ["BASELINE", "BuildContext", "Cut", "Plan", "Recipe", "conflict_between", "redundancy_in"]

log = logging.getLogger(__name__)

BASELINE = "baseline"


@dataclass
class Recipe:
    """What the plan asks for, filled in by the cuts' ``configure`` before building."""

    batch_size: int  # the effective batch of one optimizer step
    seq_len: int
    micro_batch_size: int = 0  # 0 → batch_size (no accumulation)
    pretrained: bool = True
    attn_implementation: str | None = None
    model_dtype: torch.dtype | None = None  # what the weights are built in (None: the source's)
    optimizer: str = "adamw"
    lr: float = 1e-4
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    forward_contexts: list[Callable[[], AbstractContextManager[Any]]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # JSON-safe figures for the result
    world_size: int = 1  # processes (GPUs) the step runs on; > 1 only with a strategy cut
    nodes: int = 1  # machines they are spread over

    @property
    def micro_batch(self) -> int:
        return self.micro_batch_size or self.batch_size

    @property
    def accumulation_steps(self) -> int:
        return max(1, self.batch_size // self.micro_batch)


@dataclass
class BuildContext:
    """What a cut may look at while it transforms the model or the program."""

    source: ModelSource
    device: torch.device
    recipe: Recipe


class Cut:
    """One cost-cutting technique; subclasses set the class attributes and override hooks.

    Concrete cuts are frozen dataclasses whose fields are their parameters (see
    :mod:`advisor.plans.cuts`); :meth:`params` and :meth:`label` read those fields. Each cut also
    carries what the rest of the advisor knows about it (its traits, its estimate contribution,
    its code fragment), so a new cut is one class.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # names of cuts that cannot be combined with this one, and of cuts that make it pointless
    conflicts: ClassVar[frozenset[str]] = frozenset()
    redundant_with: ClassVar[frozenset[str]] = frozenset()
    redundancy_reason: ClassVar[str] = ""  # why ``redundant_with`` makes this cut pointless
    # cuts of the same group choose the same thing (the optimizer, the precision, …): one only
    group: ClassVar[str | None] = None
    order: ClassVar[int] = 50  # model transforms run in ascending order; also the name order
    opt_in: ClassVar[bool] = False  # left out of the default sweep (e.g. torch.compile)

    # -- traits: what the rest of the advisor knows about this cut lives here, on its class --
    title: ClassVar[str] = ""  # for people, in plan titles and why lines: "LoRA", "checkpointing"
    # why the fake-tensor replay cannot run this cut (None: it can)
    simulation_unsupported: ClassVar[str | None] = None
    # the replay runs the plan without this cut and its figures are an upper bound, with this
    # detail ("eager replay of a compiled plan"); None: the cut is replayed as it is
    simulation_upper_bound: ClassVar[str | None] = None
    # the simulable cut whose FLOPs stand in for this one's step time (qlora → lora); a cut that
    # cannot be simulated and has none is dropped for the speed estimate (same arithmetic)
    speed_stand_in: ClassVar[str | None] = None
    needs_bitsandbytes: ClassVar[bool] = False  # runs bitsandbytes' CUDA kernels
    trains_subset: ClassVar[bool] = False  # leaves part of the weights frozen (not for scratch)
    candidate: ClassVar[bool] = True  # among the recommender's default candidate plans
    starts_from_scratch: ClassVar[bool] = False  # random init: needs a from-scratch token budget
    splits_batch: ClassVar[bool] = False  # runs the batch as several micro-batches (no one size)
    # check_device is about the target GPU itself (offload means nothing on a CPU): a simulation
    # checks it against its target device, not the fake device the replay runs on
    checked_on_target: ClassVar[bool] = False
    # a strategy over several GPUs (ddp, fsdp2, hsdp, zero): applied last, on the model the
    # other cuts made, and needs a process group of ``Recipe.world_size`` ranks (group "strategy")
    distributed: ClassVar[bool] = False

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        """Whether this cut, with these parameters (JSON-safe, as reports keep them), computes
        in bfloat16 and so needs a GPU with bf16 support."""
        return False

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Cut:
        """The cut from its parameters as reports keep them (lists for tuples); keys that are
        not parameters of this cut (an older or newer report) are left out."""
        names: set[str] = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k in names}
        return cls(**kwargs)

    def shape_estimate(self, view: EstimateView) -> None:
        """Record what this cut changes in the closed-form estimate's view of the plan."""
        view.notes.append(f"{self.name}: not modelled by the estimate; counted as the baseline")

    def add_code(self, code: TrainingCode) -> None:
        """Add this cut's fragment to the generated training code (nothing by default)."""

    def label(self) -> str:
        """The cut with its non-default parameters, e.g. ``lora(r=16)``."""
        params = self.params()
        if not params:
            return self.name
        inner = ",".join(f"{k}={_format_value(v)}" for k, v in sorted(params.items()))
        return f"{self.name}({inner})"

    def params(self) -> dict[str, Any]:
        """Parameters that differ from the defaults (JSON-safe)."""
        if not dataclasses.is_dataclass(self):
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def check_available(self) -> None:
        """Raise ``UnsupportedConfiguration`` with the reason when this cut cannot run here."""

    def check_device(self, device: torch.device) -> None:
        """Raise ``UnsupportedConfiguration`` when this cut cannot run (or means nothing) on
        ``device``."""

    def configure(self, recipe: Recipe) -> None:
        """Edit the recipe before the model is built."""

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        """Transform the built model; return it (or its replacement)."""
        return model

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        """Adjust the finished step program."""
        return prog

    def leading_layers(self) -> int:
        """How many of the model's first repeated layers this cut treats unlike the rest
        (``freeze-layers(k=8)``: 8); 0 for a cut that treats every layer alike. Repeat-block
        simulation extrapolates such layers as a segment of their own."""
        return 0

    def with_leading_layers(self, layers: int) -> Cut:
        """This cut treating the first ``layers`` layers as it treats its
        :meth:`leading_layers` (a shallower probe's); ``self`` where there are none."""
        return self


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "|".join(str(v) for v in value)
    return str(value)


def conflict_between(a: Cut, b: Cut) -> str | None:
    """Why ``a`` and ``b`` cannot be in one plan, or ``None`` when they can."""
    if a.name == b.name:
        return f"{a.name} appears twice"
    if b.name in a.conflicts or a.name in b.conflicts:
        return f"{a.name} conflicts with {b.name}"
    if a.group is not None and a.group == b.group:
        return f"{a.name} and {b.name} both choose the {a.group}"
    return None


def redundancy_in(cuts: Iterable[Cut]) -> str | None:
    """Why one of ``cuts`` is pointless next to another, or ``None``."""
    cuts = list(cuts)
    names = {c.name for c in cuts}
    for cut in cuts:
        by = sorted(cut.redundant_with & names)
        if by:
            why = f": {cut.redundancy_reason}" if cut.redundancy_reason else ""
            return f"{cut.name} is redundant under {by[0]}{why}"
    return None


@dataclass(frozen=True)
class Plan:
    """A set of cuts; the empty set is the baseline.

    Build plans with :meth:`of` to get the canonical cut order, so that the same set always has
    the same :attr:`name` (sweeps resume by name).
    """

    cuts: tuple[Cut, ...] = ()

    @classmethod
    def of(cls, cuts: Iterable[Cut]) -> Plan:
        """The plan of ``cuts`` in canonical order (by ``order``, then name)."""
        return cls(tuple(sorted(cuts, key=lambda c: (c.order, c.name, c.label()))))

    @property
    def name(self) -> str:
        return "+".join(c.label() for c in self.cuts) if self.cuts else BASELINE

    @property
    def cut_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cuts)

    def conflict(self) -> str | None:
        """Why this plan cannot run (two cuts that exclude each other), or ``None``."""
        for i, a in enumerate(self.cuts):
            for b in self.cuts[i + 1 :]:
                why = conflict_between(a, b)
                if why is not None:
                    return why
        return None

    def redundancy(self) -> str | None:
        """Why one of this plan's cuts is pointless next to another, or ``None``."""
        return redundancy_in(self.cuts)


