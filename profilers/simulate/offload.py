"""Activation offload in a replay: saved tensors moved to host memory count as host, not device.

A plan's offload cut runs its forward under :func:`offload_to_host`: torch 2.13's
``save_on_cpu(pin_memory=True)`` hooks (``torch/autograd/graph.py``), except that tensors whose
storage is a parameter's or a buffer's (the weights a matmul saves, ``weight.t()`` views
included) stay where they are, as torchtune's ``OffloadActivations`` leaves parameters alone:
copying a resident weight to the host saves no device memory and brings a second device copy
back in backward. Inside a replay (:func:`replaying_offload`, entered by
:func:`~profilers.simulate.replay.simulate_trial`), every storage lives on the same fake device,
so what each hook moves is made explicit:

* pack: ``torch.empty(tensor.size(), dtype, layout)`` then ``copy_`` — a fresh, contiguous host
  copy of every saved activation (once per save), created under :func:`host_allocations`, so
  the tracker counts it as host (pinned) memory;
* unpack: ``tensor.to(device)`` — a device copy made when backward needs it (on the fake CPU
  device ``.to`` would return the host tensor itself, so the replay clones it).

The tracker (:class:`~profilers.simulate.phases.PhaseTracker`) keeps host storages apart: the
device peak leaves them out, and the host peak is reported beside it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.autograd.graph import saved_tensors_hooks

__all__ = ["allocating_on_host", "host_allocations", "offload_to_host", "replaying_offload", "resident_storages"]

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


def _storage_key(t: torch.Tensor) -> int | None:
    try:
        return int(t.untyped_storage()._cdata)
    except (RuntimeError, NotImplementedError):  # no storage (sparse, nested)
        return None


def resident_storages(tensors: Iterable[torch.Tensor]) -> frozenset[int]:
    """Keys of the storages of ``tensors`` (a model's parameters and buffers): saved tensors
    on them are not offloaded."""
    return frozenset(k for k in map(_storage_key, tensors) if k is not None)


_Packed = tuple["torch.device | None", torch.Tensor]


def _hooks(keep: frozenset[int], pin_memory: bool) -> saved_tensors_hooks:
    """``save_on_cpu``'s hooks (torch 2.13) for every saved tensor not on a ``keep`` storage."""
    replay = getattr(_state, "replay", 0) > 0

    def pack(tensor: torch.Tensor) -> _Packed:
        if _storage_key(tensor) in keep or (not replay and tensor.device.type == "cpu"):
            return None, tensor  # a weight (or already host memory): stays where it is
        if replay:
            with host_allocations():
                packed = torch.empty(tensor.size(), dtype=tensor.dtype, layout=tensor.layout)
                packed.copy_(tensor)
            return tensor.device, packed
        packed = torch.empty(
            tensor.size(), dtype=tensor.dtype, layout=tensor.layout,
            pin_memory=pin_memory and torch.cuda.is_available() and not tensor.is_sparse,
        )  # fmt: skip
        packed.copy_(tensor)
        return tensor.device, packed

    def unpack(packed: _Packed) -> torch.Tensor:
        device, tensor = packed
        if device is None:
            return tensor
        if tensor.device == device:  # the same fake device: make the device copy CUDA would
            return tensor.clone()
        return tensor.to(device, non_blocking=pin_memory)

    return saved_tensors_hooks(pack, unpack)


def offload_to_host(pin_memory: bool = True, keep: Iterable[torch.Tensor] = ()) -> Any:
    """The context a plan's forward runs under to keep saved activations in host memory:
    ``save_on_cpu(pin_memory=pin_memory)``'s copies for every saved tensor except those on the
    storages of ``keep`` (the model's parameters and buffers); in a replay, the host copies are
    counted as host memory."""
    return _hooks(resident_storages(keep), pin_memory)
