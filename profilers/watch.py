"""Watch the user's own training loop: per-step peak memory, its breakdown, and step time.

A :class:`StepWatcher` delimits steps either by explicit :meth:`StepWatcher.step` calls or by
hooking ``optimizer.step`` (a step ends when the optimizer has stepped), and measures each step:

* on CPU with the exact :class:`~profilers.tracker.TensorMemoryTracker`: at each step's start
  it registers what is resident (parameters, buffers, gradients, optimizer state and, when
  given, the batch) with its role, then every storage an op of the step returns is counted
  until it dies; the step's peak and the role of every byte live at it are exact;
* on CUDA with the caching allocator's peak counters (``torch.cuda.max_memory_allocated``,
  reset at each step's start) and NVML's device-used figure after the step — no dispatch mode,
  so the watched loop runs at full speed. The breakdown there is the resident part by role
  (read from the tensors at the step's end) and the rest of the peak as activations.

``exact_every`` samples: the tracker is on for one step in ``exact_every`` (and the first), the
others are timed only; 0 turns it off (on CPU: step times only). Phases (forward, backward, optimizer) are marked by hooks on the model's
root forward and on the optimizer's step, so the tracker's peak phase is named.

This is the runtime: it never imports ``advisor``; the budget and the prediction come in as
plain numbers and callbacks from :func:`advisor.api.watch`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from profilers import nvml
from profilers.records import MemoryBreakdown, Provenance
from profilers.tracker import Role, TensorMemoryTracker, optimizer_state_tensors, tensors_in

__all__ = ["StepRecord", "StepWatcher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepRecord:
    """What one watched step used. Bytes are raw ints; ``source`` says which meter read them."""

    step: int  # 1-based, in the order the watcher saw the steps
    step_time_s: float
    peak_bytes: int | None  # None: a step timed only (``exact_every`` skipped it)
    breakdown: MemoryBreakdown | None  # at the peak (CPU: exact; CUDA: resident + the rest)
    peak_phase: str | None
    source: str  # "cpu-tensors" (exact tracker), "cuda-allocator", or "timing-only"
    reserved_bytes: int | None = None  # CUDA: the allocator's reserved peak
    nvml_used_bytes: int | None = None  # CUDA: the whole device's used memory after the step
    provenance: Provenance = Provenance.MEASURED


def _unwrap(optimizer: Any) -> Any:
    """The torch optimizer inside wrappers such as accelerate's ``AcceleratedOptimizer``
    (an ``Optimizer`` subclass holding the real one in ``.optimizer``, without its own step
    hooks: accelerate 1.16)."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


@dataclass
class StepWatcher:
    """See the module docstring. ``on_step`` gets each :class:`StepRecord` as it is made;
    ``warn_bytes`` (when set) is the peak at which ``on_warning`` is called (once) and a
    warning logged."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None = None
    device: torch.device | None = None  # default: where the model's first parameter lives
    exact_every: int = 1
    hook_optimizer: bool = True  # end a step when ``optimizer.step`` returns
    warn_bytes: int | None = None
    on_step: Callable[[StepRecord], None] | None = None
    on_warning: Callable[[StepRecord, str], None] | None = None
    records: list[StepRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.exact_every < 0:
            raise ValueError(f"exact_every must be 0 (never) or more, got {self.exact_every}")
        self.optimizer = _unwrap(self.optimizer)
        if self.device is None:
            first = next(self.model.parameters(), None)
            self.device = first.device if first is not None else torch.device("cpu")
        self._handles: list[Any] = []
        self._tracker: TensorMemoryTracker | None = None
        self._t0: float | None = None
        self._index = 0  # steps begun
        self._batch: Any = None
        self._nvml: nvml.DeviceReader | None = None
        self.input_shape: tuple[int, ...] | None = None  # of the first forward's token ids
        self._warned = False

    # -- life cycle --------------------------------------------------------------------------

    @property
    def on_cuda(self) -> bool:
        assert self.device is not None
        return self.device.type == "cuda"

    def start(self, begin: bool = True) -> StepWatcher:
        """Install the hooks and (with ``begin``) begin the first step."""
        self._handles.append(self.model.register_forward_pre_hook(self._forward_pre, with_kwargs=True))
        self._handles.append(self.model.register_forward_hook(self._forward_post))
        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(self._optimizer_pre))
            if self.hook_optimizer:
                self._handles.append(self.optimizer.register_step_post_hook(self._optimizer_post))
        if self.on_cuda and nvml.status().available:
            index = self.device.index if self.device is not None and self.device.index is not None else 0
            self._nvml = nvml.DeviceReader(index)
        if begin:
            self.begin_step()
        return self

    def stop(self) -> None:
        """Remove the hooks; a step begun but not ended (no work in it) is dropped."""
        self._abandon_step()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def step(self, batch: Any = None) -> StepRecord | None:
        """End the current step (when one is open) and begin the next; ``batch`` is the next
        step's input, counted as resident input when given."""
        record = self.end_step()
        self.begin_step(batch)
        return record

    # -- steps -------------------------------------------------------------------------------

    def _exact_now(self) -> bool:
        return self.exact_every > 0 and (self._index - 1) % self.exact_every == 0

    def begin_step(self, batch: Any = None) -> None:
        """Start measuring a step (a no-op when one is open already)."""
        if self._t0 is not None:
            return
        self._index += 1
        self._batch = batch
        if self.on_cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._exact_now():
            tracker = TensorMemoryTracker(self.device.type if self.device is not None else "cpu")
            tracker.register_training_state(self.model, self.optimizer, batch)
            tracker.__enter__()
            self._tracker = tracker
        self._t0 = time.perf_counter()

    def _abandon_step(self) -> None:
        if self._tracker is not None:
            self._tracker.__exit__(None, None, None)
            self._tracker.close()
            self._tracker = None
        if self._t0 is not None:
            self._t0 = None
            self._index -= 1

    def end_step(self) -> StepRecord | None:
        """Finish the open step and record it (``None`` when no step was open)."""
        if self._t0 is None:
            return None
        if self.on_cuda:
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - self._t0
        self._t0 = None
        if self.on_cuda:
            record = self._cuda_record(elapsed)
        elif self._tracker is not None:
            tracker, self._tracker = self._tracker, None
            tracker.__exit__(None, None, None)
            peak = tracker.result(Provenance.MEASURED)
            tracker.close()
            record = StepRecord(self._index, elapsed, peak.peak_bytes, peak.breakdown, peak.peak_phase, "cpu-tensors")
        else:
            record = StepRecord(self._index, elapsed, None, None, None, "timing-only")
        self.records.append(record)
        self._check_budget(record)
        if self.on_step is not None:
            self.on_step(record)
        return record

    def _cuda_record(self, elapsed: float) -> StepRecord:
        peak = int(torch.cuda.max_memory_allocated(self.device))
        reserved = int(torch.cuda.max_memory_reserved(self.device))
        resident = self._resident_by_role()
        rest = max(0, peak - sum(resident.values()))
        breakdown = MemoryBreakdown(
            parameter_bytes=resident[Role.PARAMETER],
            buffer_bytes=resident[Role.BUFFER],
            gradient_bytes=resident[Role.GRADIENT],
            optimizer_state_bytes=resident[Role.OPTIMIZER],
            input_bytes=resident[Role.INPUT],
            activation_bytes=rest,
        )
        used = self._nvml.device_used_bytes() if self._nvml is not None else None
        return StepRecord(self._index, elapsed, peak, breakdown, None, "cuda-allocator", reserved, used)

    def _resident_by_role(self) -> dict[Role, int]:
        """Bytes of the resident state by role (each storage once, first role wins)."""
        seen: set[int] = set()
        out = {role: 0 for role in Role}

        def add(tensors: Any, role: Role) -> None:
            for t in tensors:
                if t is None or t.device.type != self.device.type:  # type: ignore[union-attr]
                    continue
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key in seen:
                    continue
                seen.add(key)
                out[role] += int(storage.nbytes())

        add((p.detach() for p in self.model.parameters()), Role.PARAMETER)
        add(self.model.buffers(), Role.BUFFER)
        add((p.grad for p in self.model.parameters()), Role.GRADIENT)
        if self.optimizer is not None:
            add(optimizer_state_tensors(self.optimizer), Role.OPTIMIZER)
        add(tensors_in(self._batch), Role.INPUT)
        return out

    def _check_budget(self, record: StepRecord) -> None:
        if self.warn_bytes is None or record.peak_bytes is None or self._warned:
            return
        if record.peak_bytes >= self.warn_bytes:
            self._warned = True
            message = (
                f"step {record.step}: peak {record.peak_bytes} B reached the warning level "
                f"{self.warn_bytes} B"
            )
            self.warnings.append(message)
            log.warning("%s", message)
            if self.on_warning is not None:
                self.on_warning(record, message)

    # -- hooks -------------------------------------------------------------------------------

    def _forward_pre(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.input_shape is None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            if isinstance(ids, torch.Tensor):
                self.input_shape = tuple(ids.shape)
        if self._tracker is not None:
            self._tracker.set_phase("forward")

    def _forward_post(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._tracker is not None:
            self._tracker.set_phase("backward")  # the loss and its backward come next

    def _optimizer_pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._tracker is not None:
            self._tracker.note_gradients(self.model.parameters())
            self._tracker.set_phase("optimizer")

    def _optimizer_post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._tracker is not None:
            self._tracker.note_optimizer_state(optimizer)
        self.step()
