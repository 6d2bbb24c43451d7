"""The trial records: JSON round-trips, and results saved by earlier versions still load."""

from __future__ import annotations

import dataclasses
import json

import torch
from torch import nn

from profilers.records import (
    AllocatorPeak,
    Provenance,
    SimulationRecord,
    StepCost,
    TrialResult,
    TrialStatus,
)
from profilers.simulate import FakeWorld, simulate_trial
from profilers.trial import StepProgram, TrialSpec

# a simulated result as the previous version saved it (TrialResult.to_dict, JSON, sorted keys):
# the simulation's figures in an untyped ``extra["simulation"]``
OLD_SIMULATED_RESULT = json.loads("""
{"accumulation_steps": 1, "backends": [{"available": true, "name": "fake-tensors", "reason": null},
 {"available": false, "name": "fake-cuda", "reason": "this torch build (2.13.0+cpu) has no CUDA, so
 the fake device is cpu"}], "batch_size": 2, "cuda": null, "cuts": [], "device": "fake-cpu",
 "extra": {"autocast": "bfloat16", "simulation": {"cuda_allocator": {"max_allocated_bytes": 10752,
 "max_reserved_bytes": 2097152, "segments": 1}, "fake_device": "cpu", "optimizer_foreach": true,
 "phase_peaks": {"backward": 3980, "forward": 3016, "optimizer": 3476, "zero_grad": 2796},
 "step_cost": {"attention_ops": {}, "flop_op_bytes": 2728, "flops_by_dtype": {"float32": 3840},
 "max_attention_query_elements": 0, "ops": 22, "other_op_bytes": 14032, "provenance": "simulated",
 "total_flops": 3840}, "target": "cuda", "tokens_per_step": 8}}, "host": null, "model": "toy",
 "nvml": null, "params": {"parameter_bytes": 680, "provenance": "simulated", "total": 170,
 "trainable": 170, "trainable_bytes": 680, "trainable_percent": 100.0}, "plan": "baseline",
 "reason": null, "seq_len": 4, "status": "ok", "tensor_peak": {"breakdown": {"activation_bytes":
 1864, "buffer_bytes": 0, "gradient_bytes": 0, "input_bytes": 64, "optimizer_state_bytes": 1372,
 "parameter_bytes": 680, "total_bytes": 3980}, "peak_bytes": 3980, "peak_phase": "backward",
 "provenance": "simulated", "resident_before_step_bytes": 2116}, "timing": null,
 "wall_time_s": 0.25}
""".replace("\n", " ").replace("so  the", "so the"))

EXPECTED_RECORD = SimulationRecord(
    fake_device="cpu",
    target="cuda",
    tokens_per_step=8,
    optimizer_foreach=True,
    phase_peaks={"backward": 3980, "forward": 3016, "optimizer": 3476, "zero_grad": 2796},
    step_cost=StepCost(
        flops_by_dtype={"float32": 3840}, flop_op_bytes=2728, other_op_bytes=14032, ops=22
    ),
    cuda_allocator=AllocatorPeak(10752, 2097152, 1),
)


def _toy(world: FakeWorld) -> StepProgram:
    """The program the old result above was simulated from."""
    with torch.device("meta"):
        model: nn.Module = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 10))
    model = world.fakeify(model)
    batch = world.batch(torch.randint(0, 10, (2, 4)))

    def loss(m: nn.Module, b: torch.Tensor) -> torch.Tensor:
        return m(b).float().pow(2).mean()  # type: ignore[no-any-return]

    optimizer = torch.optim.AdamW(model.parameters())
    return StepProgram(model, optimizer, batch, loss, 8, 2, extra={"autocast": "bfloat16"})


def _json_round_trip(result: TrialResult) -> TrialResult:
    return TrialResult.from_dict(json.loads(json.dumps(result.to_dict())))


def test_an_old_result_with_extra_simulation_loads_into_the_typed_record() -> None:
    old = TrialResult.from_dict(OLD_SIMULATED_RESULT)
    assert old.status is TrialStatus.OK
    assert old.simulation == EXPECTED_RECORD
    assert old.extra == {"autocast": "bfloat16"}  # the record is no longer a free dict
    assert old.simulation.step_cost is not None and old.simulation.step_cost.total_flops == 3840
    assert old.simulation.cuda_allocator is not None
    assert old.simulation.cuda_allocator.provenance is Provenance.SIMULATED
    assert "simulation" in OLD_SIMULATED_RESULT["extra"]  # the input is left as it was
    assert _json_round_trip(old) == old


def test_an_old_partial_simulation_loads_with_the_rest_unrecorded() -> None:
    """An estimated trial kept only the step cost of its stand-in plan."""
    data = dict(OLD_SIMULATED_RESULT, extra={"simulation": {"step_cost": {"ops": 3}}})
    record = TrialResult.from_dict(data).simulation
    assert record == SimulationRecord(step_cost=StepCost(ops=3))


def test_the_typed_record_round_trips_through_json_exactly() -> None:
    spec = TrialSpec("toy", batch_size=2, seq_len=4)
    result = simulate_trial(spec, _toy, target="cuda", fake_device="cpu")
    assert result.ok and result.simulation is not None
    assert "simulation" not in result.extra
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["simulation"]["step_cost"]["total_flops"] == result.simulation.step_cost.total_flops  # type: ignore[union-attr]
    again = TrialResult.from_dict(doc)
    assert again == result
    assert again.to_dict() == result.to_dict()
    assert SimulationRecord.from_dict(result.simulation.to_dict()) == result.simulation


def test_the_replay_gives_the_figures_the_previous_version_saved() -> None:
    spec = TrialSpec("toy", batch_size=2, seq_len=4)
    result = simulate_trial(spec, _toy, target="cuda", fake_device="cpu")
    old = TrialResult.from_dict(OLD_SIMULATED_RESULT)
    same = ("simulation", "tensor_peak", "params", "extra", "status", "accumulation_steps")
    # figures added since are recorded now, and absent ("not recorded") in the old file
    assert result.simulation is not None and old.simulation is not None
    assert old.simulation.autocast_policy is None and old.simulation.phase_start_bytes == {}
    assert result.simulation.autocast_policy == "cuda policy (torch 2.13)"  # extra says bf16
    assert set(result.simulation.phase_start_bytes) == {"forward", "backward", "optimizer", "zero_grad"}
    result = dataclasses.replace(
        result,
        simulation=dataclasses.replace(result.simulation, autocast_policy=None, phase_start_bytes={}),
    )
    for name in same:
        assert getattr(result, name) == getattr(old, name), name


def test_a_result_without_a_simulation_round_trips_without_one() -> None:
    data = {k: v for k, v in OLD_SIMULATED_RESULT.items() if k != "extra"}
    result = TrialResult.from_dict(data)
    assert result.simulation is None and result.to_dict()["simulation"] is None
    assert _json_round_trip(dataclasses.replace(result, extra={"k": 1})).extra == {"k": 1}
