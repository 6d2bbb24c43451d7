"""Shared by the simulator's tests: the same plan measured on this CPU and simulated for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from profilers.records import Provenance, TrialStatus
from profilers.trial import TrialSpec, run_trial


def _measured_and_simulated(model: str, plan_name: str, batch: int = 4, seq: int = 64) -> tuple[Any, Any]:
    """(measured, simulated) results of one plan on the CPU: the exact tracker both times."""
    from advisor.engines.simulate import simulate
    from advisor.models import resolve_model
    from advisor.plans import parse_plan, program_builder

    source = resolve_model(model)
    plan = parse_plan(plan_name)
    spec = TrialSpec(model, plan.name, plan.cut_names, batch, seq, "cpu", warmup_steps=1, timed_steps=0)
    measured = run_trial(spec, program_builder(plan, source, batch, seq))
    simulated = simulate(source, plan, batch, seq, target="cpu", fake_device="cpu", count_cost=False)
    return measured, simulated


@pytest.fixture
def cpu_truth() -> Callable[..., tuple[Any, Any]]:
    """``cpu_truth(model, plan)`` → (measured, simulated) on this CPU."""
    return _measured_and_simulated


def _assert_simulated_as_measured(measured: Any, simulated: Any) -> None:
    """Both ran; the simulated peak is within 0.5% of the measured one, parameter bytes and
    counts are exact."""
    assert measured.status is TrialStatus.OK, measured.reason
    assert simulated.status is TrialStatus.OK, simulated.reason
    meas, sim = measured.tensor_peak, simulated.tensor_peak
    assert sim.provenance is Provenance.SIMULATED
    assert sim.peak_bytes == pytest.approx(meas.peak_bytes, rel=0.005)
    assert sim.breakdown.parameter_bytes == meas.breakdown.parameter_bytes
    assert simulated.params == dataclasses.replace(measured.params, provenance=Provenance.SIMULATED)


@pytest.fixture
def simulated_as_measured() -> Callable[[Any, Any], None]:
    """``simulated_as_measured(measured, simulated)``: the acceptance checks of a stand-in."""
    return _assert_simulated_as_measured
