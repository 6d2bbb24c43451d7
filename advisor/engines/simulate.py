"""Simulate mode: any model, any plan, any size, without the hardware and without the weights.

The model is built on the ``meta`` device (no storage, so an 8B model costs nothing), the plan's
cuts are applied there (LoRA, freezing, checkpointing, precision…), its parameters and buffers
are swapped for fake tensors, and the optimizer, batch and step program are made under
``FakeTensorMode``. :func:`profilers.simulate.simulate_trial` then runs the same training step
as a measured trial: the tensor peak and its breakdown are exact, with provenance ``simulated``.

What cannot be simulated (a cut's ``simulation_unsupported``) comes back as a result with status
``unsupported`` and the reason, never as a wrong number:

* none of the built-in cuts today; a cut that sets ``simulation_unsupported`` gets this.

``qlora`` and ``adamw8bit`` are simulated without bitsandbytes: the replay swaps its quantized
layers and its 8-bit optimizer for stand-ins holding the same storages
(:mod:`profilers.simulate.quant`, :mod:`profilers.simulate.optim8bit`), so simulating does
not check that bitsandbytes is installed (measuring does).

A cut with ``simulation_upper_bound`` is left out of the replay and the result is marked an
upper bound (``SimulationRecord.upper_bound``): ``compile`` fuses and reorders ops, usually
needing less than the eager step the replay runs (and Inductor would compile kernels for fake
tensors), so its figure is "upper bound: eager replay of a compiled plan".

Activation offload (``offload``) is simulated for a CUDA target: the host copies of saved
tensors are counted apart, as ``SimulationRecord.host_peak_bytes``, and the tensor peak is the
device's.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import dataclasses
import gc
import logging
import multiprocessing
import multiprocessing.context
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import torch
from torch import nn
from torch._subclasses.fake_tensor import unset_fake_temporarily

from advisor.core.errors import InvalidInputError
from advisor.engines.comm import comm_volume
from advisor.engines.overheads import allocator_model
from advisor.engines.progress import PlanEvents, ProgressCallback, SweepProgress
from advisor.engines.zero import local_plan, zero_cut_of, zero_rank_result
from advisor.models import HFModelSource, ModelSource, resolve_model
from advisor.plans import CUTS, Plan, build_program, parse_plan, trial_spec
from advisor.plans.cuts.blocks import chain_context
from advisor.plans.cuts.distributed import check_world, strategy_of
from profilers.distributed import fake_process_group
from profilers.records import DistributedRecord, RepeatReplay, RunMoments, TrialResult, TrialStatus
from profilers.simulate import FakeBuild, FakeWorld, simulate_trial
from profilers.simulate.moe import MoeRouting, routing_note
from profilers.simulate.moments import cast_sizes, load_peak_bytes, save_extra_bytes
from profilers.simulate.repeat import (
    Probe,
    RepeatPattern,
    block_labels,
    extrapolate,
    extrapolate_frozen,
    find_repeats,
    keep_blocks,
    model_signature,
)
from profilers.trial import Progress, StepProgram, TrialSpec, UnsupportedConfiguration

log = logging.getLogger(__name__)

__all__ = [
    "MIN_BLOCKS",
    "SIMULATION_UNSUPPORTED",
    "default_workers",
    "fake_builder",
    "longest_first",
    "replayed_plan",
    "simulate",
    "simulate_plans",
    "unsupported_reason",
    "upper_bound_detail",
    "with_rank_record",
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


def upper_bound_detail(plan: Plan) -> str | None:
    """Why simulating ``plan`` gives an upper bound (``"upper bound: eager replay of a compiled
    plan"``), or ``None`` when the replay runs it as it is."""
    details = [c.simulation_upper_bound for c in plan.cuts if c.simulation_upper_bound]
    return "upper bound: " + "; ".join(details) if details else None


def replayed_plan(plan: Plan) -> Plan:
    """The plan the replay runs: ``plan`` without the cuts it can only bound (``compile``)."""
    return Plan.of(c for c in plan.cuts if c.simulation_upper_bound is None)


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
    make_packed_real = source.make_packed_batch

    def make_packed_batch(documents: tuple[int, ...], device: torch.device | str = "cpu", seed: int = 0) -> Any:
        with unset_fake_temporarily():
            real = make_packed_real(documents, "cpu", seed)
        return world.batch(real)

    fake_source.make_packed_batch = make_packed_batch  # type: ignore[method-assign]
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
        # own abilities (bf16 support…) are the recommender's to judge from the GPU catalog;
        fake_check = world.device if world.device.type == "cpu" else torch.device("meta")
        prog = build_program(
            replayed_plan(plan),
            source,
            batch_size,
            seq_len,
            world.device,
            # a cut whose check is about the target GPU (offload) is checked against the target
            check_on=lambda cut: torch.device(target) if cut.checked_on_target else fake_check,
            build_on=torch.device("meta"),
            on_model=world.fakeify,
            batch_source=lambda real: _fake_batch_source(real, world),
            finish_context=world.active,
            check_available=False,  # nothing runs here: bitsandbytes' layouts are known without it
        )
        chain_context(prog, _transformers_as_on_real_tensors, outside=True)
        return prog

    return build


# -- repeat-block simulation: a few repeats of the block replayed, the real depth extrapolated --

MIN_BLOCKS = 8  # extrapolate models with at least this many repeating blocks
_EXTRA_PROBES = 2  # probes beyond the first three tried before falling back to the full replay


def _blocks_source(source: ModelSource, pattern: RepeatPattern, probe: Probe) -> ModelSource:
    """A shallow copy of ``source`` whose models keep only ``probe.blocks`` repeats of the
    block (cut before the plan's cuts apply), their layers hooked to the probe's clock; it keeps
    the source's type and name."""
    copied = copy.copy(source)
    build_full = source.build

    def build(device: torch.device | str = "cpu", **kwargs: Any) -> nn.Module:
        model = _shallow_build(source, pattern, probe.blocks, device, **kwargs)
        if model is not None:
            layers = list(cast(nn.ModuleList, model.get_submodule(pattern.path)))
        else:
            model = build_full(device, **kwargs)
            layers = keep_blocks(model, pattern, probe.blocks)
        probe.clock.install(layers, block_labels(pattern, probe.blocks, probe.frozen))
        probe.plain_params = sum(p.numel() for p in model.parameters())
        return model

    copied.build = build  # type: ignore[method-assign]
    return copied


_PLAIN: dict[int, tuple[ModelSource, int, RepeatPattern | None]] = {}  # id(source) → the last one's
# id(source) → (source, {(blocks, build options) → signature of the whole model so cut}):
# what a shallow build must equal (the last source's, as _PLAIN)
_SHALLOW: dict[int, tuple[ModelSource, dict[tuple[int, str], tuple[Any, ...]]]] = {}
# id(source) → (source, {build options → the whole model built so on meta}), for _reference
_WHOLE: dict[int, tuple[ModelSource, dict[str, nn.Module]]] = {}


def _last_source_memo(cache: dict[int, tuple[ModelSource, dict[Any, Any]]], source: ModelSource) -> dict[Any, Any]:
    """``cache``'s memo for ``source``, kept for the last source only (a sweep asks about one)."""
    kept = cache.get(id(source))
    if kept is None or kept[0] is not source:
        cache.clear()
        kept = cache[id(source)] = (source, {})
    return kept[1]


def _shallow_config(config: Any, pattern: RepeatPattern, blocks: int) -> Any:
    """A copy of a transformers config for the probe's depth, its per-layer lists cut as
    :func:`keep_blocks` cuts them."""
    kept = pattern.kept(blocks)
    out = copy.deepcopy(config)
    for key, value in list(vars(out).items()):
        if key != "architectures" and isinstance(value, (list, tuple)) and len(value) == pattern.layers:
            setattr(out, key, type(value)(value[i] for i in kept))
    out.num_hidden_layers = len(kept)
    return out


def _shallow_build(
    source: ModelSource, pattern: RepeatPattern, blocks: int, device: torch.device | str, **kwargs: Any
) -> nn.Module | None:
    """The probe's model built at the probe's depth from a shallow config, instead of all the
    layers built and cut (a 32-layer 8B costs ~0.3 s to build, a 3-layer one a tenth of it);
    ``None`` where that cannot be done the same way: not a transformers config of that depth,
    layers after the repeats (their index would change), weights on disk, or a build whose
    modules, parameters, buffers, plain settings or config differ from the whole model's cut
    to the same depth (:func:`~profilers.simulate.repeat.model_signature`, checked once per
    source, depth and build options against the whole model built on meta)."""
    config = getattr(source, "config", None)
    if (
        not isinstance(source, HFModelSource)
        or getattr(config, "num_hidden_layers", None) != pattern.layers
        or pattern.suffix
        or source.weights_path is not None
    ):
        return None
    shallow = copy.copy(source)
    shallow.config = _shallow_config(config, pattern, blocks)
    model = shallow.build(device, **kwargs)
    try:
        layers = model.get_submodule(pattern.path)
    except AttributeError:
        return None
    if not isinstance(layers, nn.ModuleList) or len(layers) != len(pattern.kept(blocks)):
        return None
    checks = _last_source_memo(_SHALLOW, source)
    key = (blocks, repr(sorted(kwargs.items())))
    if key not in checks:
        whole = _last_source_memo(_WHOLE, source)
        options = key[1]
        if options not in whole:  # one whole build per source and options, cut to each depth
            with torch.utils._python_dispatch._disable_current_modes():
                whole[options] = source.build(torch.device("meta"), **kwargs)
        checks[key] = _reference(whole[options], pattern, blocks)
    if model_signature(model) != checks[key]:
        log.debug("%s: the build at %d blocks differs from the whole model cut; cutting", source.name, blocks)
        return None
    return model


def _reference(model: nn.Module, pattern: RepeatPattern, blocks: int) -> tuple[Any, ...]:
    """What the whole ``model`` (built on meta as the probe asks, out of sight of the replay's
    fake mode and trackers) looks like cut to ``blocks``; the model is put back whole after.
    Only for models without layers after the repeats (:func:`_shallow_build`'s), whose layers
    :func:`~profilers.simulate.repeat.keep_blocks` does not renumber."""
    parent_name, _, child = pattern.path.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    layers = getattr(parent, child)
    config = getattr(model, "config", None)
    saved = dict(vars(config)) if config is not None else None
    try:
        keep_blocks(model, pattern, blocks)
        return model_signature(model)
    finally:
        setattr(parent, child, layers)
        if config is not None and saved is not None:
            vars(config).clear()
            vars(config).update(saved)


def _plain_model(source: ModelSource) -> tuple[int, RepeatPattern | None]:
    """The whole model on meta, before any plan: its parameter count and its repeat pattern.

    A plan's cuts that treat layers unlike (``freeze-layers(k=…)``) need no pattern of their
    own: the probes keep the model's first layers, so a probe of k or more layers is on the
    same line as the real model, and a smaller one fails or is not affine, and is replaced.
    The last source's answer is kept (a sweep asks once per plan; the source is the same
    object, and a source's build does not change).
    """
    kept = _PLAIN.get(id(source))
    if kept is not None and kept[0] is source:
        return kept[1], kept[2]
    model = source.build(torch.device("meta"))
    out = sum(p.numel() for p in model.parameters()), find_repeats(model)
    _PLAIN.clear()
    _PLAIN[id(source)] = (source, *out)
    return out


@contextlib.contextmanager
def _young_garbage_only() -> Iterator[None]:
    """Let each replay's ``gc.collect()`` look only at what the replay made.

    What lives now (torch, transformers, the source) is moved out of the collector's sight for
    the duration, so collecting before each probe's tracked step costs milliseconds, not a
    scan of every module loaded. Where something is frozen already (a sweep's worker froze
    what it imported, or an outer call froze), it stays frozen: unfreezing would put every
    module back in sight of each later plan's collections (a full scan each, a few hundred
    milliseconds under load, four or five times per plan).
    """
    # a sweep's worker froze at its start; elsewhere ask (the count walks every frozen object:
    # 40 ms in a worker, once per plan)
    outer = _frozen_at_worker_start or gc.get_freeze_count() > 0
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        if not outer:
            gc.unfreeze()


def _run_probe(
    plan: Plan,
    source: ModelSource,
    spec: TrialSpec,
    pattern: RepeatPattern,
    probe: Probe,
    say: Callable[[str], None],
    *,
    target: str,
    fake_device: str,
    count_cost: bool,
    moe_routing: MoeRouting | None,
) -> TrialResult:
    """``plan`` replayed on ``probe``'s few blocks of the model, its layers on the probe's clock."""
    return simulate_trial(
        spec,
        fake_builder(plan, _blocks_source(source, pattern, probe), spec.batch_size, spec.seq_len, target),
        say,
        target=target,
        fake_device=fake_device,
        allocator=allocator_model(),
        count_cost=count_cost,
        observe=probe.observe,
        tracker_type=probe.clock.make_tracker,
        moe_routing=moe_routing,
    )


def _extrapolated(
    plan: Plan,
    source: ModelSource,
    spec: TrialSpec,
    *,
    target: str,
    fake_device: str,
    count_cost: bool,
    progress: Progress | None,
    min_blocks: int,
    moe_routing: MoeRouting | None = None,
) -> TrialResult | str:
    """The step replayed with a few repeats of the model's block and extrapolated exactly to
    its real depth (:mod:`profilers.simulate.repeat`), or why that cannot be done."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    try:
        plain_params, pattern = _plain_model(source)
    except Exception as exc:  # the full replay records it as that plan's failure
        return f"the model could not be built on meta ({type(exc).__name__})"
    if pattern is None:
        return "no repeating block found"
    if pattern.blocks < min_blocks:
        return f"{pattern.blocks} repeating blocks, fewer than {min_blocks}"
    lead = _frozen_blocks(plan, pattern)
    if lead is not None:
        return _extrapolated_frozen(
            plan, source, spec, pattern, lead, plain_params, target=target, fake_device=fake_device,
            count_cost=count_cost, progress=progress, moe_routing=moe_routing,
        )  # fmt: skip
    first = 1
    probe_layers = sum(len(pattern.kept(first + i)) for i in range(3))
    if probe_layers >= pattern.layers:
        return f"three probes would replay {probe_layers} layers, the model has {pattern.layers}"
    probes: list[Probe] = []
    with _young_garbage_only():
        blocks = first
        while True:
            if blocks >= pattern.blocks:
                return f"not affine on probes {probes[0].blocks}..{probes[-1].blocks} and no room for more"
            probe = Probe(blocks)

            def step(msg: str, blocks: int = blocks) -> None:
                say(f"{blocks} of {pattern.blocks} blocks: {msg}")

            probe.result = _run_probe(
                plan, source, spec, pattern, probe, step,
                target=target, fake_device=fake_device, count_cost=count_cost, moe_routing=moe_routing,
            )  # fmt: skip
            if not probe.result.ok:
                if probes or blocks - first >= _EXTRA_PROBES:
                    return f"the probe with {blocks} blocks failed ({probe.result.status.value})"
                blocks += 1  # too shallow for the plan (freeze-layers(k=2) of one layer): deeper
                continue
            probes.append(probe)
            if len(probes) >= 3:
                out = extrapolate(probes, pattern, plain_params=plain_params, wall_time_s=time.perf_counter() - started)
                if isinstance(out, TrialResult):
                    return out
                if len(probes) >= 3 + _EXTRA_PROBES:
                    return out
                log.debug("%s/%s: %s; one more probe", source.name, plan.name, out)
            blocks += 1


def _frozen_blocks(plan: Plan, pattern: RepeatPattern) -> int | None:
    """How many of the model's repeated blocks ``plan`` treats unlike the rest
    (``freeze-layers(k=8)``: 8 of a Llama's 32), where they are too many for the probes to keep
    (the usual probes take up to ``1 + _EXTRA_PROBES`` blocks) and they are whole blocks after
    the prefix, with at least three blocks left after them; else ``None``."""
    leads = [cut.leading_layers() for cut in plan.cuts if cut.leading_layers()]
    if len(leads) != 1 or pattern.suffix:
        return None
    blocks, rest = divmod(leads[0] - pattern.prefix, pattern.period)
    if rest or blocks <= 1 + _EXTRA_PROBES or pattern.blocks - blocks < 3:
        return None
    return blocks


def _with_frozen(plan: Plan, pattern: RepeatPattern, frozen: int) -> Plan:
    """``plan`` treating the layers of the prefix and ``frozen`` blocks as it treats its leading ones."""
    layers = pattern.prefix + frozen * pattern.period
    return Plan.of(cut.with_leading_layers(layers) if cut.leading_layers() else cut for cut in plan.cuts)


def _extrapolated_frozen(
    plan: Plan,
    source: ModelSource,
    spec: TrialSpec,
    pattern: RepeatPattern,
    frozen: int,
    plain_params: int,
    *,
    target: str,
    fake_device: str,
    count_cost: bool,
    progress: Progress | None,
    moe_routing: MoeRouting | None,
) -> TrialResult | str:
    """A plan that treats the first ``frozen`` blocks unlike the rest (``freeze-layers``),
    replayed on six probes of 1..3 frozen and 1..3 other blocks (the plan's ``k`` set to each
    probe's frozen layers), every figure extrapolated in both counts
    (:func:`~profilers.simulate.repeat.extrapolate_frozen`): 20 layers instead of all of them."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    grid: dict[tuple[int, int], Probe] = {}
    with _young_garbage_only():
        for a, b in ((1, 1), (2, 1), (3, 1), (1, 2), (1, 3), (2, 2)):
            probe = Probe(a + b, frozen=a)

            def step(msg: str, a: int = a, b: int = b) -> None:
                say(f"{a} of {frozen} frozen and {b} of {pattern.blocks - frozen} other blocks: {msg}")

            probe_plan = _with_frozen(plan, pattern, a)
            probe.result = _run_probe(
                probe_plan, source, spec, pattern, probe, step,
                target=target, fake_device=fake_device, count_cost=count_cost, moe_routing=moe_routing,
            )  # fmt: skip
            if not probe.result.ok:
                return f"the probe with {a} frozen and {b} other blocks failed ({probe.result.status.value})"
            grid[(a, b)] = probe
    return extrapolate_frozen(grid, pattern, frozen, plain_params=plain_params, wall_time_s=time.perf_counter() - started)


def _full_replay_noted(result: TrialResult, why: str) -> TrialResult:
    """``result`` with the reason it is a full replay in its simulation record."""
    if result.simulation is None or result.status is TrialStatus.UNSUPPORTED:
        return result
    note = RepeatReplay(extrapolated=False, reason=why)
    return dataclasses.replace(result, simulation=dataclasses.replace(result.simulation, repeats=note))


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
    extrapolate: bool = True,
    min_blocks: int = MIN_BLOCKS,
    moe_imbalance: float = 1.0,
    gpus: int = 1,
    nodes: int = 1,
) -> TrialResult:
    """Replay one training configuration of ``model`` on fake tensors (see the module doc).

    With a strategy cut (``ddp``, ``fsdp2``, ``hsdp``) and ``gpus`` N ≥ 2, the replay is rank 0
    of N on torch's fake process group: ``batch_size`` is the micro-batch of each rank, and the
    result's tensor peak is one rank's, with a :class:`~profilers.records.DistributedRecord`.

    ``target`` is where the step is meant to run: ``"cuda"`` (the optimizer as torch runs it
    on CUDA, and the caching allocator replayed) or ``"cpu"`` (exactly what this CPU runs).
    A model with ``min_blocks`` or more repeating blocks is replayed with a few of them and
    extrapolated exactly to its real depth (``result.simulation.repeats`` says from which);
    where that cannot be done, or with ``extrapolate=False``, every layer is replayed and the
    record says why. Failures come back as the result's ``status`` and ``reason``; bad input
    raises :class:`advisor.AdvisorError`.
    Mixture-of-experts layers are replayed under balanced routing, or with the hottest expert
    at ``moe_imbalance`` × its balanced share (``simulation.moe_routing`` says which).
    A distributed plan is one rank of ``gpus`` over ``nodes`` machines: under ``zero`` the
    local micro-batch is replayed and DeepSpeed's per-rank layout put in place of the model
    states (:mod:`advisor.engines.zero`; ``result.distributed`` has the rank's record).
    """
    source = resolve_model(model)
    if isinstance(plan, str):
        plan = parse_plan(plan)  # "lora+grad-ckpt"
    plan = plan or Plan()
    check_world(plan, gpus, nodes)
    if zero_cut_of(plan) is not None:
        local = simulate(
            source, local_plan(plan), batch_size, seq_len, target=target, fake_device=fake_device,
            warmup_steps=warmup_steps, count_cost=count_cost, progress=progress, extrapolate=extrapolate,
            min_blocks=min_blocks, moe_imbalance=moe_imbalance,
        )  # fmt: skip
        return zero_rank_result(local, plan, source, gpus=gpus, nodes=nodes, target=target)
    if target not in ("cpu", "cuda"):
        raise InvalidInputError(f"unknown simulation target '{target}'", "use cuda or cpu")
    if not moe_imbalance >= 1.0:
        raise InvalidInputError(
            f"the MoE imbalance must be ≥ 1 (the hottest expert's share over the balanced one), "
            f"got {moe_imbalance}",
            "pass --moe-imbalance 1 for balanced routing, or e.g. 1.5",
        )
    if gpus > 1:  # the mesh and the shards live on the fake cpu device
        fake_device = "cpu"
        backend = "gloo" if target == "cpu" else "nccl"  # on CPUs ranks talk gloo, on GPUs NCCL
        with fake_process_group(gpus, backend=backend):
            result = _simulate(source, plan, batch_size, seq_len, target=target, fake_device=fake_device,
                               warmup_steps=warmup_steps, count_cost=count_cost, progress=progress,
                               extrapolate=extrapolate, min_blocks=min_blocks, moe_imbalance=moe_imbalance)  # fmt: skip
        return with_rank_record(result, plan, gpus, nodes, backend=f"fake ({backend} buffers)")
    return _simulate(source, plan, batch_size, seq_len, target=target, fake_device=fake_device,
                     warmup_steps=warmup_steps, count_cost=count_cost, progress=progress,
                     extrapolate=extrapolate, min_blocks=min_blocks, moe_imbalance=moe_imbalance)  # fmt: skip


def with_rank_record(
    result: TrialResult,
    plan: Plan,
    world_size: int,
    nodes: int = 1,
    *,
    backend: str,
    rank: int = 0,
    rank_peaks: tuple[int, ...] = (),
    runs: int = 1,
) -> TrialResult:
    """``result`` (one rank's) with its :class:`DistributedRecord`: the strategy, the bytes in
    communication buffers at the peak, and the bytes a rank sends per step."""
    strategy = strategy_of(plan)
    if strategy is None or world_size <= 1:
        return result
    comm = None
    if result.params is not None:
        pattern, shard = strategy.comm_pattern(world_size)
        volume = comm_volume(
            pattern, parameter_bytes=result.params.parameter_bytes,
            gradient_bytes=result.params.trainable_bytes, world_size=world_size, shard=shard,
        )  # fmt: skip
        comm = sum(v for _, v in volume)
    peak = result.tensor_peak
    record = DistributedRecord(
        world_size=world_size,
        rank=rank,
        strategy=strategy.label(),
        nodes=nodes,
        communication_buffer_bytes=peak.breakdown.communication_buffer_bytes if peak is not None else 0,
        comm_bytes_per_step=comm,
        rank_peak_bytes=rank_peaks,
        runs=runs,
        backend=backend,
    )
    return dataclasses.replace(result, distributed=record)


def _simulate(
    source: ModelSource,
    plan: Plan,
    batch_size: int,
    seq_len: int,
    *,
    target: str,
    fake_device: str,
    warmup_steps: int,
    count_cost: bool,
    progress: Progress | None,
    extrapolate: bool,
    min_blocks: int,
    moe_imbalance: float,
) -> TrialResult:
    build = fake_builder(plan, source, batch_size, seq_len, target)
    spec = trial_spec(
        plan, source, batch_size, seq_len, device="meta", steps=0, warmup_steps=warmup_steps
    )
    log.info("simulating %s, plan %s, batch %d × seq %d", source.name, plan.name, batch_size, seq_len)
    routing = MoeRouting(moe_imbalance)
    why = "asked for"
    result: TrialResult | None = None
    if extrapolate and unsupported_reason(plan) is None:
        out = _extrapolated(
            plan, source, spec, target=target, fake_device=fake_device, count_cost=count_cost,
            progress=progress, min_blocks=min_blocks, moe_routing=routing,
        )  # fmt: skip
        if isinstance(out, TrialResult):
            result = out
        else:
            why = out
            log.info("%s/%s: replaying every layer: %s", source.name, plan.name, why)
    if result is None:
        with _young_garbage_only():
            result = _full_replay_noted(
                simulate_trial(
                    spec,
                    build,
                    progress,
                    target=target,
                    fake_device=fake_device,
                    allocator=allocator_model(),
                    count_cost=count_cost,
                    moe_routing=routing,
                ),
                why,
            )
    sim = result.simulation
    if sim is not None and sim.moe_routing and sim.repeats is not None and sim.repeats.extrapolated:
        # the probes' note counts their MoE layers: state the real model's
        note = routing_note(source.build("meta"), routing)
        result = dataclasses.replace(result, simulation=dataclasses.replace(sim, moe_routing=note))
    bound = upper_bound_detail(plan)
    if bound is not None and result.simulation is not None:
        result = dataclasses.replace(result, simulation=dataclasses.replace(result.simulation, upper_bound=bound))
    return _with_moments(result, source, plan, batch_size, seq_len)


# model → its tensors' sizes in cast order (profilers.simulate.moments.cast_sizes)
_CAST_SIZES: dict[str, tuple[list[int], int]] = {}


def _stored_dtype(source: ModelSource) -> torch.dtype | None:
    """The dtype a Hugging Face checkpoint's ``config.json`` says its weights are in, or None."""
    value = getattr(getattr(source, "config", None), "dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) and value.is_floating_point else None


def _with_moments(result: TrialResult, source: ModelSource, plan: Plan, batch_size: int, seq_len: int) -> TrialResult:
    """The run's moments beside the step: loading a Hugging Face checkpoint as transformers
    loads it without ``dtype`` (its stored dtype), cast to the dtype the plan trains in; and a
    checkpoint save between steps (``save_pretrained``, or a PEFT adapter's for LoRA).
    Quantized-at-load plans (bitsandbytes) and sharded (distributed) runs are not predicted."""
    sim, peak = result.simulation, result.tensor_peak
    if sim is None or peak is None or not result.ok or getattr(source, "config", None) is None:
        return result
    if any(cut.needs_bitsandbytes for cut in plan.cuts) or result.distributed is not None:
        return result
    from advisor.plans.build import prepare

    train = prepare(plan, batch_size, seq_len, check_available=False).model_dtype or torch.float32
    loading, path = None, ""
    stored = _stored_dtype(source)
    if stored is not None:
        if source.name not in _CAST_SIZES:  # one meta build per model (seconds for an 8B)
            _CAST_SIZES[source.name] = cast_sizes(source.build("meta", pretrained=False))
        loading = load_peak_bytes(_CAST_SIZES[source.name], stored, train)
        path = f"{str(stored).removeprefix('torch.')} checkpoint loaded without dtype"
        if train != stored:
            path += f", then .to({str(train).removeprefix('torch.')})"
    if any(cut.name in ("lora", "qlora") for cut in plan.cuts):
        extra, saving_path = 0, "PEFT adapter save (adapter weights only)"
    else:
        extra = _save_extra(source, train)
        saving_path = "save_pretrained" + (" (MoE experts put back in the checkpoint layout)" if extra else "")
    moments = RunMoments(
        step_bytes=peak.peak_bytes, loading_bytes=loading, loading_path=path,
        saving_bytes=peak.resident_before_step_bytes + extra, saving_path=saving_path,
    )  # fmt: skip
    return dataclasses.replace(result, simulation=dataclasses.replace(sim, moments=moments))


# (model, dtype) → bytes save_pretrained allocates beyond the weights (profilers.simulate.moments)
_SAVE_EXTRA: dict[tuple[str, torch.dtype], int] = {}


def _save_extra(source: ModelSource, dtype: torch.dtype) -> int:
    """What ``save_pretrained`` of ``source``'s model in ``dtype`` allocates on the device; a meta
    build only for models whose checkpoint layout transformers converts (MoE experts)."""
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping

    config = getattr(source, "config", None)
    names = [getattr(config, "model_type", None), *(getattr(config, "architectures", None) or [])]
    if not any(n and get_checkpoint_conversion_mapping(n) for n in names):
        return 0  # transformers 5.25 revert_weight_conversion: nothing to revert
    key = (source.name, dtype)
    if key not in _SAVE_EXTRA:
        _SAVE_EXTRA[key] = save_extra_bytes(source.build("meta", pretrained=False, dtype=dtype))
    return _SAVE_EXTRA[key]


def default_workers() -> int:
    """Worker processes for a sweep: one per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


PROFILE_ENV = "VRAM_ADVISOR_PROFILE_DIR"  # set: each worker writes a cProfile of each plan there
_worker_source: ModelSource | None = None  # in a worker process: the sweep's model, sent once
_frozen_at_worker_start = False  # in a worker process: the collector froze what it had imported


def _worker_start(given: bytes | ModelSource) -> None:
    """A worker's initializer: the model source, once per worker: pickled (what resolves to
    it) for a fresh worker, the object itself for a fork of the sweep's process (a fork's
    arguments are not pickled)."""
    global _worker_source, _frozen_at_worker_start
    torch.set_num_threads(1)  # fake tensors compute nothing; real batches are tiny
    _worker_source = resolve_model(pickle.loads(given)) if isinstance(given, bytes) else given
    gc.collect()
    gc.freeze()  # what lives now is never garbage: each replay's collection skips it
    _frozen_at_worker_start = True


def _worker_simulate(index: int, plan: Plan, batch_size: int, seq_len: int, options: dict[str, Any]) -> tuple[int, TrialResult]:
    assert _worker_source is not None, "worker started without its model"
    where = os.environ.get(PROFILE_ENV)
    if not where:
        return index, simulate(_worker_source, plan, batch_size, seq_len, **options)
    import cProfile  # a developer's switch (benchmarks/simulate_speed.py --profile): one file per plan

    with cProfile.Profile() as prof:
        out = simulate(_worker_source, plan, batch_size, seq_len, **options)
    prof.dump_stats(os.path.join(where, f"plan{index:03d}-pid{os.getpid()}.prof"))
    return index, out


def _payload(model: str | nn.Module | ModelSource, source: ModelSource) -> bytes | None:
    """What a worker needs to make the model: the name it was given, else the source (or the
    module) pickled; ``None`` when neither pickles (a closure, a lambda)."""
    for candidate in (model,) if isinstance(model, str) else (source, model):
        try:
            return pickle.dumps(candidate)
        except Exception as exc:  # pickle raises many kinds
            log.debug("cannot send %r to a worker: %s", candidate, exc)
    return None


def _preload(source: ModelSource) -> list[str]:
    """Modules a worker needs, imported once by the fork server: the simulator, PEFT, and the
    module of the model's class (transformers imports each architecture lazily)."""
    names = ["advisor.engines.simulate", "peft"]
    try:
        names.append(type(source.build("meta")).__module__)
    except Exception as exc:  # the workers import it themselves, or report the failure per plan
        log.debug("no model class to preload: %s", exc)
    return names


def _fork_is_safe() -> bool:
    """Whether a sweep's workers may be plain forks of this process: where ``fork`` exists,
    no other Python thread runs (a fork copies only the calling thread; a lock another thread
    holds stays locked in the child) and CUDA is not initialised (a forked child cannot use
    it). A fork inherits the imports, the model source and its meta build, where a fork
    server first imports torch, transformers and PEFT again: about 6 s of one core on this
    2-core machine, before the first plan starts. torch's own ``DataLoader`` workers are forks
    of a process that has run torch in the same way; a worker runs one thread
    (:func:`_worker_start`), so OpenMP's pool is never entered in the child."""
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and not torch.cuda.is_initialized()
    )


def _pool_context(source: ModelSource, fork: bool) -> multiprocessing.context.BaseContext:
    """``fork`` where ``fork`` (:func:`_fork_is_safe`), else ``forkserver`` where there is one (the
    server imports the simulator, PEFT and the model's module once, each worker is a fork of
    it), else ``spawn``."""
    if fork:
        return multiprocessing.get_context("fork")
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_preload(source))
        return ctx
    return multiprocessing.get_context("spawn")


def _expected_probes(plan: Plan) -> int:
    """About how many probes ``plan``'s replay takes: six where it treats its first layers
    unlike the rest (two repeated segments), else three."""
    return 6 if any(cut.leading_layers() > 1 + _EXTRA_PROBES for cut in plan.cuts) else 3


def longest_first(plans: list[Plan]) -> list[int]:
    """The plans' indices, those expected to take longest first (else in order): a long plan
    started last would leave the other workers idle at the end of a sweep."""
    return sorted(range(len(plans)), key=lambda i: -_expected_probes(plans[i]))


def _simulate_in_workers(
    source: ModelSource,
    payload: bytes | None,
    plans: list[Plan],
    workers: int,
    batch_size: int,
    seq_len: int,
    options: dict[str, Any],
    done: Callable[[int, TrialResult], None],
) -> list[int]:
    """Simulate ``plans`` in ``workers`` processes, calling ``done(index, result)`` as each
    finishes; returns the indices left undone when the pool broke (a worker died). The
    workers are forks of this process with ``payload`` ``None``, else each is sent it."""
    left = set(range(len(plans)))
    ctx = _pool_context(source, fork=payload is None)
    if payload is None:  # the forks inherit the source and its meta build
        with contextlib.suppress(Exception):  # a failing build is each plan's failure, in the worker
            _plain_model(source)
    try:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_worker_start,
            initargs=(source if payload is None else payload,),
        ) as pool:
            futures = [
                pool.submit(_worker_simulate, i, plans[i], batch_size, seq_len, options)
                for i in longest_first(plans)
            ]
            try:
                for future in concurrent.futures.as_completed(futures):
                    index, result = future.result()  # bad input (AdvisorError) raises, as serially
                    left.discard(index)
                    done(index, result)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except concurrent.futures.process.BrokenProcessPool as exc:
        log.warning("a simulation worker died (%s): the %d plans left run in this process", exc, len(left))
    return sorted(left)


def simulate_plans(
    model: str | nn.Module | ModelSource,
    plans: Iterable[Plan],
    batch_size: int = 4,
    seq_len: int = 128,
    *,
    target: str = "cuda",
    progress: ProgressCallback | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
    extrapolate: bool = True,
    workers: int | None = None,
    moe_imbalance: float = 1.0,
    gpus: int = 1,
    nodes: int = 1,
) -> list[TrialResult]:
    """Simulate each plan (a sweep without hardware); one plan's failure is its result.

    The replay patches process-wide state (dropout, attention, transformers' fake-tensor
    check), so plans run in ``workers`` processes (default: one per core; ``1``: one after
    the other here), the model sent once to each. Results come back in plan order, the same
    as serially; ``on_result`` sees each plan as it finishes and ``progress`` hears a
    :class:`~advisor.engines.progress.SweepProgress` per start, stage and result (from worker
    processes only the results, each timed as the run's time per finished plan so far, which
    is what an ETA over parallel workers needs). The workers are forks of this process where
    that is safe (:func:`_fork_is_safe`), else started fresh and sent the model. Where the
    model cannot be sent, or a worker dies, the rest run here.
    """
    source = resolve_model(model)
    plans = list(plans)
    n = len(plans)
    results: list[TrialResult | None] = [None] * n
    say = progress or (lambda _event: None)
    options: dict[str, Any] = {
        "target": target, "extrapolate": extrapolate, "moe_imbalance": moe_imbalance, "gpus": gpus, "nodes": nodes,
    }  # fmt: skip
    started = time.perf_counter()
    finished = 0

    def keep(index: int, result: TrialResult) -> None:
        nonlocal finished
        finished += 1
        results[index] = result
        if on_result is not None:
            on_result(result)

    def done_in_worker(index: int, result: TrialResult) -> None:
        keep(index, result)
        run_s = time.perf_counter() - started
        say(SweepProgress("done", index + 1, n, plans[index].name, run_s / finished, run_s,
                          result.status.value, result))  # fmt: skip

    workers = min(default_workers() if workers is None else workers, n)
    if workers < 1:
        raise InvalidInputError(f"workers must be ≥ 1, got {workers}", "pass --workers 1 or more")
    todo = list(range(n))
    if workers > 1 and _fork_is_safe():
        todo = _simulate_in_workers(source, None, plans, workers, batch_size, seq_len, options, done_in_worker)
    elif workers > 1 and (payload := _payload(model, source)) is not None:
        todo = _simulate_in_workers(source, payload, plans, workers, batch_size, seq_len, options, done_in_worker)
    elif workers > 1:
        log.info("the model cannot be sent to worker processes: simulating %d plans here", n)
    for i in todo:
        events = PlanEvents(say, i + 1, n, plans[i].name, started)
        events("start", "starting")
        result = simulate(source, plans[i], batch_size, seq_len, progress=events.stage, **options)
        keep(i, result)
        events("done", result.status.value, result)
    return [r for r in results if r is not None]
