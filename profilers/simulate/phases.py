"""The memory tracker with the peak of each phase of the step, the allocation log, and host
memory (offloaded activations) kept apart from the device's."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import torch

from profilers.simulate.offload import allocating_on_host
from profilers.tracker import Role, TensorMemoryTracker, flat_tensors, storages_of

__all__ = ["PhaseTracker"]

class PhaseTracker(TensorMemoryTracker):
    """A :class:`TensorMemoryTracker` that also keeps the peak of each phase of the step, and
    the live bytes when each phase first began (at ``"backward"``: the resident bytes, what the
    forward saved for backward, and the loss)."""

    def __init__(self, device_type: str = "meta") -> None:
        super().__init__(device_type)
        self.phase_peaks: dict[str, int] = {}
        self.phase_starts: dict[str, int] = {}
        # storages created under profilers.simulate.offload.host_allocations: host memory
        self._host_bytes: dict[int, int] = {}  # id(storage) -> bytes, while alive
        self.host_live_bytes = 0
        self.host_peak_bytes = 0

    def _note(self) -> None:
        if self._live_bytes > self.phase_peaks.get(self.phase, -1):
            self.phase_peaks[self.phase] = self._live_bytes

    def _track(self, storage: torch.UntypedStorage, role: Role) -> int | None:
        if id(storage) in self._host_bytes:  # already known as host memory
            return None
        if allocating_on_host() and id(storage) not in self._serial_by_id:
            self._track_host(storage)
            return None
        serial = super()._track(storage, role)
        self._note()
        return serial

    def _track_host(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)
        nbytes = int(storage.nbytes())
        if key in self._host_bytes or nbytes == 0:
            return
        self._host_bytes[key] = nbytes
        self.host_live_bytes += nbytes
        self.host_peak_bytes = max(self.host_peak_bytes, self.host_live_bytes)
        self._finalizers.append(weakref.finalize(storage, self._host_freed, key))

    def _host_freed(self, key: int) -> None:
        self.host_live_bytes -= self._host_bytes.pop(key)

    def set_phase(self, phase: str) -> None:
        super().set_phase(phase)
        self.phase_starts.setdefault(phase, self._live_bytes)
        self._note()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        self._op = func  # the timeline names the op that made each storage
        for t in flat_tensors(out):
            for storage in storages_of(t):  # a DTensor's local shard, not its global shape
                self._track(storage, self.new_role)
        self._op = None
        return out

    def event_log(self) -> tuple[list[int], dict[int, int]]:
        """The allocation log (``+serial`` allocated, ``-serial`` freed) and bytes per serial."""
        return list(self._events), dict(self._bytes)

    def resident_count(self) -> int:
        """How many leading events are the storages registered before the step."""
        return self._resident_events

    def register(self, tensors: Iterable[torch.Tensor], role: Role) -> None:
        device = []
        for t in tensors:
            if getattr(t, "is_paged", False):  # bitsandbytes' paged state: CUDA unified memory
                self._track_host(t.untyped_storage())
            else:
                device.append(t)
        super().register(device, role)
        self._resident_events = len(self._events)

    _resident_events = 0
