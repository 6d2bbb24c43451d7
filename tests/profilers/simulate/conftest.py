"""Shared by the simulator's tests: the same plan measured on this CPU and simulated for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

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
