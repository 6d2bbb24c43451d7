"""Repeat-block simulation of plans that treat the first blocks unlike the rest
(``freeze-layers(k=…)``): the frozen blocks and the others are two repeated segments, probed
at 1..3 of each and extrapolated in both counts; the result must equal the full replay of
every layer to the byte (figure by figure, as in test_repeat.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from advisor.engines.simulate import simulate
from advisor.models import HFModelSource
from profilers.records import TrialResult
from profilers.simulate.repeat import (
    FIRST,
    FROZEN_FIRST,
    FROZEN_LAST,
    FROZEN_MIDDLE,
    LAST,
    OUTSIDE,
    Probe,
    RepeatPattern,
    block_labels,
    extrapolate_frozen,
)
from tests.small_models import gpt2 as _gpt2
from tests.small_models import llama as _llama
from tests.small_models import one_segment_probe

pytestmark = pytest.mark.usefixtures("fast_simulations")

BATCH, SEQ = 2, 32  # as test_repeat.py


def _assert_same_figures(fast: TrialResult, full: TrialResult) -> None:
    assert fast.tensor_peak == full.tensor_peak  # peak, breakdown, resident bytes, peak phase: exact
    assert fast.params == full.params
    assert fast.extra == full.extra
    assert fast.simulation is not None and full.simulation is not None
    assert fast.simulation.phase_peaks == full.simulation.phase_peaks
    assert fast.simulation.step_cost == full.simulation.step_cost  # FLOPs by dtype, bytes, ops
    assert fast.simulation.host_peak_bytes == full.simulation.host_peak_bytes


@pytest.mark.parametrize(
    ("factory", "plan", "frozen"),
    [(_llama, "freeze-layers(k=5)", 5), (_gpt2, "freeze-layers(k=4)+bf16-weights+grad-ckpt", 4)],
)
def test_frozen_blocks_extrapolate_as_a_segment_of_their_own(
    factory: Callable[[int], HFModelSource], plan: str, frozen: int
) -> None:
    source = factory(10)
    fast = simulate(source, plan, BATCH, SEQ)
    full = simulate(source, plan, BATCH, SEQ, extrapolate=False)
    assert fast.ok and full.ok, (fast.reason, full.reason)
    _assert_same_figures(fast, full)
    assert fast.extra["frozen_layer_params"] == full.extra["frozen_layer_params"] > 0
    repeats = fast.simulation.repeats  # type: ignore[union-attr]
    assert repeats is not None and repeats.extrapolated and repeats.frozen_blocks == frozen
    assert repeats.detail == (
        f"simulated (extrapolated from 1..3 of {frozen} frozen and 1..3 of {10 - frozen} other blocks)"
    )
    assert TrialResult.from_dict(fast.to_dict()).simulation == fast.simulation


def test_labels_of_two_segments() -> None:
    pattern = RepeatPattern("layers", 12, prefix=1, period=1, blocks=11)
    assert block_labels(pattern, 5, frozen=3) == [
        (OUTSIDE,), (FROZEN_FIRST,), (FROZEN_MIDDLE,), (FROZEN_LAST,), (FIRST,), (LAST,),
    ]  # fmt: skip
    assert block_labels(pattern, 3, frozen=1) == [(OUTSIDE,), (FROZEN_FIRST, FROZEN_LAST), (FIRST,), (LAST,)]


def _grid(peak: Callable[[int, int], int]) -> dict[tuple[int, int], Probe]:
    return {(a, b): one_segment_probe(a + b, peak(a, b), 60 * (a + b), frozen=a) for a, b in ((1, 1), (2, 1), (3, 1), (1, 2), (1, 3), (2, 2))}


def test_two_counts_extrapolate_exactly_and_refuse_a_cross_term() -> None:
    pattern = RepeatPattern("layers", 32, prefix=0, period=1, blocks=32)
    out = extrapolate_frozen(_grid(lambda a, b: 1000 + 70 * a + 100 * b), pattern, 8, plain_params=320, wall_time_s=1.0)
    assert isinstance(out, TrialResult) and out.tensor_peak is not None
    assert out.tensor_peak.peak_bytes == 1000 + 70 * 8 + 100 * 24
    assert out.tensor_peak.breakdown.activation_bytes == 60 * 32
    assert out.params is not None and (out.params.total, out.params.trainable) == (320, 240)
    assert out.simulation is not None and out.simulation.repeats is not None
    assert out.simulation.repeats.frozen_blocks == 8 and out.simulation.repeats.probes == (1, 2, 3)
    crossed = _grid(lambda a, b: 1000 + 70 * a + 100 * b + a * b)  # on each line, but not on the plane
    out = extrapolate_frozen(crossed, pattern, 8, plain_params=320, wall_time_s=1.0)
    assert isinstance(out, str) and out.startswith("not affine in the frozen and other blocks")


def test_a_sweep_starts_the_plans_of_two_segments_first() -> None:
    """A worker pool runs plans in the order submitted: the six-probe plan goes first, so it
    does not start last and leave the other workers idle."""
    from advisor.engines.simulate import longest_first
    from advisor.plans import parse_plans

    plans = parse_plans("baseline; lora; freeze-layers(k=8); freeze-layers(k=2); sgd")
    assert longest_first(plans) == [2, 0, 1, 3, 4]
