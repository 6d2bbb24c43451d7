"""8-bit AdamW on fake tensors: bitsandbytes' state layout, and the replay against measured CPU."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch
from torch import nn

from profilers.records import TrialStatus
from profilers.simulate import FakeWorld, ShadowValues, new_fake_mode
from profilers.simulate.optim8bit import AdamW8bitStandIn, adamw8bit_state_bytes
from profilers.tracker import optimizer_state_tensors

pytestmark = pytest.mark.usefixtures("fast_simulations")

BATCH, SEQ = 4, 64


def _state_bytes(optimizer: torch.optim.Optimizer) -> int:
    seen: dict[int, int] = {}
    for t in optimizer_state_tensors(optimizer):
        storage = t.untyped_storage()
        seen[id(storage)] = int(storage.nbytes())
    return sum(seen.values())


def _one_step(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()


def test_state_is_one_byte_per_moment_plus_block_absmax_and_32_bit_for_small_tensors() -> None:
    world = FakeWorld(new_fake_mode(), torch.device("cpu"), ShadowValues())
    with world.active():
        model = nn.Linear(64, 128)  # weight 8192 elements (8-bit), bias 128 (< 4096: 32-bit)
        opt = AdamW8bitStandIn(model.parameters())
        _one_step(opt, model)
    weight, bias = opt.state[model.weight], opt.state[model.bias]
    assert weight["state1"].dtype == torch.uint8 and weight["state1"].shape == (128, 64)
    assert weight["absmax1"].shape == (32,) and weight["absmax1"].dtype == torch.float32  # 8192 / 256
    assert bias["state1"].dtype == torch.float32 and "absmax1" not in bias
    assert weight["qmap1"] is not weight["qmap2"] and weight["qmap1"].numel() == 256
    # weight: 2 × 8192 B + 2 × 32 × 4 B absmax; bias: 2 × 128 × 4 B; maps: 2 × 256 × 4 B, once
    assert _state_bytes(opt) == 16384 + 256 + 1024 + 2048 == 19712
    assert adamw8bit_state_bytes([8192, 128]) == 19712
    assert weight["step"] == 1


def test_a_block_count_rounds_up() -> None:
    assert adamw8bit_state_bytes([4097]) == 2 * 4097 + 2 * 4 * 17 + 2048
    assert adamw8bit_state_bytes([4095]) == 2 * 4 * 4095  # below min_8bit_size: no maps either


def test_stand_in_state_equals_real_bitsandbytes_state() -> None:
    bnb = pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    real_model = nn.Sequential(nn.Linear(96, 200), nn.Linear(200, 7))
    real = bnb.optim.AdamW8bit(real_model.parameters())
    _one_step(real, real_model)
    world = FakeWorld(new_fake_mode(), torch.device("cpu"), ShadowValues())
    with world.active():
        fake_model = nn.Sequential(nn.Linear(96, 200), nn.Linear(200, 7))
        stand_in = AdamW8bitStandIn(fake_model.parameters())
        _one_step(stand_in, fake_model)
    for p_real, p_fake in zip(real_model.parameters(), fake_model.parameters(), strict=True):
        a, b = real.state[p_real], stand_in.state[p_fake]
        assert sorted(a) == sorted(b)
        for key, value in a.items():
            if isinstance(value, torch.Tensor):
                assert (value.shape, value.dtype) == (b[key].shape, b[key].dtype), key
    assert _state_bytes(real) == _state_bytes(stand_in)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-llama", "tiny-gpt2", "tiny-bert"])
@pytest.mark.parametrize("plan_name", ["adamw8bit", "lora+adamw8bit", "paged-adamw8bit"])
def test_simulated_8bit_adamw_peak_equals_the_measured_cpu_peak(
    model: str, plan_name: str, cpu_truth: Any, simulated_as_measured: Any
) -> None:
    pytest.importorskip("bitsandbytes")
    measured, simulated = cpu_truth(model, plan_name)
    simulated_as_measured(measured, simulated)
    meas, sim = measured.tensor_peak, simulated.tensor_peak  # type: ignore[attr-defined]
    assert sim.breakdown.optimizer_state_bytes == meas.breakdown.optimizer_state_bytes


def test_without_bitsandbytes_it_simulates_and_measuring_asks_for_it(monkeypatch: pytest.MonkeyPatch, cpu_truth: Any) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes → ImportError
    measured, simulated = cpu_truth("tiny-llama", "adamw8bit")
    assert measured.status is TrialStatus.UNSUPPORTED  # type: ignore[attr-defined]
    assert "pip install bitsandbytes" in (measured.reason or "")  # type: ignore[attr-defined]
    assert simulated.status is TrialStatus.OK, simulated.reason  # type: ignore[attr-defined]
    # what real bitsandbytes 0.50.2 holds for tiny-llama, measured on CPU (tests above)
    peak = simulated.tensor_peak  # type: ignore[attr-defined]
    assert peak.breakdown.optimizer_state_bytes == 7217408


def test_paged_state_is_host_memory_on_a_cuda_target_and_leaves_the_device_peak() -> None:
    from advisor.engines.simulate import simulate
    from advisor.models import resolve_model

    plain = simulate("tiny-llama", "adamw8bit", BATCH, SEQ, target="cuda", count_cost=False)
    paged = simulate("tiny-llama", "paged-adamw8bit", BATCH, SEQ, target="cuda", count_cost=False)
    assert plain.ok and paged.ok, (plain.reason, paged.reason)
    model = resolve_model("tiny-llama").build(torch.device("meta"))
    # get_state_buffer pages state1 and state2 (uint8 here) of tensors with ≥ 100 000 elements
    paged_bytes = sum(2 * p.numel() for p in model.parameters() if p.numel() >= 100_000)
    assert paged_bytes > 0
    assert paged.simulation.host_peak_bytes == paged_bytes  # type: ignore[union-attr]
    assert plain.tensor_peak.peak_bytes - paged.tensor_peak.peak_bytes == paged_bytes  # type: ignore[union-attr]
    cpu = simulate("tiny-llama", "paged-adamw8bit", BATCH, SEQ, target="cpu", count_cost=False)
    assert cpu.simulation.host_peak_bytes is None  # type: ignore[union-attr]  # CPU: not paged
