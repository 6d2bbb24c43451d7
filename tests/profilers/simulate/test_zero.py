"""DeepSpeed ZeRO per-rank layout against DeepSpeed's own estimators (the real functions)."""

from __future__ import annotations

import pytest
from torch import nn

from profilers.simulate.zero import ZERO_DEFAULTS, ZeroConfig, largest_layer_params, params_of, zero_layout

stage_1_and_2 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
stage3 = pytest.importorskip("deepspeed.runtime.zero.stage3")


def _model() -> nn.Sequential:
    # 4 linears: 64·256+256, 256·256+256, 256·64+64, 64·64 (no bias): P = 102,464 = 2^6 · 1601
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.Linear(256, 64), nn.Linear(64, 64, bias=False)
    )


def _ds_gpu_bytes(stage: int, model: nn.Module, n: int) -> int:
    """DeepSpeed's per-GPU model-state estimate (no offload), from the real model."""
    if stage in (1, 2):
        total = stage_1_and_2.model_to_params(model)
        return int(stage_1_and_2.estimate_zero2_model_states_mem_needs(total, n, cpu_offload=False)[1])
    total, largest = stage3.model_to_params(model)
    _, gpu, _ = stage3.estimate_zero3_model_states_mem_needs(
        total, largest, n, cpu_offload=False, cpu_offload_params=False
    )
    return int(gpu)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_full_fine_tuning_matches_deepspeed_estimators(n: int) -> None:
    model = _model()
    p = sum(x.numel() for x in model.parameters())
    assert p % 16 == 0  # every N here divides P: no rounding in either figure
    params = params_of(model, element_bytes=2)
    stage2 = zero_layout(params, ZeroConfig(stage=2, world_size=n))
    # stage 2 with bf16 weights: no 16-bit gradient partition (a real DeepSpeed 0.19.8 run
    # reduces into the fp32 partition: tests/advisor/test_zero_measured.py), 2·P/N below
    assert _ds_gpu_bytes(2, model, n) - stage2.model_state_bytes == 2 * p // n
    # with fp32 weights the gradient partition is there: the estimator's 18/N, in 4-byte params
    fp32 = zero_layout(params_of(model, element_bytes=4), ZeroConfig(stage=2, world_size=n))
    assert fp32.model_state_bytes == 4 * p + 20 * p // n
    # stage 1 keeps its 16-bit gradients whole: above the (stage-2) estimator by 2·P·(1 − 1/N)
    stage1 = zero_layout(params, ZeroConfig(stage=1, world_size=n))
    assert stage1.model_state_bytes - _ds_gpu_bytes(1, model, n) == 2 * p - 2 * p // n
    # stage 3: 16-bit parameter + gradient partitions and 16 B of fp32 state per parameter (the
    # fp32 gradient partition: one sub-group, the whole partition here): 20/N where the
    # estimator counts 18/N. With no persistent parameter and no prefetch, only the current
    # module is gathered with its gradients: the estimator's 4 × largest_layer
    bare = ZeroConfig(stage=3, world_size=n, stage3_param_persistence_threshold=0, stage3_prefetch_bucket_size=0)
    stage3_ = zero_layout(params, bare)
    largest = stage3.model_to_params(model)[1]
    assert stage3_.model_state_bytes - _ds_gpu_bytes(3, model, n) == 2 * p // n
    assert stage3_.gathered_parameter_bytes == 2 * largest and stage3_.persistent_parameter_bytes == 0
    # DeepSpeed's defaults: every parameter here has ≤ 1e5 elements (the largest, 65,536), so
    # all stay whole on every rank (mark_persistent_parameters) and none is gathered
    default = zero_layout(params, ZeroConfig(stage=3, world_size=n))
    assert default.persistent_parameter_bytes == 2 * p and default.gathered_parameter_bytes == 0
    assert default.model_state_bytes - _ds_gpu_bytes(3, model, n) == 2 * p // n + 2 * p - 2 * largest


@pytest.mark.parametrize("n", [2, 4])
def test_lora_differs_from_estimators_by_frozen_optimizer_and_gradient_bytes(n: int) -> None:
    model = _model()
    for layer in (model[0], model[2], model[4]):  # frozen base layers, as LoRA leaves them
        layer.requires_grad_(False)
    p = sum(x.numel() for x in model.parameters())
    frozen = sum(x.numel() for x in model.parameters() if not x.requires_grad)
    trainable = p - frozen
    assert frozen % n == 0 and trainable % n == 0
    params = params_of(model, element_bytes=2)
    # stage 2: the estimator gives every parameter 16-bit gradient + fp32 gradient, master and
    # Adam partitions (18 B / N); DeepSpeed allocates the fp32 ones (16 B / N) for trainable
    # parameters only, and no 16-bit gradient partition under bf16
    stage2 = zero_layout(params, ZeroConfig(stage=2, world_size=n))
    assert _ds_gpu_bytes(2, model, n) - stage2.model_state_bytes == 18 * frozen // n + 2 * trainable // n
    # stage 3: 16 B / N of fp32 state per frozen parameter, and the gradient of the frozen part of
    # the gathered largest layer (model[2]: 256·256 + 256, frozen); less the 16-bit gradient
    # partition the estimator leaves out (2 B / N per trainable parameter, as for full FT)
    big = model[2]
    assert isinstance(big, nn.Linear)
    largest = big.weight.numel() + big.bias.numel()
    assert largest_layer_params(params) == largest == stage3.model_to_params(model)[1]
    bare = ZeroConfig(stage=3, world_size=n, stage3_param_persistence_threshold=0, stage3_prefetch_bucket_size=0)
    s3 = zero_layout(params, bare)
    assert _ds_gpu_bytes(3, model, n) - s3.model_state_bytes == 16 * frozen // n + 2 * largest - 2 * trainable // n


def test_padding_follows_deepspeed_alignment() -> None:
    # 1001 trainable elements over 4 ranks: the flat buffer is padded to a multiple of 2·4 = 8
    # (stage_1_and_2.py: nccl_start_alignment_factor × world size) → 1008, 7 padding elements
    model = nn.Linear(1000, 1)
    params = params_of(model, element_bytes=2)
    layout = zero_layout(params, ZeroConfig(stage=2, world_size=4))
    flat_tail = 7 * 2
    partition_tail = 7 * (4 + 8 + 4) // 4  # this rank's share in its fp32 partitions (no 16-bit grad)
    assert layout.padding_bytes == flat_tail + partition_tail
    # stage 3 pads each parameter to a multiple of N: the weight (1000) divides, the bias (1) → 4
    s3 = zero_layout(params, ZeroConfig(stage=3, world_size=4))
    per_rank_elements = 250 + 1
    assert s3.parameter_bytes + s3.padding_bytes >= per_rank_elements * 2


def test_buckets_and_offload() -> None:
    model = _model()
    params = params_of(model, element_bytes=2)
    p = sum(x.numel() for x in model.parameters())
    s2 = zero_layout(params, ZeroConfig(stage=2, world_size=4))
    # stages 1 and 2 stage gradients in one reduce bucket in the weights' dtype (16-bit here)
    assert s2.communication_buffer_bytes == ZERO_DEFAULTS["reduce_bucket_size"] * 2
    s1 = zero_layout(params, ZeroConfig(stage=1, world_size=4))
    assert s1.communication_buffer_bytes == ZERO_DEFAULTS["reduce_bucket_size"] * 2
    s3 = zero_layout(params, ZeroConfig(stage=3, world_size=4))
    # stage 3 allocates the reduce bucket only: the prefetch size is a limit on parameters
    # gathered ahead (partitioned_param_coordinator.py fetch_sub_module), not a buffer
    assert s3.communication_buffer_bytes == ZERO_DEFAULTS["reduce_bucket_size"] * 2
    assert dict(s3.buckets)["stage3_max_live_parameters"] == 1_000_000_000
    # the optimizer partition moves to the host: master, Adam state and fp32 gradients
    off = zero_layout(params, ZeroConfig(stage=2, world_size=4, offload_optimizer="cpu"))
    assert off.master_bytes == off.optimizer_state_bytes == off.fp32_gradient_bytes == 0
    assert off.host_bytes == 16 * p // 4
    assert s2.model_state_bytes - off.model_state_bytes == 16 * p // 4
    with pytest.raises(ValueError, match="stage 3"):
        ZeroConfig(stage=2, world_size=4, offload_params="cpu")


def test_stage3_persistence_and_prefetch_window() -> None:
    # 3 linears of 300·400 = 120,000 weights (> 1e5: released after use) and 400 / 300 biases
    # (≤ 1e5: kept whole on every rank, parameter_offload.py mark_persistent_parameters)
    model = nn.Sequential(nn.Linear(400, 300), nn.Linear(300, 400), nn.Linear(400, 300))
    params = params_of(model, element_bytes=2)
    biases = 300 + 400 + 300
    s3 = zero_layout(params, ZeroConfig(stage=3, world_size=2))
    assert s3.persistent_parameter_bytes == 2 * biases
    # default prefetch (5e7 elements ahead) covers every released weight
    assert s3.gathered_parameter_bytes == 2 * 3 * 120_000
    # a 1e5-element window: the current module's weight and the next one (the coordinator stops
    # once numel_prefetching reaches the window, after the parameter that crosses it)
    narrow = zero_layout(params, ZeroConfig(stage=3, world_size=2, stage3_prefetch_bucket_size=100_000))
    assert narrow.gathered_parameter_bytes == 2 * (120_000 + 120_000)
    none = zero_layout(params, ZeroConfig(stage=3, world_size=2, stage3_prefetch_bucket_size=0))
    assert none.gathered_parameter_bytes == 2 * 120_000
    # a model-wide persistence cap keeps only the first biases within it, in order
    capped = zero_layout(params, ZeroConfig(stage=3, world_size=2, stage3_model_persistence_threshold=700))
    assert capped.persistent_parameter_bytes == 2 * (300 + 400)
    # the step: one sub-group's fp32 gradient and AdamW's two fp32 temporaries (single-tensor)
    t_part = sum(-(-p.numel // 2) for p in params)
    assert s3.fp32_gradient_bytes == 4 * t_part and s3.step_temporary_bytes == 8 * t_part
