"""Pruning cuts replayed against the measured CPU step: the pruned shapes simulated exactly, and
unstructured pruning measured as saving nothing."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("fast_simulations")


@pytest.mark.parametrize("plan_name", ["prune", "prune(scope=heads)", "prune(amount=0.5,scope=mlp)+grad-ckpt"])
def test_pruned_plans_simulated_as_measured(plan_name: str, cpu_truth: Any, simulated_as_measured: Any) -> None:
    measured, simulated = cpu_truth("tiny-llama", plan_name)
    simulated_as_measured(measured, simulated)


@pytest.mark.slow
def test_structured_pruning_lowers_the_measured_peak_and_unstructured_does_not(cpu_truth: Any) -> None:
    base, _ = cpu_truth("tiny-llama", "baseline")
    pruned, _ = cpu_truth("tiny-llama", "prune")
    masked, masked_sim = cpu_truth("tiny-llama", "prune-unstructured")
    assert pruned.tensor_peak.peak_bytes < base.tensor_peak.peak_bytes
    assert pruned.params.total < base.params.total
    # torch.nn.utils.prune keeps the dense weight (as weight_orig) and adds a same-shape mask
    assert masked.params.total == base.params.total
    assert masked.tensor_peak.peak_bytes >= base.tensor_peak.peak_bytes
    assert masked_sim.tensor_peak.peak_bytes == masked.tensor_peak.peak_bytes
