"""The target's overheads on top of the tensor peak: constants with sources, parts that add up."""

from __future__ import annotations

import dataclasses

import pytest

from advisor.catalog.gpus import get_gpu
from advisor.engines.overheads import (
    CONSTANTS,
    PredictedNeed,
    allocator_model,
    cublas_workspace_bytes,
    observed_overheads,
    predict_gpu_need,
)
from advisor.engines.simulate import simulate
from advisor.plans.cuts import parse_plan
from profilers.records import CudaMemory, Provenance
from profilers.simulate import CachingAllocatorModel

MIB = 2**20


pytestmark = pytest.mark.usefixtures("fast_simulations")


def test_every_constant_has_a_value_a_unit_and_a_source() -> None:
    for name, constant in CONSTANTS.items():
        assert constant.value > 0, name
        assert constant.unit and len(constant.source) > 20, name


def test_the_allocator_model_is_built_from_the_constants_and_matches_pytorch() -> None:
    assert allocator_model() == CachingAllocatorModel()


def test_cublas_workspace_by_architecture() -> None:
    assert cublas_workspace_bytes("Hopper") == 32 * MIB
    assert cublas_workspace_bytes("Blackwell") == 32 * MIB
    assert cublas_workspace_bytes("Ampere") == 4096 * 1024 * 2 + 16 * 1024 * 8
    assert cublas_workspace_bytes("CDNA3", "amd") == 128 * MIB


def test_simulated_need_adds_up_and_says_where_each_part_comes_from() -> None:
    result = simulate("tiny-llama", parse_plan("bf16"), 4, 128, fake_device="cpu")
    need = predict_gpu_need(result, get_gpu("a100"))
    assert result.tensor_peak is not None
    replay = result.simulation.cuda_allocator  # type: ignore[union-attr]
    assert need.tensor_peak_bytes == result.tensor_peak.peak_bytes
    assert replay is not None and need.reserved_bytes == replay.max_reserved_bytes  # the replayed allocator
    assert need.allocator_source is Provenance.SIMULATED
    assert need.tensor_peak_source is Provenance.SIMULATED
    assert need.workspace_bytes == 2 * (4096 * 1024 * 2 + 16 * 1024 * 8)  # two handles, Ampere
    assert need.cuda_context_bytes == CONSTANTS["cuda_context_bytes"].value
    assert need.total_bytes == (
        need.tensor_peak_bytes
        + need.allocator_overhead_bytes
        + need.cuda_context_bytes
        + need.workspace_bytes
        + need.attention_workspace_bytes
    )
    assert need.total_bytes == sum(p["value"] for p in need.to_dict()["parts"])
    assert PredictedNeed.from_dict(need.to_dict()) == need
    assert need.provenance is Provenance.ESTIMATED
    assert need.fits(get_gpu("a100").memory_bytes) and not need.fits(need.total_bytes - 1)


def test_fused_attention_scratch_is_added_when_the_peak_is_in_the_backward() -> None:
    result = simulate("tiny-llama", parse_plan("lora"), 8, 256, fake_device="cpu")
    assert result.tensor_peak is not None and result.tensor_peak.peak_phase == "backward"
    need = predict_gpu_need(result, architecture="Hopper")
    # batch 8 × 256 positions × 4 heads × 64 dims, float32
    assert need.attention_workspace_bytes == 8 * 256 * 4 * 64 * 4


def test_measured_results_use_their_own_allocator_figures_and_cpu_ones_a_fraction() -> None:
    result = simulate("tiny-llama", None, 1, 16, target="cpu", fake_device="cpu")
    assert result.simulation is not None and result.simulation.cuda_allocator is None
    assert result.tensor_peak is not None
    peak = result.tensor_peak.peak_bytes
    fallback = predict_gpu_need(result)
    assert fallback.allocator_source is Provenance.ESTIMATED
    assert fallback.allocator_overhead_bytes == int(peak * CONSTANTS["allocator_fallback_fraction"].value)
    cuda = CudaMemory("H100", peak + 100, peak + 4 * MIB, peak, 80 * 2**30)
    measured = dataclasses.replace(result, cuda=cuda, extra={})
    need = predict_gpu_need(measured, context_bytes=500 * MIB)
    assert need.allocator_source is Provenance.MEASURED
    assert need.allocator_overhead_bytes == 4 * MIB and need.cuda_context_bytes == 500 * MIB
    assert observed_overheads(measured) == {
        "tensor_peak_bytes": peak,
        "max_allocated_bytes": peak + 100,
        "max_reserved_bytes": peak + 4 * MIB,
        "allocator_overhead_bytes": 4 * MIB,
    }
    assert observed_overheads(result) is None


def test_a_result_without_a_peak_has_no_need() -> None:
    result = simulate("tiny-llama", parse_plan("freeze-layers(k=99)"), 1, 16, fake_device="cpu")  # fails
    with pytest.raises(ValueError, match="no tensor peak"):
        predict_gpu_need(result)
