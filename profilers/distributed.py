"""One rank of N: torch's fake process group for a simulated rank, and the rank's record.

A simulated sharded step runs in one process standing for rank 0 of ``world_size``: torch's
fake process group (``torch.testing._internal.distributed.fake_pg``, torch 2.13) answers every
collective at once without moving data, so FSDP2 lays out its shards and allocates its
all-gather and reduce-scatter buffers exactly as on a real rank.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch.distributed as dist

__all__ = ["BACKENDS", "fake_process_group", "gloo_scratch", "in_process_group"]

BACKENDS = ("nccl", "gloo")  # whose collectives a fake rank allocates like

log = logging.getLogger(__name__)


def in_process_group() -> bool:
    """Whether this process is already one rank of a process group."""
    return dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def gloo_scratch() -> Iterator[None]:
    """Make reduce-scatter allocate what gloo's does beside FSDP2's own buffers.

    torch 2.13's ``ProcessGroupGloo`` has no native reduce-scatter: it reduces a copy of the
    whole input and keeps its rank's chunk, so for the length of the call a copy of the input
    is live (measured on this CPU: the ranks' peaks exceed NCCL's layout by exactly one
    reduce-scatter input). NCCL reduces in place into the output and needs none.
    """
    original = dist.reduce_scatter_single

    def reduce_scatter_single(output: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
        scratch = input.clone()
        try:
            return original(output, input, *args, **kwargs)
        finally:
            del scratch

    dist.reduce_scatter_single = reduce_scatter_single  # type: ignore[assignment]
    try:
        yield
    finally:
        dist.reduce_scatter_single = original  # type: ignore[assignment]


@contextlib.contextmanager
def fake_process_group(world_size: int, rank: int = 0, backend: str = "nccl") -> Iterator[None]:
    """This process as ``rank`` of ``world_size`` on torch's fake process group, for the
    duration (nothing when ``world_size`` is 1), its collectives allocating like ``backend``'s
    (``"gloo"``: :func:`gloo_scratch`). Refuses to stack on a real group."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if world_size <= 1:
        yield
        return
    if in_process_group():
        raise RuntimeError("a process group is already initialised here: cannot simulate another rank in it")
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    try:
        with gloo_scratch() if backend == "gloo" else contextlib.nullcontext():
            yield
    finally:
        dist.destroy_process_group()
