"""zero-grad(set_to_none=false): gradients zeroed in place stay allocated through the next step.

torch < 2.0's ``zero_grad()`` default, which transformers 4.21's Trainer ran on: the measured
trial and the simulated replay must both follow it, and the steady step's forward/backward then
holds every trainable gradient from its start.
"""

from __future__ import annotations

import pytest

import advisor
from advisor.engines.simulate import simulate
from advisor.models import resolve_model
from advisor.plans import parse_plan

KEEP = "zero-grad(set_to_none=false)"

pytestmark = pytest.mark.usefixtures("fast_simulations")


def _gradient_bytes(model: str) -> int:
    """Every trainable parameter's gradient, from the parameter shapes (fp32: 4 bytes)."""
    built = resolve_model(model).build("meta")
    return sum(p.numel() * 4 for p in built.parameters() if p.requires_grad)


def test_measured_equals_simulated_with_gradients_zeroed_in_place() -> None:
    plan = parse_plan(KEEP)
    simulated = advisor.simulate("tiny-llama", plan, batch_size=1, seq_len=32, target="cpu")
    # no warm-up asked for: the trial still measures the second step, the first with the
    # gradients resident
    measured = advisor.profile(
        "tiny-llama", plan=plan, batch_size=1, seq_len=32, device="cpu", steps=0, warmup_steps=0
    )
    assert simulated.tensor_peak is not None and measured.tensor_peak is not None
    assert simulated.tensor_peak.peak_bytes == measured.tensor_peak.peak_bytes
    assert simulated.tensor_peak.breakdown == measured.tensor_peak.breakdown
    # the steady step (after one warm-up step) starts with the gradients resident
    freed = advisor.simulate("tiny-llama", "baseline", batch_size=1, seq_len=32, target="cpu").tensor_peak
    assert freed is not None
    kept_at_start = measured.tensor_peak.resident_before_step_bytes - freed.resident_before_step_bytes
    assert kept_at_start == _gradient_bytes("tiny-llama")


def test_the_forward_backward_peak_rises_by_the_gradient_bytes() -> None:
    """At 4 × 128 the backward decides tiny-llama's peak before the first gradient exists; kept
    gradients add all their bytes there. With accumulation they are alive then anyway."""
    grads = _gradient_bytes("tiny-llama")
    freed = advisor.simulate("tiny-llama", "baseline", batch_size=4, seq_len=128, target="cpu")
    kept = advisor.simulate("tiny-llama", KEEP, batch_size=4, seq_len=128, target="cpu")
    assert freed.tensor_peak is not None and kept.tensor_peak is not None
    assert freed.tensor_peak.peak_phase == kept.tensor_peak.peak_phase == "backward"
    assert kept.tensor_peak.peak_bytes - freed.tensor_peak.peak_bytes == grads
    assert freed.simulation is not None and kept.simulation is not None
    assert kept.simulation.phase_peaks["forward"] - freed.simulation.phase_peaks["forward"] == grads
    accum = advisor.simulate("tiny-llama", "accum(steps=2)", batch_size=4, seq_len=128, target="cpu")
    accum_kept = advisor.simulate(
        "tiny-llama", "accum(steps=2)+" + KEEP, batch_size=4, seq_len=128, target="cpu"
    )
    assert accum.tensor_peak is not None and accum_kept.tensor_peak is not None
    assert accum_kept.tensor_peak.peak_bytes == accum.tensor_peak.peak_bytes


def test_the_estimate_counts_the_gradients_from_the_start() -> None:
    freed = advisor.estimate_peak("tiny-llama", parse_plan("sgd"), batch_size=4, seq_len=128, target="cpu")
    kept = advisor.estimate_peak(
        "tiny-llama", parse_plan("sgd+" + KEEP), batch_size=4, seq_len=128, target="cpu"
    )
    assert kept.peak_bytes - freed.peak_bytes == _gradient_bytes("tiny-llama")


@pytest.mark.slow  # ~5 s: two replays of an 8-layer model
def test_the_repeat_extrapolation_stays_exact() -> None:
    from tests.small_models import bert

    source = bert(8, "BertForSequenceClassification")
    plan = "optim-impl(kind=loop)+" + KEEP
    fast = simulate(source, plan, 1, 16, target="cuda")
    full = simulate(source, plan, 1, 16, target="cuda", extrapolate=False)
    assert fast.ok and full.ok, (fast.reason, full.reason)
    assert fast.simulation is not None and full.simulation is not None
    assert fast.simulation.repeats is not None and fast.simulation.repeats.extrapolated
    assert fast.tensor_peak == full.tensor_peak
    assert fast.simulation.phase_peaks == full.simulation.phase_peaks


def test_label_and_default() -> None:
    assert parse_plan(KEEP).name == "zero-grad(set_to_none=False)"
    assert parse_plan("zero(stage=2)+" + KEEP).conflict() == "zero-grad conflicts with zero"
    assert parse_plan("zero-grad").cuts[0].params() == {}  # torch ≥ 2.0's default: nothing changes
