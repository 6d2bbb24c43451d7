"""FLOPs of a step from the replay, and the estimated step time on a target GPU."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from advisor.catalog.gpus import get_gpu
from advisor.engines.flops import (
    DEFAULT_COMPUTE_EFFICIENCY,
    EFFICIENCY_SOURCES,
    calibrate_compute_efficiency,
    estimate_for_gpu,
    estimate_step_time,
    peak_flops_by_dtype,
    step_cost_of,
)
from advisor.engines.simulate import simulate
from advisor.models import resolve_model
from advisor.plans import program_builder
from advisor.plans.cuts import parse_plan
from profilers.records import Provenance
from profilers.simulate import StepCost
from profilers.trial import train_step

pytestmark = pytest.mark.usefixtures("fast_simulations")


def _flops(plan: str, batch: int = 2, seq: int = 32) -> int:
    result = simulate("tiny-llama", parse_plan(plan), batch, seq, target="cpu", fake_device="cpu")
    cost = step_cost_of(result)
    assert cost is not None and cost.provenance is Provenance.SIMULATED
    return cost.total_flops


def test_simulated_flops_equal_torch_flop_counter_on_a_real_step() -> None:
    plan = parse_plan("eager-attn")  # attention as matmuls, which FlopCounterMode counts too
    prog = program_builder(plan, resolve_model("tiny-llama"), 2, 32)(torch.device("cpu"))
    train_step(prog)
    with FlopCounterMode(display=False) as counter:
        train_step(prog)
    assert _flops("eager-attn") == counter.get_total_flops()


def test_gradient_checkpointing_counts_the_recomputed_forward() -> None:
    base, ckpt = _flops("baseline"), _flops("grad-ckpt")
    assert base < ckpt < 1.5 * base  # forward ≈ a third of a step; recomputed layers only


def test_flops_follow_the_closed_form_6_n_t_for_the_matmuls() -> None:
    # tiny-llama: 2 layers, d=256, ffn 688, 4/2 heads of 64, vocab 4096 (embedding: no FLOPs)
    d, f, layers, vocab, kv = 256, 688, 2, 4096, 128
    matmul_params = layers * (d * d * 2 + d * kv * 2 + 3 * d * f) + d * vocab
    tokens = 2 * 32
    attention = _flops("baseline") - 6 * matmul_params * tokens
    assert 0 < attention < 0.1 * _flops("baseline")  # only the attention scores are left


def _cost(**flops: int) -> StepCost:
    return StepCost(flops_by_dtype=flops, flop_op_bytes=10**9, other_op_bytes=4 * 10**9)


def test_step_time_is_a_roofline_over_counted_flops_and_bytes() -> None:
    est = estimate_step_time(
        _cost(bfloat16=4 * 10**14, float32=10**12),
        flops_per_s={"bfloat16": 10**15, "float32": 5 * 10**13},
        bandwidth_bytes_per_s=2 * 10**12,
        tokens_per_step=8192,
        compute_efficiency=0.5,
        memory_efficiency=1.0,
    )
    assert est.compute_time_s == pytest.approx(0.8 + 0.04)
    assert est.step_time_s == pytest.approx(0.84 + 0.002)  # + elementwise traffic at 2 TB/s
    assert est.bound == "compute" and est.provenance is Provenance.ESTIMATED
    assert est.tokens_per_s == pytest.approx(8192 / 0.842)


def test_memory_bound_when_the_bytes_dominate() -> None:
    est = estimate_step_time(_cost(float32=10**9), flops_per_s=10**14, bandwidth_bytes_per_s=10**11)
    assert est.bound == "memory"


def test_calibration_recovers_the_efficiency_of_a_measured_step() -> None:
    cost = _cost(bfloat16=4 * 10**14)
    rates = {"bfloat16": 10**15}
    truth = estimate_step_time(cost, flops_per_s=rates, bandwidth_bytes_per_s=2e12, compute_efficiency=0.37)
    found = calibrate_compute_efficiency(
        truth.step_time_s, cost, flops_per_s=rates, bandwidth_bytes_per_s=2e12
    )
    assert found == pytest.approx(0.37)


def test_estimate_for_a_catalog_gpu_uses_its_rates_per_dtype() -> None:
    result = simulate("tiny-llama", parse_plan("bf16"), 2, 32, fake_device="cpu")
    h100, t4 = get_gpu("h100"), get_gpu("t4")
    fast, slow = estimate_for_gpu(result, h100), estimate_for_gpu(result, t4)
    assert fast is not None and slow is not None
    assert fast.compute_time_s < slow.compute_time_s
    assert fast.memory_time_s < slow.memory_time_s
    # a 3.5M-parameter model is host-bound on both: its ops cannot be issued faster
    assert fast.bound == slow.bound == "launch"
    assert fast.step_time_s == slow.step_time_s == pytest.approx(fast.launch_time_s)
    assert fast.launch_time_s > 10 * (fast.compute_time_s + fast.memory_time_s)
    assert fast.compute_efficiency == DEFAULT_COMPUTE_EFFICIENCY
    assert fast.tokens_per_step == 64
    assert peak_flops_by_dtype(h100)["bfloat16"] == h100.bf16_tflops * 1e12  # type: ignore[operator]
    assert "calibrate" in EFFICIENCY_SOURCES["compute"]


def test_bad_efficiencies_are_refused() -> None:
    with pytest.raises(ValueError, match="compute_efficiency"):
        estimate_step_time(
            _cost(float32=1), flops_per_s=1e12, bandwidth_bytes_per_s=1e12, compute_efficiency=0
        )
