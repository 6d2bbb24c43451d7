"""Activation offload in a replay: saved tensors moved by save_on_cpu count as host memory."""

from __future__ import annotations

import json

import pytest
import torch

from advisor.engines.simulate import simulate
from advisor.models import resolve_model
from advisor.plans import build_program, parse_plan
from profilers.records import TrialResult, TrialStatus
from profilers.simulate.offload import host_allocations, offload_to_host, replaying_offload
from profilers.simulate.phases import PhaseTracker
from profilers.simulate.target import cuda_attention_choice


def _saved_by_a_real_forward(model_name: str, plan: str, batch: int, seq: int) -> tuple[int, int]:
    """(bytes of the device storages only the graph keeps — what offload frees from the device
    at the end of the forward —, bytes of the host copies ``save_on_cpu(pin_memory=True)``
    makes of every saved tensor that is not on a weight's storage: one contiguous copy per
    save), from a real fp32 forward of the plan's model on this CPU, counted with
    saved_tensors_hooks."""
    torch.manual_seed(0)
    prog = build_program(parse_plan(plan), resolve_model(model_name), batch, seq, torch.device("cpu"))
    model, data = prog.model.train(), prog.batch
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    weights |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    inputs = data.values() if isinstance(data, dict) else [data]
    resident = weights | {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, torch.Tensor)}
    storages: dict[int, int] = {}
    packed = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal packed
        s = t.untyped_storage()
        if s.data_ptr() in weights:  # saved weights stay on the device, as torchtune does
            return t
        packed += t.numel() * t.element_size()  # torch.empty(t.size()) + copy_
        if s.data_ptr() not in resident:
            storages[s.data_ptr()] = s.nbytes()
        return t

    # dropout as the replay runs it for a CUDA target (a fused kernel's 1-byte mask)
    with cuda_attention_choice(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = prog.loss_fn(model, data)
    assert loss.requires_grad
    return sum(storages.values()), packed


@pytest.mark.parametrize("plan", ["baseline", "lora"])
def test_offload_moves_exactly_the_saved_activations_off_the_device(plan: str) -> None:
    batch, seq = 2, 32
    with_offload = "offload" if plan == "baseline" else f"{plan}+offload"
    plain = simulate("tiny-llama", plan, batch, seq, target="cuda", count_cost=False)
    off = simulate("tiny-llama", with_offload, batch, seq, target="cuda", count_cost=False)
    assert plain.ok and off.ok, (plain.reason, off.reason)
    assert plain.simulation is not None and off.simulation is not None
    freed, host = _saved_by_a_real_forward("tiny-llama", plan, batch, seq)
    assert freed > 0
    # end of the forward (live device bytes when backward begins): lower by exactly the saved
    # activations, which now live in host memory
    start = "backward"
    assert plain.simulation.phase_start_bytes[start] - off.simulation.phase_start_bytes[start] == freed
    # the host peak holds one copy of every saved activation (once per save), no weights
    assert plain.simulation.host_peak_bytes is None
    assert off.simulation.host_peak_bytes == host
    # what is resident between steps does not move
    assert plain.tensor_peak is not None and off.tensor_peak is not None
    assert off.tensor_peak.resident_before_step_bytes == plain.tensor_peak.resident_before_step_bytes


def test_offload_lowers_the_step_peak_by_exactly_the_saved_activations() -> None:
    # a step whose peak falls in the forward's last op (a frozen wide projection, which saves
    # only its weight), while every saved activation waits for backward: with offload they are
    # on the host then, and no unpacked copy is back on the device yet
    model, batch, seq = "tests/fixtures/offload_mlp.py:build", 2, 32
    plain = simulate(model, "sgd", batch, seq, target="cuda", count_cost=False)
    off = simulate(model, "sgd+offload", batch, seq, target="cuda", count_cost=False)
    assert plain.ok and off.ok and plain.simulation and off.simulation, (plain.reason, off.reason)
    assert plain.tensor_peak is not None and off.tensor_peak is not None
    assert plain.tensor_peak.peak_phase == off.tensor_peak.peak_phase == "forward"
    freed, host = _saved_by_a_real_forward(model, "sgd", batch, seq)
    # fc1 saves x (the batch, which stays), each gelu its input and fc2 its input: 3 fp32
    # activations of 2×32×64 that only the graph keeps; the host copies x (2×32×32) too
    assert freed == 3 * batch * seq * 64 * 4 and host == freed + batch * seq * 32 * 4
    assert plain.tensor_peak.peak_bytes - off.tensor_peak.peak_bytes == freed
    assert off.simulation.host_peak_bytes == host


def test_offload_lowers_the_device_peak_of_an_activation_heavy_step() -> None:
    # full fine-tuning at a longer sequence: activations dominate the forward's peak
    plain = simulate("tiny-llama", "baseline", 4, 256, target="cuda", count_cost=False)
    off = simulate("tiny-llama", "offload", 4, 256, target="cuda", count_cost=False)
    assert plain.ok and off.ok and plain.simulation and off.simulation
    assert off.simulation.phase_peaks["forward"] < plain.simulation.phase_peaks["forward"]
    assert off.simulation.host_peak_bytes is not None and off.simulation.host_peak_bytes > 0


def test_offload_host_peak_round_trips_and_old_results_load_without_it() -> None:
    off = simulate("tiny-llama", "offload", 1, 16, target="cuda", count_cost=False)
    again = TrialResult.from_dict(json.loads(json.dumps(off.to_dict())))
    assert again.simulation is not None and off.simulation is not None
    assert again.simulation.host_peak_bytes == off.simulation.host_peak_bytes > 0
    doc = off.to_dict()
    del doc["simulation"]["host_peak_bytes"]  # as an earlier version wrote it
    assert TrialResult.from_dict(doc).simulation.host_peak_bytes is None  # type: ignore[union-attr]


def test_offload_for_a_cpu_target_is_unsupported_with_the_reason() -> None:
    r = simulate("tiny-llama", "offload", 1, 16, target="cpu", count_cost=False)
    assert r.status is TrialStatus.UNSUPPORTED
    assert r.reason is not None and "host memory already" in r.reason


def test_tracker_keeps_host_storages_apart() -> None:
    tracker = PhaseTracker("cpu")
    with tracker:
        a = torch.empty(100, dtype=torch.float32)  # 400 B on the device
        with host_allocations():
            h = torch.empty(50, dtype=torch.float32)  # 200 B on the host
            h.copy_(a[:50])  # an op on a known storage stays where it is
        peak_host = tracker.host_peak_bytes
        del h
    assert tracker.peak_bytes == 400 and peak_host == 200
    assert tracker.host_live_bytes == 0
    tracker.close()
    del a


def test_offload_copies_saved_activations_to_the_host_and_leaves_saved_weights() -> None:
    weight = torch.randn(8, 16, requires_grad=True)
    x = torch.randn(4, 16, requires_grad=True)
    tracker = PhaseTracker("cpu")
    with tracker, replaying_offload(), offload_to_host(keep=[weight]):
        y = torch.tanh(x @ weight.t())  # mm saves x and weight.t() (a view of the weight); tanh y
        host = tracker.host_peak_bytes
    assert host == x.numel() * 4 + y.numel() * 4  # x and tanh's output; the weight (512 B) stays
    y.sum().backward()
    assert x.grad is not None and weight.grad is not None
    tracker.close()
