"""Simulate mode: any model, any plan, any size, without the hardware and without the weights.

The model is built on the ``meta`` device (no storage, so an 8B model costs nothing), the plan's
cuts are applied there (LoRA, freezing, checkpointing, precision…), its parameters and buffers
are swapped for fake tensors, and the optimizer, batch and step program are made under
``FakeTensorMode``. :func:`profilers.simulate.simulate_trial` then runs the same training step
as a measured trial: the tensor peak and its breakdown are exact, with provenance ``simulated``.

What cannot be simulated (a cut's ``simulation_unsupported``) comes back as a result with status
``unsupported`` and the reason, never as a wrong number:

* ``qlora`` and ``adamw8bit``: bitsandbytes packs quantized weights from their real values and
  runs its 8-bit optimizer in native kernels on raw data pointers; a meta/fake model has
  neither (the recommender estimates these plans in closed form instead);
* ``compile``: ``torch.compile`` fuses and reorders ops, so the eager op sequence the replay
  sees is not what runs (and Inductor would compile kernels for fake tensors);
* ``offload``: the replay counts every fake storage alike, so memory moved to the host would
  still be counted as on the device.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import unset_fake_temporarily

from advisor.core.errors import InvalidInputError
from advisor.engines.overheads import allocator_model
from advisor.models import ModelSource, resolve_model
from advisor.plans import CUTS, Plan, build_program, parse_plan, trial_spec
from advisor.plans.cuts.blocks import chain_context
from profilers.records import TrialResult
from profilers.simulate import FakeBuild, FakeWorld, simulate_trial
from profilers.simulate.moe import MoeRouting
from profilers.trial import Progress, StepProgram, UnsupportedConfiguration

log = logging.getLogger(__name__)

__all__ = [
    "SIMULATION_UNSUPPORTED",
    "fake_builder",
    "simulate",
    "simulate_plans",
    "unsupported_reason",
]


class _SimulationUnsupported(Mapping[str, str]):
    """Cut name → why the replay cannot run it, read from the registered cuts' own
    ``simulation_unsupported`` (so a cut registered later is in it too)."""

    def _reasons(self) -> dict[str, str]:
        return {n: c.simulation_unsupported for n, c in CUTS.items() if c.simulation_unsupported}

    def __getitem__(self, name: str) -> str:
        return self._reasons()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._reasons())

    def __len__(self) -> int:
        return len(self._reasons())


SIMULATION_UNSUPPORTED: Mapping[str, str] = _SimulationUnsupported()


def unsupported_reason(plan: Plan) -> str | None:
    """Why ``plan`` cannot be simulated, or ``None`` when it can."""
    for cut in plan.cuts:
        if cut.simulation_unsupported is not None:
            return f"{cut.name} cannot be simulated: {cut.simulation_unsupported}"
    return None


def _fake_batch_source(source: ModelSource, world: FakeWorld) -> ModelSource:
    """A shallow copy of ``source`` whose batches are made for real, then turned into fakes.

    Batches are made outside the fake mode because masked-LM batches index with data-dependent
    masks, which fake tensors cannot do; their real values are remembered, so code that reads
    them (transformers' "is there padding?") gets the true answer. The copy keeps the source's
    type for the cuts.
    """
    fake_source = copy.copy(source)
    make_real = source.make_batch

    def make_batch(batch_size: int, seq_len: int, device: torch.device | str = "cpu", seed: int = 0) -> Any:
        with unset_fake_temporarily():
            real = make_real(batch_size, seq_len, "cpu", seed)
        return world.batch(real)

    fake_source.make_batch = make_batch  # type: ignore[method-assign]
    return fake_source


@contextlib.contextmanager
def _transformers_as_on_real_tensors() -> Iterator[None]:
    """Let transformers take the path it takes on real tensors.

    transformers treats a ``FakeTensor`` as a sign of tracing and then skips its value checks
    (e.g. an all-ones attention mask is dropped for SDPA's ``is_causal``), so a replay would
    build masks a real run does not. With this, those checks run on the known batch values.
    """
    try:
        from transformers.utils import import_utils
    except ImportError:  # pragma: no cover - transformers is a dependency
        yield
        return
    original = import_utils.is_fake_tensor
    import_utils.is_fake_tensor = lambda x: False
    try:
        yield
    finally:
        import_utils.is_fake_tensor = original


def fake_builder(
    plan: Plan, source: ModelSource, batch_size: int, seq_len: int, target: str = "cuda"
) -> FakeBuild:
    """A builder for :func:`profilers.simulate.simulate_trial`: the plan on fake tensors."""
    source.check_sizes(batch_size, seq_len)

    def build(world: FakeWorld) -> StepProgram:
        reason = unsupported_reason(plan)
        if reason is not None:
            raise UnsupportedConfiguration(reason)
        # on a fake cpu device the cut runs CPU kernels: check it can; a fake cuda device has no
        # GPU behind it, so only what holds on any device is checked (meta), and the target's
        # own abilities (bf16 support…) are the recommender's to judge from the GPU catalog
        prog = build_program(
            plan,
            source,
            batch_size,
            seq_len,
            world.device,
            check_on=world.device if world.device.type == "cpu" else torch.device("meta"),
            build_on=torch.device("meta"),
            on_model=world.fakeify,
            batch_source=lambda real: _fake_batch_source(real, world),
            finish_context=world.active,
        )
        chain_context(prog, _transformers_as_on_real_tensors, outside=True)
        return prog

    return build


def simulate(
    model: str | nn.Module | ModelSource,
    plan: Plan | str | None = None,
    batch_size: int = 4,
    seq_len: int = 128,
    *,
    target: str = "cuda",
    fake_device: str = "auto",
    warmup_steps: int = 1,
    count_cost: bool = True,
    progress: Progress | None = None,
    moe_imbalance: float = 1.0,
) -> TrialResult:
    """Replay one training configuration of ``model`` on fake tensors (see the module doc).

    ``target`` is where the step is meant to run: ``"cuda"`` (the optimizer as torch runs it
    on CUDA, and the caching allocator replayed) or ``"cpu"`` (exactly what this CPU runs).
    Mixture-of-experts layers are replayed under balanced routing, or with the hottest expert
    at ``moe_imbalance`` × its balanced share (the result's ``simulation.moe_routing`` says
    which). Failures come back as the result's ``status`` and ``reason``; bad input raises
    :class:`advisor.AdvisorError`.
    """
    source = resolve_model(model)
    if isinstance(plan, str):
        plan = parse_plan(plan)  # "lora+grad-ckpt"
    plan = plan or Plan()
    if target not in ("cpu", "cuda"):
        raise InvalidInputError(f"unknown simulation target '{target}'", "use cuda or cpu")
    if not moe_imbalance >= 1.0:
        raise InvalidInputError(
            f"the MoE imbalance must be ≥ 1 (the hottest expert's share over the balanced one), "
            f"got {moe_imbalance}",
            "pass --moe-imbalance 1 for balanced routing, or e.g. 1.5",
        )
    build = fake_builder(plan, source, batch_size, seq_len, target)
    spec = trial_spec(
        plan, source, batch_size, seq_len, device="meta", steps=0, warmup_steps=warmup_steps
    )
    log.info("simulating %s, plan %s, batch %d × seq %d", source.name, plan.name, batch_size, seq_len)
    return simulate_trial(
        spec,
        build,
        progress,
        target=target,
        fake_device=fake_device,
        allocator=allocator_model(),
        count_cost=count_cost,
        moe_routing=MoeRouting(moe_imbalance),
    )


def simulate_plans(
    model: str | nn.Module | ModelSource,
    plans: Iterable[Plan],
    batch_size: int = 4,
    seq_len: int = 128,
    *,
    target: str = "cuda",
    progress: Progress | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
    moe_imbalance: float = 1.0,
) -> list[TrialResult]:
    """Simulate each plan in turn (a sweep without hardware); one plan's failure is its result."""
    source = resolve_model(model)
    plans = list(plans)
    results: list[TrialResult] = []
    say = progress or (lambda _msg: None)
    for i, plan in enumerate(plans, 1):

        def step(msg: str, i: int = i, plan: Plan = plan) -> None:
            say(f"plan {i}/{len(plans)} {plan.name}: {msg}")

        result = simulate(
            source, plan, batch_size, seq_len, target=target, progress=step,
            moe_imbalance=moe_imbalance,
        )  # fmt: skip
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
