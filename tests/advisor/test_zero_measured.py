"""A real DeepSpeed ZeRO run on 2 CPU ranks (gloo), measured, against the simulated ZeRO rank."""

from __future__ import annotations

import pytest
import torch

from advisor.core.errors import AdvisorError
from profilers.records import Provenance, TrialResult

pytest.importorskip("deepspeed")

N = 2
PLANS = ["zero(stage=1)+bf16", "zero(stage=2)+bf16", "zero(stage=3)+bf16"]


@pytest.fixture(scope="module")
def runs() -> dict[str, TrialResult]:
    from advisor.engines.distributed import measure_distributed_plans

    results = measure_distributed_plans("tiny-llama", PLANS, 2, 32, nproc=N, device="cpu", timeout_s=600)
    return dict(zip(PLANS, results, strict=True))


def _parameters() -> int:
    """tiny-llama's parameter count, from the real model (not the code under test)."""
    from advisor.models import resolve_model

    model = resolve_model("tiny-llama").build(torch.device("cpu"))
    return sum(p.numel() for p in model.parameters())


def _simulated_peak(plan: str) -> int:
    from advisor import api

    sim = api.simulate("tiny-llama", plan, batch_size=2, seq_len=32, target="cpu", gpus=N)
    assert sim.tensor_peak is not None
    return sim.tensor_peak.peak_bytes


@pytest.mark.slow
def test_zero2_measured_states_and_peak_match_the_simulated_rank(runs: dict[str, TrialResult]) -> None:
    measured = runs["zero(stage=2)+bf16"]
    assert measured.ok, measured.reason
    assert measured.tensor_peak is not None and measured.distributed is not None
    assert measured.tensor_peak.provenance is Provenance.MEASURED
    assert measured.distributed.strategy == "zero-2" and len(measured.distributed.rank_peak_bytes) == N
    p = _parameters()
    assert p % N == 0
    # after the step DeepSpeed keeps, per rank: the bf16 weights whole (2 B), the fp32 master and
    # Adam's two moments of its partition (12 B / N) and Adam's fp32 step counter (4 B); the
    # gradients are freed
    roles = measured.extra["zero_model_state_roles"]
    assert roles["parameters"] == 2 * p
    assert roles["optimizer"] == 12 * p // N + 4
    assert roles["gradients"] == 0
    # at the peak (end of backward): the 500M-element bf16 reduce bucket and the fp32 gradient
    # partition DeepSpeed reduces into (4 B / N: no 16-bit gradient partition), with a few
    # DeepSpeed scalars and, in some runs, bf16 gradients of the last bucket not yet reduced
    # (gloo's timing moves the peak by a few MB between runs)
    peak = measured.tensor_peak.breakdown
    assert peak.communication_buffer_bytes >= 500_000_000 * 2
    assert 4 * p // N <= peak.gradient_bytes + peak.activation_bytes <= 4 * p // N + 2 * p + 64
    # the simulated rank within 3% of the measured peak
    mp, sp = measured.tensor_peak.peak_bytes, _simulated_peak("zero(stage=2)+bf16")
    assert abs(sp - mp) <= 0.03 * mp, (sp, mp)


@pytest.mark.slow
def test_zero1_measured_against_the_simulated_rank(runs: dict[str, TrialResult]) -> None:
    s1 = runs["zero(stage=1)+bf16"]
    assert s1.ok and s1.tensor_peak is not None, s1.reason
    # stage 1 stages gradients in a bf16 bucket too (500M × 2 B), not an fp32 one
    assert 500_000_000 * 2 <= s1.tensor_peak.breakdown.communication_buffer_bytes < 500_000_000 * 4
    mp, sp = s1.tensor_peak.peak_bytes, _simulated_peak("zero(stage=1)+bf16")
    assert abs(sp - mp) <= 0.03 * mp, (sp, mp)


def test_profile_of_a_zero_plan_with_offload_is_one_clear_error() -> None:
    from advisor import api

    with pytest.raises(AdvisorError, match="with offload is not supported"):
        api.profile("tiny-llama", plan="zero(stage=2,offload_optimizer=cpu)", gpus=2)
    with pytest.raises(AdvisorError, match="with offload is not supported"):
        api.profile("tiny-llama", plan="zero(stage=3,offload_params=cpu)", gpus=2)


def _shapes() -> list[int]:
    """tiny-llama's parameter sizes, from the real model (not the code under test)."""
    from advisor.models import resolve_model

    model = resolve_model("tiny-llama").build(torch.device("cpu"))
    return [p.numel() for p in model.parameters()]


@pytest.mark.slow
def test_zero3_measured_states_after_the_step_equal_deepspeeds_layout(runs: dict[str, TrialResult]) -> None:
    measured = runs["zero(stage=3)+bf16"]
    assert measured.ok, measured.reason
    assert measured.tensor_peak is not None and measured.distributed is not None
    assert measured.distributed.strategy == "zero-3" and len(measured.distributed.rank_peak_bytes) == N
    sizes = _shapes()
    # DeepSpeed 0.19.8's documented rules: every parameter partitioned on its own, padded to a
    # multiple of N (partition_parameters.py _aligned_size); those of ≤ 1e5 elements
    # (stage3_param_persistence_threshold) also kept whole on every rank after the step
    # (_post_step all-gathers them); a 16-bit gradient partition and the fp32 master and
    # Adam's two moments for each partition, with Adam's fp32 step counter (one flat sub-group);
    # the reduce bucket (reduce_bucket_size = 5e8 elements, bf16) kept for reuse, and the 1-byte
    # bool inf_or_nan_tracker
    part = sum(-(-n // N) for n in sizes)
    persistent = sum(n for n in sizes if n <= 100_000)
    assert 0 < persistent < sum(sizes)  # tiny-llama has both kinds (norms and q/k/v/o ≤ 1e5)
    roles = measured.extra["zero_model_state_roles"]
    assert roles["parameters"] == 2 * part + 2 * persistent
    assert roles["gradients"] == 2 * part
    assert roles["optimizer"] == 12 * part + 4
    assert roles["deepspeed buffers"] == 500_000_000 * 2 + 1
    # the modelled layout (the code under test) gives the same bytes by role
    from advisor.engines.zero import zero_layout_for
    from advisor.models import resolve_model
    from advisor.plans import parse_plan

    layout, _ = zero_layout_for(parse_plan("zero(stage=3)+bf16"), resolve_model("tiny-llama"), 2, 32, N)
    assert layout.padding_bytes == 0  # every tiny-llama parameter has an even size
    assert layout.parameter_bytes + layout.persistent_parameter_bytes == roles["parameters"]
    assert layout.gradient_bytes - layout.module_gradient_bytes == roles["gradients"]
    assert layout.master_bytes + layout.optimizer_state_bytes == roles["optimizer"] - 4
    assert layout.communication_buffer_bytes == roles["deepspeed buffers"] - 1
    # the step's peak: in the optimizer step (persistent parameters released, one sub-group's
    # fp32 gradient and AdamW's two fp32 temporaries): the simulated rank within 0.1%
    assert measured.tensor_peak.peak_phase == "optimizer"
    mp, sp = measured.tensor_peak.peak_bytes, _simulated_peak("zero(stage=3)+bf16")
    assert abs(sp - mp) <= 0.001 * mp, (sp, mp)
    # the backward's peak is the gradients' one reduce-scatter after backward (every gradient
    # fits the bucket): a torch.cat copy of the bucket's gradients and gloo's copy of its input,
    # 2 × 2 B per parameter, beside the states and the last module (the embedding) still gathered
    from advisor import api

    sim = api.simulate("tiny-llama", "zero(stage=3)+bf16", batch_size=2, seq_len=32, target="cpu", gpus=N)
    assert sim.distributed is not None
    backward = measured.extra["zero_phase_peaks"]["backward"]
    assert abs(sim.distributed.layout["backward peak"] - backward) <= 64, (sim.distributed.layout, backward)
