"""The CPU backend's peak is exact: checked by hand to the byte, and against torch's profiler."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from advisor.models import resolve_model
from advisor.plans import Plan, program_builder
from profilers.records import TrialStatus
from profilers.tracker import TensorMemoryTracker
from profilers.trial import StepProgram, TrialSpec, run_trial, train_step

N = 10_000  # elements of the single parameter vector


class Dot(nn.Module):
    """loss = sum(p * x): a step whose live bytes can be counted by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(N))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.p * x).sum()


def _dot_program(device: torch.device, optimizer: str = "sgd") -> StepProgram:
    model = Dot().to(device)
    opt: torch.optim.Optimizer
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1)  # no momentum: no state
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    x = torch.ones(N, device=device)
    return StepProgram(model, opt, x, lambda m, b: m(b), tokens_per_micro_batch=N, samples_per_micro_batch=1)


def test_synthetic_peak_is_exact_to_the_byte() -> None:
    # Resident: p (4N) + x (4N). Forward: p*x (4N), then its sum (4 B); p*x dies after sum.
    # Backward: the seed gradient ones_like(loss) (4 B) and dL/dp = grad * x (4N), with the loss
    # (4 B) still held. Peak = p + x + grad + loss + seed = 12N + 8 bytes, during backward.
    result = run_trial(TrialSpec("dot", device="cpu", timed_steps=2), _dot_program)
    assert result.status is TrialStatus.OK
    peak = result.tensor_peak
    assert peak is not None
    assert peak.peak_bytes == 12 * N + 8
    assert peak.peak_phase == "backward"
    b = peak.breakdown
    assert (b.parameter_bytes, b.gradient_bytes, b.input_bytes) == (4 * N, 4 * N, 4 * N)
    assert b.optimizer_state_bytes == 0
    assert b.activation_bytes == 8
    assert peak.resident_before_step_bytes == 8 * N


def test_adamw_state_is_two_fp32_moments_plus_step_counter() -> None:
    # AdamW keeps exp_avg and exp_avg_sq (4N each) and a 4-byte fp32 `step` tensor on CPU.
    result = run_trial(TrialSpec("dot", device="cpu", timed_steps=1), lambda d: _dot_program(d, "adamw"))
    assert result.tensor_peak is not None
    assert result.tensor_peak.breakdown.optimizer_state_bytes == 8 * N + 4
    assert result.tensor_peak.resident_before_step_bytes == 8 * N + 8 * N + 4


def test_tiny_llama_peak_matches_torch_profiler_memory_timeline(tmp_path: Path) -> None:
    source = resolve_model("tiny-llama")
    prog = program_builder(Plan(), source, 4, 128)(torch.device("cpu"))
    train_step(prog)  # warm-up: optimizer state exists from here on

    tracker = TensorMemoryTracker("cpu")
    tracker.register_training_state(prog.model, prog.optimizer, prog.batch)
    with tracker:
        train_step(prog, tracker)
    ours = tracker.result()
    tracker.close()

    # Independent count: the profiler's allocator events, categorised by torch's memory profiler.
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        train_step(prog)
    out = tmp_path / "timeline.json"
    prof.export_memory_timeline(str(out), device="cpu")
    _times, sizes = json.loads(out.read_text())
    theirs = max(sum(s) for s in sizes)

    assert abs(ours.peak_bytes - theirs) / theirs < 0.01
    # and the resident part is what we can count from the objects themselves
    params = sum(p.numel() * p.element_size() for p in prog.model.parameters())
    assert ours.breakdown.parameter_bytes == params
    assert ours.breakdown.total_bytes == ours.peak_bytes


def test_breakdown_of_tiny_llama_has_adamw_state_of_twice_the_parameters() -> None:
    source = resolve_model("tiny-llama")
    result = run_trial(
        TrialSpec("tiny-llama", device="cpu", batch_size=2, seq_len=64, timed_steps=1),
        program_builder(Plan(), source, 2, 64),
    )
    assert result.params is not None and result.tensor_peak is not None
    b = result.tensor_peak.breakdown
    n_tensors = len(list(source.build("meta").parameters()))
    # two fp32 moments per parameter, plus one 4-byte step counter per parameter tensor
    assert b.optimizer_state_bytes == 2 * result.params.parameter_bytes + 4 * n_tensors
    assert result.params.total == result.params.trainable == 3_548_416
