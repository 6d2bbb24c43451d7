"""Activation offload in a replay: saved tensors moved to host memory count as host, not device.

A plan's offload cut runs its forward under :func:`offload_to_host`. Outside a replay that is
torch's own ``torch.autograd.graph.save_on_cpu(pin_memory=…)``. Inside one
(:func:`replaying_offload`, entered by :func:`~profilers.simulate.replay.simulate_trial`), every
storage lives on the same fake device, so the replay runs the same hooks as torch 2.13's
``save_on_cpu(pin_memory=True)`` (``torch/autograd/graph.py``) with what each moves made explicit:

* pack: ``torch.empty(tensor.size(), dtype, layout)`` then ``copy_`` — a fresh, contiguous host
  copy of every tensor saved for backward (parameters included, once per save), created under
  :func:`host_allocations`, so the tracker counts it as host (pinned) memory;
* unpack: ``tensor.to(device)`` — a device copy made when backward needs it (on the fake CPU
  device ``.to`` would return the host tensor itself, so the replay clones it).

The tracker (:class:`~profilers.simulate.phases.PhaseTracker`) keeps host storages apart: the
device peak leaves them out, and the host peak is reported beside it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch.autograd.graph import save_on_cpu, saved_tensors_hooks

__all__ = ["allocating_on_host", "host_allocations", "offload_to_host", "replaying_offload"]

_state = threading.local()


def allocating_on_host() -> bool:
    """Whether storages created now are host memory (inside :func:`host_allocations`)."""
    return getattr(_state, "host", 0) > 0


@contextlib.contextmanager
def host_allocations() -> Iterator[None]:
    """Storages created inside count as host memory in a replay's tracker."""
    _state.host = getattr(_state, "host", 0) + 1
    try:
        yield
    finally:
        _state.host -= 1


@contextlib.contextmanager
def replaying_offload() -> Iterator[None]:
    """Inside, :func:`offload_to_host` gives the replay's hooks instead of torch's."""
    _state.replay = getattr(_state, "replay", 0) + 1
    try:
        yield
    finally:
        _state.replay -= 1


def _pack(tensor: torch.Tensor) -> tuple[torch.device, torch.Tensor]:
    with host_allocations():
        packed = torch.empty(tensor.size(), dtype=tensor.dtype, layout=tensor.layout)
        packed.copy_(tensor)
    return tensor.device, packed


def _unpack(packed: tuple[torch.device, torch.Tensor]) -> torch.Tensor:
    device, tensor = packed
    if tensor.device == device:  # the same fake device: make the device copy CUDA would
        return tensor.clone()
    return tensor.to(device)


def offload_to_host(pin_memory: bool = True) -> Any:
    """The context a plan's forward runs under to keep saved tensors in host memory: torch's
    ``save_on_cpu(pin_memory=pin_memory)``, or the replay's counted equivalent in a replay."""
    if getattr(_state, "replay", 0) > 0:
        return saved_tensors_hooks(_pack, _unpack)
    return save_on_cpu(pin_memory=pin_memory)
