"""The trial runner: build one training configuration, time it, and measure its peak.

A trial is: build the step program on the device, run warm-up steps, run timed steps (bare, no
instrumentation), then one more steady-state step under the :class:`TensorMemoryTracker` (and
the CUDA allocator's peak counters) to measure memory. NVML and the host RSS are sampled in a
background thread for the whole trial. Any failure becomes a result with a status and a reason.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import psutil
import torch

from profilers import cuda as cuda_backend
from profilers import nvml
from profilers.oom import is_oom
from profilers.records import (
    BackendStatus,
    CudaMemory,
    HostMemory,
    NvmlMemory,
    ParamCounts,
    Provenance,
    TensorPeak,
    Timing,
    TrialResult,
    TrialStatus,
)
from profilers.tracker import TensorMemoryTracker

__all__ = [
    "Progress",
    "StepProgram",
    "TrialDraft",
    "TrialSpec",
    "UnsupportedConfiguration",
    "classify_failure",
    "count_parameters",
    "resolve_device",
    "run_trial",
    "train_step",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class UnsupportedConfiguration(Exception):
    """Raised by a builder when a configuration cannot run here (missing library, hardware)."""


@dataclass
class StepProgram:
    """Everything one training step needs, built on the device by a plan."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batch: Any  # one micro-batch, on the device; reused for every micro-step
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor]
    tokens_per_micro_batch: int
    samples_per_micro_batch: int
    accumulation_steps: int = 1
    # entered around each forward (autocast, activation offload, …)
    forward_context: Callable[[], AbstractContextManager[Any]] = nullcontext
    # entered around each micro-batch's forward *and* backward (what autograd saves, e.g. an
    # older torch's: :mod:`profilers.autograd_saves`; a checkpoint's recomputation runs in backward)
    step_context: Callable[[], AbstractContextManager[Any]] = nullcontext
    # called with the loss before backward (e.g. a GradScaler's scale); identity by default
    scale_loss: Callable[[torch.Tensor], torch.Tensor] | None = None
    # replaces ``optimizer.step()`` (e.g. a GradScaler's step + update)
    optimizer_step: Callable[[], None] | None = None
    # ``zero_grad(set_to_none=...)`` after each optimizer step: ``False`` zeroes the gradients in
    # place, so they stay allocated through the next forward and backward (torch < 2.0's default
    # and transformers ≤ 4.x Trainer's ``model.zero_grad()`` on it); see :func:`train_step`
    zero_grad_set_to_none: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-safe figures for the result

    @property
    def tokens_per_step(self) -> int:
        return self.tokens_per_micro_batch * self.accumulation_steps

    @property
    def samples_per_step(self) -> int:
        return self.samples_per_micro_batch * self.accumulation_steps


def train_step(prog: StepProgram, tracker: TensorMemoryTracker | None = None) -> None:
    """One optimizer step: forward + backward per micro-batch, step, ``zero_grad``.

    ``zero_grad`` frees the gradients (``set_to_none=True``) unless the program keeps them
    (``prog.zero_grad_set_to_none`` false): then from the second step on the gradients are
    resident, as zeros, from the start of the step, and backward accumulates into them.
    """
    params = [p for p in prog.model.parameters() if p.requires_grad]
    for _ in range(prog.accumulation_steps):
        with prog.step_context():
            if tracker is not None:
                tracker.set_phase("forward")
            with prog.forward_context():
                loss = prog.loss_fn(prog.model, prog.batch)
                if prog.accumulation_steps > 1:
                    loss = loss / prog.accumulation_steps
            if prog.scale_loss is not None:
                loss = prog.scale_loss(loss)
            if tracker is not None:
                tracker.set_phase("backward")
            loss.backward()
            del loss
        if tracker is not None:
            tracker.note_gradients(params)
    if tracker is not None:
        tracker.set_phase("optimizer")
    if prog.optimizer_step is not None:
        prog.optimizer_step()
    else:
        prog.optimizer.step()
    if tracker is not None:
        tracker.note_optimizer_state(prog.optimizer)
        tracker.set_phase("zero_grad")
    prog.optimizer.zero_grad(set_to_none=prog.zero_grad_set_to_none)


def count_parameters(model: torch.nn.Module, provenance: Provenance) -> ParamCounts:
    """Total and trainable parameters (shared tensors counted once) and their bytes."""
    total = trainable = total_bytes = trainable_bytes = 0
    for p in model.parameters():  # parameters() already yields each shared tensor once
        n = p.numel()
        nbytes = n * p.element_size()
        # bitsandbytes packs 4-bit weights two to a byte in a uint8 tensor; report real elements
        quant_state = getattr(p, "quant_state", None)
        if quant_state is not None and getattr(quant_state, "shape", None) is not None:
            n = int(torch.Size(quant_state.shape).numel())
        total += n
        total_bytes += nbytes
        if p.requires_grad:
            trainable += n
            trainable_bytes += nbytes
    return ParamCounts(total, trainable, total_bytes, trainable_bytes, provenance)


def resolve_device(device: str) -> torch.device:
    """``auto`` → the first CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _PeakSampler:
    """Samples host RSS and (on CUDA) NVML memory in a background thread, keeping the peaks."""

    def __init__(self, device: torch.device) -> None:
        # NVML peaks are short-lived, so sample often on a GPU; RSS is context only, and a
        # thread waking often on a small CPU slows the step it is measuring
        self.interval_s = 0.01 if device.type == "cuda" else 0.1
        self._proc = psutil.Process()
        self.rss_before = int(self._proc.memory_info().rss)
        self.rss_peak = self.rss_before
        self.nvml_reader: nvml.DeviceReader | None = None
        self.device_peak = 0
        self.process_peak: int | None = None
        self.samples = 0
        if device.type == "cuda" and nvml.status().available:
            index = device.index if device.index is not None else torch.cuda.current_device()
            self.nvml_reader = nvml.DeviceReader(index)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vram-advisor-sampler", daemon=True)

    def _sample(self) -> None:
        self.rss_peak = max(self.rss_peak, int(self._proc.memory_info().rss))
        if self.nvml_reader is not None:
            used = self.nvml_reader.device_used_bytes()
            if used is not None:
                self.device_peak = max(self.device_peak, used)
                self.samples += 1
            mine = self.nvml_reader.process_used_bytes()
            if mine is not None:
                self.process_peak = max(self.process_peak or 0, mine)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def host(self) -> HostMemory:
        return HostMemory(self.rss_before, self.rss_peak)

    def nvml(self) -> NvmlMemory | None:
        if self.nvml_reader is None or self.samples == 0:
            return None
        return NvmlMemory(
            device_name=self.nvml_reader.name,
            peak_device_used_bytes=self.device_peak,
            peak_process_used_bytes=self.process_peak,
            total_memory_bytes=self.nvml_reader.total_bytes,
            samples=self.samples,
        )


@dataclass(frozen=True)
class TrialSpec:
    """What to run and how long: names for the record, sizes, step counts, the device."""

    model: str
    plan: str = "baseline"
    cuts: tuple[str, ...] = ()
    batch_size: int = 1
    seq_len: int = 128
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    warmup_steps: int = 1
    timed_steps: int = 5
    track_memory: bool = True
    record_timeline: bool = False  # keep the tracked step's memory over time (result.timeline)
    memory_snapshot: bool = False  # and its memory_viz snapshot (in extra["memory_viz_snapshot"])


def _backend_statuses(device: torch.device) -> tuple[BackendStatus, ...]:
    statuses = [BackendStatus("cpu-tensors", True, None), BackendStatus("host-rss", True, None)]
    statuses.append(cuda_backend.status())
    statuses.append(nvml.status())
    if device.type != "cuda":
        statuses = [
            s
            if s.name not in ("cuda", "nvml") or not s.available
            else BackendStatus(s.name, False, f"not used: the trial runs on {device}")
            for s in statuses
        ]
    return tuple(statuses)


@contextlib.contextmanager
def _cleanup(device: torch.device) -> Iterator[None]:
    try:
        yield
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


@dataclass
class TrialDraft:
    """A trial's record while it runs, shared by measured and simulated trials: the fixed
    fields first, then what building the program and running its steps found."""

    spec: TrialSpec
    device: str  # as the record names it: "cpu", "cuda:0", "fake-cpu"
    backends: tuple[BackendStatus, ...]
    started: float = field(default_factory=time.perf_counter)
    status: TrialStatus = TrialStatus.OK
    reason: str | None = None
    accumulation_steps: int = 1
    params: ParamCounts | None = None
    tensor_peak: TensorPeak | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def base(self) -> dict[str, Any]:
        """The record's fields known before anything runs."""
        spec = self.spec
        return dict(
            model=spec.model,
            plan=spec.plan,
            cuts=spec.cuts,
            device=self.device,
            batch_size=spec.batch_size,
            seq_len=spec.seq_len,
            backends=self.backends,
        )

    def adopt(self, prog: StepProgram, provenance: Provenance) -> None:
        """Take what a freshly built program tells (micro-steps, its figures, parameter
        counts) and put its model in training mode."""
        self.accumulation_steps = prog.accumulation_steps
        self.extra = dict(prog.extra)
        self.params = count_parameters(prog.model, provenance)
        prog.model.train()

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` as the trial's status and reason, and let go of its frames."""
        self.status, self.reason = classify_failure(exc)
        log.debug(
            "trial %s/%s: %s", self.spec.model, self.spec.plan, self.reason,
            exc_info=self.status is TrialStatus.ERROR,
        )  # fmt: skip
        # the traceback's frames hold the model, activations and gradients: let them go
        traceback.clear_frames(exc.__traceback__)

    def finish(self, **figures: Any) -> TrialResult:
        """The result, with ``figures`` (timing, CUDA, NVML, host, simulation) added."""
        return TrialResult(
            status=self.status,
            reason=self.reason,
            accumulation_steps=self.accumulation_steps,
            params=self.params,
            tensor_peak=self.tensor_peak,
            wall_time_s=time.perf_counter() - self.started,
            extra=self.extra,
            **figures,
            **self.base(),
        )


def run_trial(
    spec: TrialSpec,
    build: Callable[[torch.device], StepProgram],
    progress: Progress | None = None,
) -> TrialResult:
    """Run one trial; never raises for a failing configuration (see :class:`TrialResult`)."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    device = resolve_device(spec.device)
    draft = TrialDraft(spec, str(device), _backend_statuses(device), started)
    if device.type == "cuda" and not torch.cuda.is_available():
        reason = next(s.reason for s in draft.backends if s.name == "cuda")
        return TrialResult(status=TrialStatus.UNSUPPORTED, reason=f"no CUDA: {reason}", **draft.base())

    timing: Timing | None = None
    cuda_mem: CudaMemory | None = None
    seen: dict[str, Any] = {}
    sampler = _PeakSampler(device)
    with _cleanup(device), sampler:
        prog: StepProgram | None = None
        try:
            say("building model")
            prog = build(device)
            draft.adopt(prog, Provenance.MEASURED)
            for i in range(spec.warmup_steps):
                say(f"warm-up step {i + 1}/{spec.warmup_steps}")
                train_step(prog)
            times: list[float] = []
            for i in range(spec.timed_steps):
                say(f"timed step {i + 1}/{spec.timed_steps}")
                cuda_backend.synchronize(device)
                t0 = time.perf_counter()
                train_step(prog)
                cuda_backend.synchronize(device)
                times.append(time.perf_counter() - t0)
            if times:
                timing = Timing(
                    steps=len(times),
                    median_step_time_s=statistics.median(times),
                    min_step_time_s=min(times),
                    max_step_time_s=max(times),
                    tokens_per_step=prog.tokens_per_step,
                    samples_per_step=prog.samples_per_step,
                )
            if spec.track_memory:
                if not prog.zero_grad_set_to_none and spec.warmup_steps + spec.timed_steps == 0:
                    # gradients zeroed in place are resident from the second step on: that
                    # step is the steady one whose peak is measured
                    say("warm-up step (gradients kept between steps)")
                    train_step(prog)
                say("measuring the peak of one step")
                draft.tensor_peak, cuda_mem = _tracked_step(prog, device, spec, seen)
        except Exception as exc:
            draft.fail(exc)
        finally:
            del prog  # free the model, optimizer state and batch before the next trial
    if "snapshot" in seen:
        draft.extra["memory_viz_snapshot"] = seen["snapshot"]
    return draft.finish(
        cuda=cuda_mem, nvml=sampler.nvml(), host=sampler.host(), timing=timing, timeline=seen.get("timeline")
    )


def _tracked_step(
    prog: StepProgram, device: torch.device, spec: TrialSpec | None = None, seen: dict[str, Any] | None = None
) -> tuple[TensorPeak, CudaMemory | None]:
    gc.collect()
    if device.type == "cuda":
        cuda_backend.reset_peaks(device)
    tracker = TensorMemoryTracker(device.type)
    tracker.register_training_state(prog.model, prog.optimizer, prog.batch)
    try:
        with tracker:
            train_step(prog, tracker)
        peak = tracker.result(Provenance.MEASURED)
        if spec is not None and seen is not None and spec.record_timeline:
            seen["timeline"] = tracker.timeline()
        if spec is not None and seen is not None and spec.memory_snapshot:
            seen["snapshot"] = tracker.memory_viz_snapshot()
    finally:
        tracker.close()
    cuda_mem = cuda_backend.read_peaks(device) if device.type == "cuda" else None
    return peak, cuda_mem


def classify_failure(exc: BaseException) -> tuple[TrialStatus, str]:
    """The status and reason a trial records for an exception (shared with simulation)."""
    if isinstance(exc, UnsupportedConfiguration):
        return TrialStatus.UNSUPPORTED, str(exc)
    if is_oom(exc):
        return TrialStatus.OOM, f"out of memory: {_first_line(exc)}"
    return TrialStatus.ERROR, f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    """The exception's message on one line (hints included), cut to a readable length."""
    text = " ".join(str(exc).split())
    return text[:600] if text else type(exc).__name__
