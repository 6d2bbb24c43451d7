"""Repeat-block simulation: replay a few repeats of a model's repeating block, extrapolate exactly.

A 70B decoder is 80 copies of one block; replaying every op of all 80 costs 80 times what one
costs, yet each repeat adds the same bytes. So:

1. :func:`find_repeats` finds the model's layers (the ``ModuleList`` holding the most
   parameters) and their pattern: a fixed prefix (dense layers before mixture-of-experts ones),
   a block of ``period`` layers repeated ``blocks`` times (2 for alternating sliding/global
   attention), and a fixed suffix. Layers are compared by their module classes, parameter and
   buffer shapes, dtypes and ``requires_grad``, and their plain settings (``attention_type``,
   ``sliding_window`` …); a layer's own index is left out.
2. :func:`keep_blocks` cuts a freshly built model (before the plan's cuts) down to the prefix,
   ``k`` blocks and the suffix, the config's per-layer lists with it.
3. The same step is replayed at ``k``, ``k+1``, ``k+2`` blocks (:class:`Probe`), its
   :class:`SegmentTracker` keeping the peak of each phase *outside* the blocks, in the *first*
   and in the *last* block (a phase's peak at any depth is the largest of those three), and
   :func:`extrapolate` checks that every figure is affine in the number of blocks — exact
   integer bytes: ``f(k+2) − f(k+1) == f(k+1) − f(k)`` for each of those peaks and each part of
   the breakdown there, the bytes resident before the step, the parameter counts, the FLOPs by
   dtype, the bytes moved, the op counts and the build's counts — and takes them to the real
   depth. The caching allocator's figures, a model of the allocator rather than a count, are
   extrapolated from the last two probes and marked ``estimated``.

Nothing here knows about plans: :mod:`advisor.engines.simulate` builds the probes and falls
back to the full replay when there is no repeating block or the probes are not affine.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from profilers.records import (
    AllocatorPeak,
    MemoryBreakdown,
    Provenance,
    RepeatReplay,
    StepCost,
    TensorPeak,
    TrialResult,
)
from profilers.simulate.phases import PhaseTracker

__all__ = [
    "BlockClock",
    "Probe",
    "RepeatPattern",
    "SegmentTracker",
    "block_labels",
    "extrapolate",
    "extrapolate_frozen",
    "find_layers",
    "find_repeats",
    "keep_blocks",
    "layer_signatures",
    "model_signature",
]

log = logging.getLogger(__name__)

MAX_PERIOD = 16  # layers per block at most (Gemma 3: 5 local + 1 global)
_INDEX_NAMES = frozenset({"layer_idx", "layer_id", "layer_index", "layer_number", "block_idx", "idx"})
_SIMPLE = (str, bool, int, float, type(None))


@dataclass(frozen=True)
class RepeatPattern:
    """The layers of a model as ``prefix + block × blocks + suffix``."""

    path: str  # the ModuleList of the layers, e.g. "model.layers"
    layers: int  # all of them
    prefix: int  # layers before the repeats
    period: int  # layers per block
    blocks: int  # repeats of the block
    index_attrs: tuple[tuple[str, str], ...] = ()  # (submodule, attribute) holding a layer's index

    @property
    def suffix(self) -> int:
        return self.layers - self.prefix - self.period * self.blocks

    def kept(self, blocks: int) -> list[int]:
        """The indices of the layers a model with ``blocks`` repeats keeps."""
        head = list(range(self.prefix + self.period * blocks))
        return head + list(range(self.layers - self.suffix, self.layers))

    def record(self, probes: Sequence[int], allocator_exact: bool | None, frozen_blocks: int = 0) -> RepeatReplay:
        return RepeatReplay(
            extrapolated=True,
            blocks=self.blocks,
            probes=tuple(probes),
            period_layers=self.period,
            prefix_layers=self.prefix,
            suffix_layers=self.suffix,
            layers_path=self.path,
            allocator_exact=allocator_exact,
            frozen_blocks=frozen_blocks,
        )


def find_layers(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The model's layers: the ``ModuleList`` of two or more modules holding the most parameters."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2:
            continue
        size = sum(p.numel() for p in module.parameters())
        if size and (best is None or size > best[0]):
            best = (size, name, module)
    return None if best is None else (best[1], best[2])


def _settings(module: nn.Module) -> dict[tuple[str, str], Any]:
    """Plain settings of every submodule: (submodule, attribute) → str/bool/int/float/None."""
    out: dict[tuple[str, str], Any] = {}
    for name, sub in module.named_modules():
        for key, value in vars(sub).items():
            if key.startswith("_"):
                continue
            if isinstance(value, _SIMPLE) or (
                isinstance(value, tuple) and all(isinstance(v, _SIMPLE) for v in value)
            ):
                out[(name, key)] = value
    return out


def _structure(module: nn.Module) -> tuple[Any, ...]:
    mods = tuple((n, type(m).__module__, type(m).__qualname__) for n, m in module.named_modules())
    params = tuple(
        (n, tuple(p.shape), str(p.dtype), p.requires_grad) for n, p in module.named_parameters()
    )
    buffers = tuple((n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers())
    return mods, params, buffers


def model_signature(model: nn.Module) -> tuple[Any, ...]:
    """All a replay sees of a model before its step, values aside: its modules' classes, its
    parameters' and buffers' shapes, dtypes and ``requires_grad``, every plain setting of every
    module, and its config. Two models with the same signature replay alike."""
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    settings = tuple(sorted((k, repr(v)) for k, v in _settings(model).items()))
    return _structure(model), settings, repr(sorted(to_dict().items())) if callable(to_dict) else None


def _index_attrs(settings: list[dict[tuple[str, str], Any]]) -> set[tuple[str, str]]:
    """Settings that number the layers: ints that differ in every layer, or index-like names."""
    keys: set[tuple[str, str]] = set().union(*settings) if settings else set()
    found = set()
    for key in keys:
        values = [s.get(key) for s in settings]
        if key[1] in _INDEX_NAMES or (
            all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            and len(set(values)) == len(values)
        ):
            found.add(key)
    return found


def layer_signatures(layers: Sequence[nn.Module]) -> tuple[list[int], tuple[tuple[str, str], ...]]:
    """One small integer per layer, equal for layers alike, and the settings that number them."""
    settings = [_settings(m) for m in layers]
    index = _index_attrs(settings)
    ids: dict[Any, int] = {}
    out = []
    for layer, s in zip(layers, settings, strict=True):
        key = (_structure(layer), tuple(sorted((k, repr(v)) for k, v in s.items() if k not in index)))
        out.append(ids.setdefault(key, len(ids)))
    return out, tuple(sorted(index))


def _pattern(sigs: Sequence[int], max_period: int = MAX_PERIOD) -> tuple[int, int, int] | None:
    """(prefix, period, blocks) covering the most layers with repeats (then the shortest
    period, then the shortest prefix); ``None`` when nothing repeats twice."""
    best: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
    n = len(sigs)
    for period in range(1, min(max_period, n // 2) + 1):
        for prefix in range(0, n - 2 * period + 1):
            run = 0
            while prefix + run < n and sigs[prefix + run] == sigs[prefix + run % period]:
                run += 1
            blocks = run // period
            if blocks < 2:
                continue
            key = (blocks * period, -period, -prefix)
            if best is None or key > best[0]:
                best = (key, (prefix, period, blocks))
    return None if best is None else best[1]


def find_repeats(model: nn.Module) -> RepeatPattern | None:
    """The repeat pattern of ``model``'s layers (see the module doc), ``None`` without one."""
    found = find_layers(model)
    if found is None:
        return None
    path, layers = found
    sigs, index = layer_signatures(list(layers))
    shape = _pattern(sigs)
    if shape is None:
        return None
    prefix, period, blocks = shape
    return RepeatPattern(path, len(layers), prefix, period, blocks, index)


def keep_blocks(model: nn.Module, pattern: RepeatPattern, blocks: int) -> list[nn.Module]:
    """Cut ``model`` (built, plan not yet applied) down to ``blocks`` repeats, in place.

    The layers after the repeats get their new position in their index settings
    (``layer_idx``); the model's config gets the new ``num_hidden_layers`` and its per-layer
    lists (``layer_types`` …) cut alike. Returns the layers kept, in order.
    """
    found = find_layers(model)
    if found is None or len(found[1]) != pattern.layers:
        raise ValueError(f"the model's layers do not match the pattern found ({pattern.path}, {pattern.layers})")
    path, layers = found
    kept = pattern.kept(blocks)
    chosen = [layers[i] for i in kept]
    for position, (old, layer) in enumerate(zip(kept, chosen, strict=True)):
        if old == position:
            continue
        subs = dict(layer.named_modules())
        for sub_name, attr in pattern.index_attrs:
            sub = subs.get(sub_name)
            if sub is not None and getattr(sub, attr, None) == old:
                setattr(sub, attr, position)
    parent_name, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.ModuleList(chosen))
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "num_hidden_layers", None) == pattern.layers:
        for key, value in list(vars(config).items()):
            if key != "architectures" and isinstance(value, (list, tuple)) and len(value) == pattern.layers:
                setattr(config, key, type(value)(value[i] for i in kept))
        config.num_hidden_layers = len(kept)
    return chosen


# -- the probes and the extrapolation ----------------------------------------------------------

OUTSIDE, FIRST, MIDDLE, LAST = "outside", "first", "middle", "last"
# the blocks a plan treats unlike the rest (freeze-layers' first k), a segment of their own
FROZEN_FIRST, FROZEN_MIDDLE, FROZEN_LAST = "frozen-first", "frozen-middle", "frozen-last"
AFTER = "after"  # outside the blocks, once the phase has been in one (see SegmentTracker)


class SegmentTracker(PhaseTracker):
    """A :class:`PhaseTracker` that also keeps the peak of each (phase, where) segment of the
    step, ``where`` being the repeated block the step is in: ``first``, ``middle``, ``last``,
    or ``outside`` them (embeddings, head, loss, prefix and suffix layers, the optimizer).

    Why: a phase's peak is the largest of many moments, and the moments of block ``j`` of ``k``
    are affine in ``(j, k)``, so their largest is at ``j = 1`` or ``j = k``: the phase's peak at
    any depth is the largest of the ``outside``, ``after``, ``first`` and ``last`` peaks, each
    affine in ``k`` — while the phase's own peak can move from one to another between depths.

    ``outside`` is split in two: the moments before the phase enters its first block
    (``outside``: embeddings, or the head and loss in the backward) and those after it has been
    in one (``after``: the head and loss, or the embeddings' gradient). Each is affine in ``k``
    with its own slope (what the blocks left alive), so one ``outside`` peak would be the
    larger of two lines, not a line, and shallow probes would not be affine on it.
    """

    def __init__(self) -> None:
        super().__init__("meta")
        self.where: tuple[str, ...] = (OUTSIDE,)
        self.in_blocks = False  # the phase has entered a block
        self.segment_peaks: dict[tuple[str, str], int] = {}
        self.segment_events: dict[tuple[str, str], int] = {}  # events replayed to reach each peak

    def _note(self) -> None:
        super()._note()
        for where in self.where:
            key = (self.phase, where)
            if self._live_bytes > self.segment_peaks.get(key, -1):
                self.segment_peaks[key] = self._live_bytes
                self.segment_events[key] = len(self._events)

    def set_phase(self, phase: str) -> None:
        self.where = (OUTSIDE,)
        self.in_blocks = False
        super().set_phase(phase)

    def set_where(self, where: tuple[str, ...]) -> None:
        """Enter a segment: ``(first,)``, ``(outside,)``, ``(first, last)`` for a lone block;
        ``(outside,)`` once the phase has been in a block is ``(after,)``."""
        if where == (OUTSIDE,) and self.in_blocks:
            where = (AFTER,)
        elif where != (OUTSIDE,):
            self.in_blocks = True
        self.where = where
        self._note()

    def segment_breakdowns(self) -> dict[tuple[str, str], MemoryBreakdown]:
        """The live bytes by role at each segment's peak."""
        return {key: self.breakdown_at(n) for key, n in self.segment_events.items()}


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        return next((x for x in obj if isinstance(x, torch.Tensor)), None)
    if isinstance(obj, dict):
        return next((x for x in obj.values() if isinstance(x, torch.Tensor)), None)
    return None


class BlockClock:
    """Tells a probe's :class:`SegmentTracker` which repeated block the step is in.

    Forward hooks on each layer mark entering it in the forward, and leaving the last block
    (the moments between two blocks are the earlier one's); in the backward,
    a gradient hook on each layer's output marks entering its backward, and one on the first
    layer's input leaving the last of them. Hooks only read; they change no tensor.
    """

    def __init__(self) -> None:
        self.tracker: SegmentTracker | None = None

    def make_tracker(self) -> SegmentTracker:
        """A fresh tracker for the probe (``tracker_type`` of the replay)."""
        self.tracker = SegmentTracker()
        return self.tracker

    def _forward(self) -> SegmentTracker | None:
        t = self.tracker
        return t if t is not None and t.phase == "forward" else None

    def _mark(self, where: tuple[str, ...]) -> Callable[[torch.Tensor], None]:
        def hook(_grad: torch.Tensor) -> None:
            if self.tracker is not None:
                self.tracker.set_where(where)

        return hook

    def install(self, layers: Sequence[nn.Module], labels: Sequence[tuple[str, ...]]) -> None:
        """Hook ``layers`` (in order), each with its label (``(first,)``, ``(outside,)`` …)."""
        for position, (layer, label) in enumerate(zip(layers, labels, strict=True)):

            def pre(
                _m: nn.Module, args: Any, kwargs: Any, label: tuple[str, ...] = label, position: int = position
            ) -> None:
                tracker = self._forward()
                if tracker is None:
                    return
                tracker.set_where(label)
                if position == 0:
                    x = _first_tensor(args) if _first_tensor(args) is not None else _first_tensor(kwargs)
                    if x is not None and x.requires_grad:
                        x.register_hook(self._mark((OUTSIDE,)))

            def post(_m: nn.Module, _args: Any, _kwargs: Any, out: Any, label: tuple[str, ...] = label) -> None:
                tracker = self._forward()
                if tracker is None:
                    return
                if LAST in label or label == (OUTSIDE,):
                    tracker.set_where((OUTSIDE,))  # (after,) once past the blocks
                # else what happens before the next block's forward is still this block's
                y = _first_tensor(out)
                if y is not None and y.requires_grad:
                    y.register_hook(self._mark(label))

            layer.register_forward_pre_hook(pre, with_kwargs=True)
            layer.register_forward_hook(post, with_kwargs=True)


def block_labels(pattern: RepeatPattern, blocks: int, frozen: int = 0) -> list[tuple[str, ...]]:
    """The label of each layer a probe with ``blocks`` repeats keeps (a lone block is both the
    first and the last); with ``frozen``, the first ``frozen`` of the blocks are a segment of
    their own (``frozen-first`` … ``frozen-last``) before the others."""
    labels: list[tuple[str, ...]] = []
    for position in range(len(pattern.kept(blocks))):
        b = (position - pattern.prefix) // pattern.period
        if position < pattern.prefix or b >= blocks:
            labels.append((OUTSIDE,))
        elif b < frozen:
            ends = ((FROZEN_FIRST, b == 0), (FROZEN_LAST, b == frozen - 1))
            labels.append(tuple(w for w, yes in ends if yes) or (FROZEN_MIDDLE,))
        else:
            ends = ((FIRST, b == frozen), (LAST, b == blocks - 1))
            labels.append(tuple(w for w, yes in ends if yes) or (MIDDLE,))
    return labels


@dataclass
class Probe:
    """One replay with ``blocks`` repeats: its result, and what its tracker saw."""

    blocks: int
    frozen: int = 0  # of the blocks, the first ones the plan treats unlike the rest (extrapolate_frozen)
    clock: BlockClock = dataclasses.field(default_factory=BlockClock)
    result: TrialResult | None = None
    plain_params: int | None = None  # parameters of the probe's model before the plan's cuts
    segment_peaks: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    segment_breakdowns: dict[tuple[str, str], MemoryBreakdown] = dataclasses.field(default_factory=dict)
    segment_events: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    def observe(self, tracker: PhaseTracker) -> None:
        """The replay's ``observe`` hook: keep the segments' peaks and breakdowns."""
        assert isinstance(tracker, SegmentTracker)
        self.segment_peaks = dict(tracker.segment_peaks)
        self.segment_breakdowns = tracker.segment_breakdowns()
        self.segment_events = dict(tracker.segment_events)
        self.clock.tracker = None


_PARTS = tuple(f.name for f in dataclasses.fields(MemoryBreakdown))
_COSTS = ("flop_op_bytes", "other_op_bytes", "ops", "max_attention_query_elements")
_PAGE = 2 << 20  # CUDA caching-allocator segments are whole 2 MiB pages
_PARAMS = ("total", "trainable", "parameter_bytes", "trainable_bytes")


def _figures(probe: Probe) -> dict[tuple[str, ...], int]:
    """Every integer figure of a probe that must be affine in the number of blocks."""
    r = probe.result
    assert r is not None and r.tensor_peak is not None and r.simulation is not None
    out: dict[tuple[str, ...], int] = {("resident",): r.tensor_peak.resident_before_step_bytes}
    for (phase, where), peak in probe.segment_peaks.items():
        if where in (MIDDLE, FROZEN_MIDDLE):  # never above the first or the last block's (see SegmentTracker)
            continue
        out[("segment", phase, where)] = peak
        b = probe.segment_breakdowns[(phase, where)]
        for part in _PARTS:
            out[("breakdown", phase, where, part)] = getattr(b, part)
    if r.params is not None:
        for name in _PARAMS:
            out[("params", name)] = getattr(r.params, name)
    if probe.plain_params is not None:
        out[("plain_params",)] = probe.plain_params
    for key, value in r.extra.items():  # the build's counts (frozen parameters, blocks wrapped)
        if isinstance(value, int) and not isinstance(value, bool):
            out[("extra", key)] = value
    if r.simulation.host_peak_bytes is not None:  # activation offload's pinned host copies
        out[("host",)] = r.simulation.host_peak_bytes
    cost = r.simulation.step_cost
    if cost is not None:
        for dtype, flops in cost.flops_by_dtype.items():
            out[("flops", dtype)] = flops
        for kernel, calls in cost.attention_ops.items():
            out[("attention", kernel)] = calls
        for name in _COSTS:
            out[("cost", name)] = getattr(cost, name)
    return out


def _soft_figures(probe: Probe) -> dict[tuple[str, ...], int]:
    """Figures extrapolated from the last two probes even when not exactly affine."""
    r = probe.result
    assert r is not None and r.simulation is not None
    out: dict[tuple[str, ...], int] = {("unknown_reads",): r.simulation.unknown_value_reads}
    alloc = r.simulation.cuda_allocator
    if alloc is not None:
        out[("allocator", "max_allocated_bytes")] = alloc.max_allocated_bytes
        out[("allocator", "max_reserved_bytes")] = alloc.max_reserved_bytes
        out[("allocator", "segments")] = alloc.segments
    return out


def _allocated(probe: Probe) -> int:
    """What a probe's caching allocator handed out at most."""
    alloc = probe.result.simulation.cuda_allocator if probe.result and probe.result.simulation else None
    return 0 if alloc is None else alloc.max_allocated_bytes


def _cache_overhead(probe: Probe) -> int:
    """What a probe's caching allocator reserved beyond what it handed out."""
    alloc = probe.result.simulation.cuda_allocator if probe.result and probe.result.simulation else None
    return 0 if alloc is None else alloc.max_reserved_bytes - alloc.max_allocated_bytes


def _affine(
    probes: Sequence[Probe], figures: Callable[[Probe], dict[tuple[str, ...], int]], blocks: int
) -> tuple[dict[tuple[str, ...], int], list[tuple[str, ...]]]:
    """Each figure at ``blocks`` repeats from the last two probes, and those not affine on the
    last three (or missing from one of them)."""
    seen = [figures(p) for p in probes[-3:]]
    a, b, c = seen
    bad = sorted(set(a) ^ set(b) | set(b) ^ set(c))
    out: dict[tuple[str, ...], int] = {}
    step = probes[-1].blocks - probes[-2].blocks
    for key in c.keys() & b.keys():
        rise = c[key] - b[key]
        if (key in a and rise != b[key] - a[key]) or rise % step:
            bad.append(key)
        out[key] = c[key] + rise // step * (blocks - probes[-1].blocks)
    return out, bad


def extrapolate(
    probes: Sequence[Probe], pattern: RepeatPattern, *, plain_params: int, wall_time_s: float
) -> TrialResult | str:
    """The result at the real depth from the last three probes, or why it cannot be had.

    ``plain_params`` is the parameter count of the real model before the plan (built on meta):
    the probes' own counts, extrapolated, must equal it.
    """
    if len(probes) < 3:
        return "fewer than three probes"
    ks = [p.blocks for p in probes[-3:]]
    if ks[2] - ks[1] != ks[1] - ks[0]:
        return f"probes at {ks} are not evenly spaced"
    n = pattern.blocks
    exact, bad = _affine(probes, _figures, n)
    if bad:
        shown = ", ".join("/".join(k) for k in bad[:4])
        return f"not affine in the number of blocks on probes {ks[0]}..{ks[2]}: {shown}"
    soft, soft_bad = _affine(probes, _soft_figures, n)
    return _assemble(
        probes, probes[-3:], exact, soft, soft_bad,
        lambda allocator_exact: pattern.record(ks, allocator_exact), plain_params=plain_params, wall_time_s=wall_time_s,
    )  # fmt: skip


def _affine_grid(
    grid: Mapping[tuple[int, int], Probe], figures: Callable[[Probe], dict[tuple[str, ...], int]], at: tuple[int, int]
) -> tuple[dict[tuple[str, ...], int], list[tuple[str, ...]]]:
    """Each figure at ``at`` = (frozen blocks, other blocks) from probes on a grid around its
    smallest corner (a, b): (a..a+2, b), (a, b..b+2) and (a+1, b+1); and those not affine on it,
    in each count alone or with a cross term (or missing from a probe)."""
    a, b = min(grid)
    need = [(a, b), (a + 1, b), (a + 2, b), (a, b + 1), (a, b + 2), (a + 1, b + 1)]
    seen = {k: figures(grid[k]) for k in need}
    common = set.intersection(*(set(f) for f in seen.values()))
    bad = sorted(set.union(*(set(f) for f in seen.values())) - common)
    out: dict[tuple[str, ...], int] = {}
    for key in common:
        base = seen[(a, b)][key]
        da, db = seen[(a + 1, b)][key] - base, seen[(a, b + 1)][key] - base
        if (
            seen[(a + 2, b)][key] != base + 2 * da
            or seen[(a, b + 2)][key] != base + 2 * db
            or seen[(a + 1, b + 1)][key] != base + da + db
        ):
            bad.append(key)
        out[key] = base + da * (at[0] - a) + db * (at[1] - b)
    return out, bad


def extrapolate_frozen(
    grid: Mapping[tuple[int, int], Probe],
    pattern: RepeatPattern,
    frozen_blocks: int,
    *,
    plain_params: int,
    wall_time_s: float,
) -> TrialResult | str:
    """The result at the real depth where the plan treats the first ``frozen_blocks`` blocks
    unlike the rest (``freeze-layers(k=…)``): two segments, each repeated, so every figure is
    affine in both counts. ``grid`` maps (frozen, other) blocks to a probe of the six
    :func:`_affine_grid` reads; the figures must be affine in each count and without a cross
    term on them, else why not."""
    if len(grid) < 6:
        return "fewer than six probes for two segments"
    at = (frozen_blocks, pattern.blocks - frozen_blocks)
    exact, bad = _affine_grid(grid, _figures, at)
    (a, b) = min(grid)
    if bad:
        shown = ", ".join("/".join(k) for k in bad[:4])
        return f"not affine in the frozen and other blocks on probes ({a}..{a + 2}, {b}..{b + 2}): {shown}"
    soft, soft_bad = _affine_grid(grid, _soft_figures, at)
    probes = [grid[k] for k in sorted(grid)]
    if a != b:
        return "the probes of the two segments span different counts"
    return _assemble(
        probes, probes, exact, soft, soft_bad,
        lambda allocator_exact: pattern.record((a, a + 1, a + 2), allocator_exact, frozen_blocks),
        plain_params=plain_params, wall_time_s=wall_time_s,
    )  # fmt: skip


def _assemble(
    probes: Sequence[Probe],
    recent: Sequence[Probe],
    exact: dict[tuple[str, ...], int],
    soft: dict[tuple[str, ...], int],
    soft_bad: list[tuple[str, ...]],
    record: Callable[[bool | None], RepeatReplay],
    *,
    plain_params: int,
    wall_time_s: float,
) -> TrialResult | str:
    """The extrapolated result from the figures at the real depth, ``probes[-1]`` the template
    (every probe has the same keys: the figures were checked), ``recent`` the probes the line
    went through."""
    last = probes[-1].result
    assert last is not None and last.tensor_peak is not None and last.simulation is not None
    if exact.get(("plain_params",)) != plain_params:
        return f"parameters extrapolated ({exact.get(('plain_params',))}) differ from the real model's ({plain_params})"
    params = last.params
    if params is not None:
        counts: dict[str, Any] = {name: exact[("params", name)] for name in _PARAMS}
        params = dataclasses.replace(params, **counts)
    extra = {k: exact.get(("extra", k), v) for k, v in last.extra.items()}

    segments = {(k[1], k[2]): v for k, v in exact.items() if k[0] == "segment"}
    events = probes[-1].segment_events
    phases: dict[str, int] = {}
    for phase in last.simulation.phase_peaks:
        mine = [v for (ph, _), v in segments.items() if ph == phase]
        if not mine:
            return f"no segment of the {phase} phase on the probes"
        phases[phase] = max(mine)
    # the peak is the largest segment peak; a tie goes to the segment that reached it first
    winner = min(segments, key=lambda key: (-segments[key], events.get(key, 0)))
    breakdown = MemoryBreakdown(**{part: exact[("breakdown", *winner, part)] for part in _PARTS})
    if breakdown.total_bytes != segments[winner]:
        return f"the breakdown at the {'/'.join(winner)} peak does not add up to it"
    tensor_peak = TensorPeak(
        peak_bytes=segments[winner],
        breakdown=breakdown,
        resident_before_step_bytes=exact[("resident",)],
        peak_phase=winner[0],
        provenance=last.tensor_peak.provenance,
    )
    cost = last.simulation.step_cost
    if cost is not None:
        cost = StepCost(
            flops_by_dtype={d: exact[("flops", d)] for d in cost.flops_by_dtype},
            flop_op_bytes=exact[("cost", "flop_op_bytes")],
            other_op_bytes=exact[("cost", "other_op_bytes")],
            ops=exact[("cost", "ops")],
            attention_ops={k: exact[("attention", k)] for k in cost.attention_ops},
            max_attention_query_elements=exact[("cost", "max_attention_query_elements")],
            provenance=cost.provenance,
        )
    alloc = last.simulation.cuda_allocator
    allocator_exact: bool | None = None
    if alloc is not None:
        # the allocator's cache is quantized in segments and fills unevenly, so even figures
        # affine on the probes are not exact at depth: an estimate, from the last two probes,
        # in whole 2 MiB pages, never below what is allocated
        allocator_exact = not any(k[0] == "allocator" for k in soft_bad)
        if soft[("allocator", "max_allocated_bytes")] < tensor_peak.peak_bytes:
            # the probes' allocator peaked in another phase than the real depth does (a shallow
            # checkpointed model peaks in the optimizer step, the deep one in the forward): their
            # reserved line says nothing of the cache at the depth's peak
            allocator_exact = False
        allocated = max(soft[("allocator", "max_allocated_bytes")], tensor_peak.peak_bytes)
        reserved = max(soft[("allocator", "max_reserved_bytes")], allocated)
        if not allocator_exact:  # at least the most any probe's cache held beyond its blocks
            most = max(_cache_overhead(p) for p in probes)
            reserved = max(reserved, allocated + max(_cache_overhead(p) for p in recent))
            # and the cache beyond that grows no faster than the allocations: where it jumps
            # from probe to probe (FSDP2's all-gather buffers freed and re-allocated per block:
            # 39.8, 40.4, 33.2, 41.6 GiB reserved on probes of 1-4 blocks of llama-3.1-70b at 16
            # GPUs), a line through the last two grows it without bound (683 GiB reserved for
            # 101 GiB allocated)
            last_allocated = max(_allocated(p) for p in probes)
            reserved = min(reserved, allocated + most + max(0, allocated - last_allocated))
        alloc = AllocatorPeak(
            max_allocated_bytes=allocated,
            max_reserved_bytes=_PAGE * -(-reserved // _PAGE),
            segments=max(1, soft[("allocator", "segments")]),
            provenance=Provenance.ESTIMATED,
        )
    simulation = dataclasses.replace(
        last.simulation,
        phase_peaks=phases,
        step_cost=cost,
        cuda_allocator=alloc,
        unknown_value_reads=max(0, soft[("unknown_reads",)]),
        host_peak_bytes=exact.get(("host",), last.simulation.host_peak_bytes),
        repeats=record(allocator_exact),
    )
    return dataclasses.replace(
        last,
        params=params,
        tensor_peak=tensor_peak,
        simulation=simulation,
        extra=extra,
        wall_time_s=wall_time_s,
    )

