"""optim-impl: the optimizer step as foreach, a per-parameter loop or the fused kernel."""

from __future__ import annotations

import pytest

import advisor
from advisor.core.errors import PlanError
from advisor.plans import parse_plan
from advisor.plans.build import make_optimizer
from advisor.plans.types import Recipe

PLANS = ("optim-impl(kind=foreach)", "optim-impl(kind=loop)", "optim-impl(kind=fused)")


@pytest.mark.parametrize("plan", PLANS)
def test_simulated_equals_measured_on_cpu_for_each_implementation(plan: str) -> None:
    p = parse_plan(plan)
    simulated = advisor.simulate("tiny-llama", p, batch_size=1, seq_len=16, target="cpu")
    measured = advisor.profile("tiny-llama", plan=p, batch_size=1, seq_len=16, device="cpu", steps=1)
    assert simulated.tensor_peak is not None and measured.tensor_peak is not None
    assert simulated.tensor_peak.peak_bytes == measured.tensor_peak.peak_bytes


def test_foreach_holds_every_tensors_temporary_at_once_and_fused_none() -> None:
    """The optimizer phase's peak above the state: foreach's sqrt(exp_avg_sq) of all trainable
    tensors together, one tensor's in the loop, nothing for the fused kernel."""
    peaks = {}
    for plan in PLANS:
        r = advisor.simulate("tiny-llama", plan, batch_size=1, seq_len=16, target="cuda")
        assert r.simulation is not None
        peaks[plan.split("=")[1][:-1]] = r.simulation.phase_peaks["optimizer"]
    trainable_bytes = advisor.simulate("tiny-llama", "baseline", batch_size=1, seq_len=16).params.trainable_bytes
    assert peaks["foreach"] - peaks["fused"] == trainable_bytes  # one fp32 temporary per element
    assert peaks["fused"] < peaks["loop"] < peaks["foreach"]


def test_the_estimate_follows_the_implementation() -> None:
    for plan in PLANS:
        estimated = advisor.estimate_peak("tiny-llama", parse_plan(plan), batch_size=1, seq_len=16, target="cuda")
        simulated = advisor.simulate("tiny-llama", plan, batch_size=1, seq_len=16, target="cuda")
        assert simulated.simulation is not None
        assert estimated.peak_bytes == simulated.simulation.phase_peaks["optimizer"]


def test_implementations_an_optimizer_lacks_are_plan_errors() -> None:
    recipe = Recipe(batch_size=1, seq_len=1)
    with pytest.raises(PlanError, match="no fused implementation"):
        for cut in sorted(parse_plan("adafactor+optim-impl").cuts, key=lambda c: c.order):
            cut.configure(recipe)
    with pytest.raises(PlanError, match="kind must be one of"):
        parse_plan("optim-impl(kind=turbo)")
    recipe = Recipe(batch_size=1, seq_len=1)
    parse_plan("optim-impl(kind=loop)").cuts[0].configure(recipe)
    import torch

    opt = make_optimizer(recipe, [torch.nn.Parameter(torch.zeros(2))])
    assert opt.param_groups[0]["foreach"] is False and not opt.param_groups[0]["fused"]
