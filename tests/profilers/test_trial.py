"""Trial runner: failures become results, missing hardware becomes a reason."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from profilers import cuda as cuda_backend
from profilers import nvml
from profilers.oom import is_oom
from profilers.records import TrialResult, TrialStatus
from profilers.trial import StepProgram, TrialSpec, UnsupportedConfiguration, run_trial

HAS_CUDA = torch.cuda.is_available()


def _linear_program(device: torch.device, fail_in_forward: BaseException | None = None) -> StepProgram:
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 8)).to(device)
    x = torch.randn(16, 64, device=device)

    def loss(m: nn.Module, b: torch.Tensor) -> torch.Tensor:
        if fail_in_forward is not None:
            raise fail_in_forward
        return m(b).pow(2).mean()

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return StepProgram(model, opt, x, loss, tokens_per_micro_batch=16, samples_per_micro_batch=16)


def test_out_of_memory_in_a_step_becomes_an_oom_result_and_frees_the_model() -> None:
    held: list[weakref.ref[nn.Module]] = []
    cpu_oom = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")

    def build(device: torch.device) -> StepProgram:
        prog = _linear_program(device, fail_in_forward=cpu_oom)
        held.append(weakref.ref(prog.model))
        return prog

    result = run_trial(TrialSpec("toy", device="cpu"), build)
    assert result.status is TrialStatus.OOM
    assert result.reason is not None and "can't allocate memory" in result.reason
    assert result.params is not None and result.params.total == 64 * 256 + 256 + 256 * 8 + 8
    gc.collect()
    assert held[0]() is None  # the model is gone once the trial returns
    # and the process goes on: a next trial runs normally
    assert run_trial(TrialSpec("toy", device="cpu", timed_steps=1), _linear_program).ok


def test_a_real_cpu_allocation_failure_is_recognised_as_oom() -> None:
    with pytest.raises(RuntimeError) as info:
        torch.empty(2**62, dtype=torch.uint8)
    assert is_oom(info.value)
    assert not is_oom(ValueError("shape mismatch"))
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


@pytest.mark.skipif(not hasattr(torch.cuda, "OutOfMemoryError"), reason="torch without OutOfMemoryError")
def test_cuda_out_of_memory_error_type_is_oom_without_a_gpu() -> None:
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))


def test_model_error_is_recorded_with_its_reason() -> None:
    result = run_trial(
        TrialSpec("toy", device="cpu"), lambda d: _linear_program(d, ValueError("bad batch shape"))
    )
    assert result.status is TrialStatus.ERROR
    assert result.reason == "ValueError: bad batch shape"


def test_unsupported_configuration_is_recorded_as_unsupported() -> None:
    def build(device: torch.device) -> StepProgram:
        raise UnsupportedConfiguration("bitsandbytes is not installed; pip install bitsandbytes")

    result = run_trial(TrialSpec("toy", device="cpu"), build)
    assert result.status is TrialStatus.UNSUPPORTED
    assert result.reason is not None and "pip install bitsandbytes" in result.reason


@pytest.mark.skipif(HAS_CUDA, reason="checks the no-GPU path")
def test_without_cuda_the_backends_say_why_and_a_cuda_trial_is_unsupported() -> None:
    status = cuda_backend.status()
    assert not status.available and status.reason
    result = run_trial(TrialSpec("toy", device="cuda"), _linear_program)
    assert result.status is TrialStatus.UNSUPPORTED
    assert result.reason is not None and result.reason.startswith("no CUDA")


def test_nvml_absent_is_a_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    def no_driver() -> None:
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    monkeypatch.setattr(nvml, "_state", {"initialised": False, "error": None})
    status = nvml.status()
    assert not status.available
    assert status.reason is not None and "NVIDIA display driver" in status.reason
    assert nvml.call(pynvml.nvmlDeviceGetCount) is None
    result = run_trial(TrialSpec("toy", device="cpu", timed_steps=1), _linear_program)
    assert result.ok
    by_name = {b.name: b for b in result.backends}
    assert not by_name["nvml"].available and by_name["nvml"].reason
    assert result.nvml is None


def test_timing_and_counts_are_recorded() -> None:
    result = run_trial(TrialSpec("toy", device="cpu", timed_steps=3), _linear_program)
    assert result.timing is not None
    t = result.timing
    assert t.steps == 3
    assert t.min_step_time_s <= t.median_step_time_s <= t.max_step_time_s
    assert t.tokens_per_s == pytest.approx(16 / t.median_step_time_s)
    assert result.host is not None and result.host.rss_peak_bytes >= result.host.rss_before_bytes > 0


def test_result_round_trips_through_json_dict() -> None:
    import json

    result = run_trial(TrialSpec("toy", device="cpu", timed_steps=1), _linear_program)
    again = TrialResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result


# -- on a real GPU (skipped here) ------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_trial_reports_allocator_peaks_consistent_with_tensor_peak() -> None:
    result = run_trial(TrialSpec("toy", device="cuda", timed_steps=2), _linear_program)
    assert result.ok and result.cuda is not None and result.tensor_peak is not None
    # the allocator rounds every block up to 512 bytes: never below the exact tensor bytes
    assert result.cuda.max_allocated_bytes >= result.tensor_peak.peak_bytes
    assert result.cuda.max_reserved_bytes >= result.cuda.max_allocated_bytes


@pytest.mark.gpu
def test_cuda_trial_samples_nvml_when_the_driver_is_there() -> None:
    result = run_trial(TrialSpec("toy", device="cuda", timed_steps=2), _linear_program)
    if not nvml.status().available:
        pytest.skip("NVML not available on this GPU machine")
    assert result.nvml is not None and result.nvml.peak_device_used_bytes > 0


@pytest.mark.gpu
def test_real_cuda_oom_is_caught_and_the_device_is_usable_after() -> None:
    total = torch.cuda.get_device_properties(0).total_memory

    def huge(device: torch.device) -> StepProgram:
        prog = _linear_program(device)
        prog.batch = torch.empty(total, dtype=torch.uint8, device=device)  # > free memory
        return prog

    result = run_trial(TrialSpec("toy", device="cuda"), huge)
    assert result.status is TrialStatus.OOM
    assert run_trial(TrialSpec("toy", device="cuda", timed_steps=1), _linear_program).ok
