"""Repeat-block simulation: a few repeats of the block replayed, the real depth extrapolated.

The extrapolated result is compared with the full replay of the same step, figure by figure:
the tensor figures, phase peaks, FLOPs and bytes must be equal to the byte; the caching
allocator (a model of the allocator, not a count) within a stated tolerance.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advisor.engines.simulate import simulate
from advisor.models import HFModelSource, ModuleSource
from profilers.records import Provenance, TrialResult
from profilers.simulate.repeat import RepeatPattern, _pattern, extrapolate, find_repeats, keep_blocks
from tests.small_models import bert as _bert
from tests.small_models import gemma2 as _gemma2
from tests.small_models import gpt2 as _gpt2
from tests.small_models import llama as _llama
from tests.small_models import one_segment_probe

pytestmark = pytest.mark.usefixtures("fast_simulations")

BATCH, SEQ = 2, 32
PLANS = ("baseline", "lora", "grad-ckpt", "lora+grad-ckpt", "bf16-weights+lora", "sgd")


MODELS = {"llama": _llama, "gpt2": _gpt2, "bert": _bert}


def _both(source: HFModelSource | ModuleSource, plan: str, **kwargs: object) -> tuple[TrialResult, TrialResult]:
    fast = simulate(source, plan, BATCH, SEQ, **kwargs)  # type: ignore[arg-type]
    full = simulate(source, plan, BATCH, SEQ, extrapolate=False, **kwargs)  # type: ignore[arg-type]
    assert fast.ok and full.ok, (fast.reason, full.reason)
    return fast, full


def _assert_same_figures(fast: TrialResult, full: TrialResult) -> None:
    assert fast.tensor_peak == full.tensor_peak  # peak, breakdown, resident bytes, peak phase: exact
    assert fast.params == full.params
    assert fast.accumulation_steps == full.accumulation_steps
    assert fast.extra == full.extra
    assert fast.simulation is not None and full.simulation is not None
    assert fast.simulation.phase_peaks == full.simulation.phase_peaks
    assert fast.simulation.step_cost == full.simulation.step_cost  # FLOPs by dtype, bytes, ops
    assert fast.simulation.tokens_per_step == full.simulation.tokens_per_step
    assert fast.simulation.optimizer_foreach == full.simulation.optimizer_foreach


@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_extrapolated_equals_the_full_replay(arch: str, plan: str) -> None:
    fast, full = _both(MODELS[arch](10), plan)
    _assert_same_figures(fast, full)
    assert fast.simulation is not None and full.simulation is not None
    repeats = fast.simulation.repeats
    assert repeats is not None and repeats.extrapolated
    # three probes in a row, from one block (two when one block alone is not on the line)
    assert (repeats.blocks, repeats.period_layers) == (10, 1)
    assert repeats.probes in ((1, 2, 3), (2, 3, 4))
    assert repeats.detail == f"simulated (extrapolated from {repeats.probes[0]}..{repeats.probes[2]} of 10 blocks)"
    assert full.simulation.repeats is not None and not full.simulation.repeats.extrapolated
    assert full.simulation.repeats.detail == "simulated (full replay: asked for)"
    # the caching allocator is replayed on the events, not counted: extrapolated, an estimate
    a, b = fast.simulation.cuda_allocator, full.simulation.cuda_allocator
    assert a is not None and b is not None
    assert a.max_reserved_bytes >= a.max_allocated_bytes >= fast.tensor_peak.peak_bytes  # type: ignore[union-attr]
    assert a.provenance is Provenance.ESTIMATED and b.provenance is Provenance.SIMULATED


@pytest.mark.slow
@pytest.mark.parametrize("plan", PLANS)
def test_allocator_estimate_at_a_realistic_width(plan: str) -> None:
    """At widths where segments are many (Llama-3.2-1B's, 10 layers, seq 1024) the
    extrapolated allocator is within 2.5% of the replayed one; tensor figures stay exact."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=10,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=2048,
    )  # fmt: skip
    cfg.architectures = ["LlamaForCausalLM"]
    source = HFModelSource("llama-1b-10", cfg)
    fast = simulate(source, plan, 1, 1024)
    full = simulate(source, plan, 1, 1024, extrapolate=False)
    _assert_same_figures(fast, full)
    a, b = fast.simulation.cuda_allocator, full.simulation.cuda_allocator  # type: ignore[union-attr]
    assert a is not None and b is not None
    assert abs(a.max_reserved_bytes - b.max_reserved_bytes) <= 0.025 * b.max_reserved_bytes
    assert abs(a.max_allocated_bytes - b.max_allocated_bytes) <= 0.001 * b.max_allocated_bytes


def test_an_allocator_peak_the_probes_reached_elsewhere_is_not_taken_as_exact() -> None:
    """Checkpointed, accumulated fp16 BERT classification: the probes' allocator peaks in their
    backward, the full depth's tensor peak is in the forward. The probes' reserved line then
    says nothing of the cache at the depth's peak: the figure is an inexact estimate and stays
    at or above what the full replay reserves (not clamped to the allocated bytes)."""
    source = _bert(8, "BertForSequenceClassification")
    plan = "fp16+accum(steps=4)+grad-ckpt+adafactor+optim-impl(kind=loop)+eager-attn+zero-grad(set_to_none=false)"
    fast = simulate(source, plan, 4, 64, target="cuda")
    full = simulate(source, plan, 4, 64, target="cuda", extrapolate=False)
    assert fast.ok and full.ok, (fast.reason, full.reason)
    assert fast.tensor_peak == full.tensor_peak and fast.tensor_peak.peak_phase == "forward"  # type: ignore[union-attr]
    assert fast.simulation is not None and full.simulation is not None
    assert fast.simulation.repeats is not None and fast.simulation.repeats.allocator_exact is False
    a, b = fast.simulation.cuda_allocator, full.simulation.cuda_allocator
    assert a is not None and b is not None
    assert a.max_reserved_bytes >= b.max_reserved_bytes


@pytest.mark.parametrize("plan", ("baseline", "lora+grad-ckpt", "sgd"))
def test_alternating_layers_repeat_in_blocks_of_two(plan: str) -> None:
    fast, full = _both(_gemma2(20), plan)
    _assert_same_figures(fast, full)
    repeats = fast.simulation.repeats  # type: ignore[union-attr]
    assert repeats is not None and repeats.extrapolated
    assert (repeats.blocks, repeats.period_layers) == (10, 2) and repeats.probes in ((1, 2, 3), (2, 3, 4))


def test_frozen_first_layers_take_deeper_probes() -> None:
    """freeze-layers(k=2) cannot run on one layer, and two frozen layers alone are not on the
    line of the real model (two frozen, the rest trained): the probes go deeper."""
    fast, full = _both(_llama(24), "freeze-layers(k=2)")
    _assert_same_figures(fast, full)
    repeats = fast.simulation.repeats  # type: ignore[union-attr]
    assert repeats is not None and repeats.extrapolated
    assert repeats.probes[0] >= 2 and repeats.blocks == 24
    assert fast.extra["frozen_layer_params"] == full.extra["frozen_layer_params"] > 0


def test_cpu_target_and_accumulation() -> None:
    fast, full = _both(_llama(10), "accum(steps=2)", target="cpu")
    _assert_same_figures(fast, full)
    assert fast.simulation.repeats.extrapolated  # type: ignore[union-attr]
    assert fast.simulation.cuda_allocator is None  # type: ignore[union-attr]


def test_round_trip_keeps_the_record() -> None:
    fast = simulate(_llama(10), "lora", BATCH, SEQ)
    again = TrialResult.from_dict(fast.to_dict())
    assert again.simulation == fast.simulation
    assert fast.to_dict()["simulation"]["repeats"]["probes"] == [1, 2, 3]


# -- falling back to the full replay, and saying why -------------------------------------------


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))


class _Funnel(nn.Module):
    """Ten layers, each of its own width: nothing repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(16 + i, 17 + i) for i in range(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.mark.parametrize("factory", (_mlp, _Funnel))
def test_no_repeating_block_falls_back_and_says_so(factory: type[nn.Module]) -> None:
    source = ModuleSource(factory.__name__, factory)
    fast, full = _both(source, "baseline")
    _assert_same_figures(fast, full)
    repeats = fast.simulation.repeats  # type: ignore[union-attr]
    assert repeats is not None and not repeats.extrapolated
    assert repeats.reason == "no repeating block found"
    assert repeats.detail == "simulated (full replay: no repeating block found)"


def test_few_blocks_fall_back() -> None:
    result = simulate("tiny-llama", "baseline", BATCH, SEQ)
    repeats = result.simulation.repeats  # type: ignore[union-attr]
    assert repeats is not None and not repeats.extrapolated
    assert repeats.reason == "2 repeating blocks, fewer than 8"


def test_plain_module_blocks_extrapolate() -> None:
    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(16, 32)
            self.layers = nn.ModuleList(nn.Sequential(nn.Linear(32, 32), nn.GELU()) for _ in range(12))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.inp(x)
            for layer in self.layers:
                x = x + layer(x)
            return x

    source = ModuleSource("stack", Stack)
    for plan in ("baseline", "grad-ckpt", "sgd"):
        fast, full = _both(source, plan)
        _assert_same_figures(fast, full)
        assert fast.simulation.repeats.extrapolated  # type: ignore[union-attr]


# -- the parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigs", "expected"),
    [
        ([0] * 10, (0, 1, 10)),
        ([0, 1] * 5, (0, 2, 5)),
        ([7] + [0] * 9, (1, 1, 9)),  # a dense layer before mixture-of-experts ones
        ([0, 0, 0, 0, 0, 1] * 3 + [0, 0], (0, 6, 3)),  # 5 local : 1 global, 2 layers after
        ([0, 1, 2, 3], None),
    ],
)
def test_pattern(sigs: list[int], expected: tuple[int, int, int] | None) -> None:
    assert _pattern(sigs) == expected


def test_keep_blocks_renumbers_the_layers_after_the_repeats() -> None:
    with torch.device("meta"):
        model = _llama(10).build("meta")
    found = find_repeats(model)
    assert found is not None and (found.prefix, found.period, found.blocks) == (0, 1, 10)
    assert ("self_attn", "layer_idx") in found.index_attrs
    pattern = RepeatPattern(found.path, 10, prefix=1, period=1, blocks=8, index_attrs=found.index_attrs)
    assert pattern.suffix == 1 and pattern.kept(2) == [0, 1, 2, 9]
    kept = keep_blocks(model, pattern, 2)
    assert len(model.model.layers) == 4 and kept[3] is model.model.layers[3]
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2, 3]
    assert model.config.num_hidden_layers == 4


def test_keep_blocks_cuts_the_layer_types() -> None:
    model = _gemma2(20).build("meta")
    pattern = find_repeats(model)
    assert pattern is not None and (pattern.period, pattern.blocks) == (2, 10)
    keep_blocks(model, pattern, 3)
    assert model.config.num_hidden_layers == 6
    assert model.config.layer_types == ["sliding_attention", "full_attention"] * 3


def test_extrapolate_takes_an_affine_line_to_the_real_depth() -> None:
    pattern = RepeatPattern("layers", 10, prefix=0, period=1, blocks=10)
    probes = [one_segment_probe(k, 1000 + 100 * k, 60 * k) for k in (1, 2, 3)]
    out = extrapolate(probes, pattern, plain_params=100, wall_time_s=1.0)
    assert isinstance(out, TrialResult)
    assert out.tensor_peak is not None and out.tensor_peak.peak_bytes == 2000  # 1000 + 100 × 10
    assert out.tensor_peak.breakdown.activation_bytes == 600
    assert out.params is not None and out.params.total == 100
    assert out.simulation is not None and out.simulation.phase_peaks == {"backward": 2000}


def test_extrapolate_refuses_what_is_not_affine() -> None:
    pattern = RepeatPattern("layers", 10, prefix=0, period=1, blocks=10)
    bent = [one_segment_probe(1, 1100, 60), one_segment_probe(2, 1200, 120), one_segment_probe(3, 1350, 180)]
    out = extrapolate(bent, pattern, plain_params=100, wall_time_s=1.0)
    assert isinstance(out, str) and out.startswith("not affine in the number of blocks on probes 1..3")
    wrong_params = [one_segment_probe(k, 1000 + 100 * k, 60 * k) for k in (1, 2, 3)]
    out = extrapolate(wrong_params, pattern, plain_params=101, wall_time_s=1.0)
    assert isinstance(out, str) and "differ from the real model's" in out


# -- the outside of the blocks in two segments: before and after them ---------------------------


def _llama_8b_scaled(layers: int = 10) -> HFModelSource:
    """Llama-3.1-8B's proportions at 1/64 of its width, vocabulary and sequence (the step's
    activations, gradients, logits and embedding gradient all scale alike): with one
    ``outside`` segment its backward's outside peak was the larger of two lines (the head's
    backward before the blocks, the embeddings' after them), crossing at 3 blocks, so probes
    1..3 and 2..4 were not affine and 3..5 were needed."""
    return _llama(layers, "llama-8b-scaled", vocab_size=2004, intermediate_size=224, num_attention_heads=32,
                  num_key_value_heads=8)  # fmt: skip


@pytest.mark.parametrize("plan", ["eager-attn", "grad-ckpt+bf16-weights"])
def test_outside_before_and_after_the_blocks_extrapolate_from_one_block(plan: str) -> None:
    source = _llama_8b_scaled(10)
    fast = simulate(source, plan, 1, 32)
    full = simulate(source, plan, 1, 32, extrapolate=False)
    assert fast.ok and full.ok, (fast.reason, full.reason)
    _assert_same_figures(fast, full)
    assert fast.simulation is not None and fast.simulation.repeats is not None
    assert fast.simulation.repeats.probes == (1, 2, 3)


def test_the_segment_tracker_names_the_outside_before_and_after_the_blocks() -> None:
    from profilers.simulate.repeat import AFTER, FIRST, LAST, OUTSIDE, SegmentTracker

    tracker = SegmentTracker()
    seen = []
    for phase, steps in (("forward", [(OUTSIDE,), (FIRST,), (LAST,), (OUTSIDE,)]), ("backward", [(OUTSIDE,), (LAST,), (OUTSIDE,)])):
        tracker.set_phase(phase)
        for where in steps:
            tracker.set_where(where)
            seen.append((phase, tracker.where))
    assert seen == [
        ("forward", (OUTSIDE,)), ("forward", (FIRST,)), ("forward", (LAST,)), ("forward", (AFTER,)),
        ("backward", (OUTSIDE,)), ("backward", (LAST,)), ("backward", (AFTER,)),
    ]  # fmt: skip
