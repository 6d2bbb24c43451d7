"""PyTorch's CUDA caching allocator, modelled, and a tracked step's allocations replayed on it.

The replay gives the simulated ``max_memory_allocated`` and ``max_memory_reserved`` of a CUDA
target (:class:`~profilers.records.AllocatorPeak`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from profilers.records import AllocatorPeak

__all__ = ["AllocatorPeak", "CachingAllocatorModel", "replay_caching_allocator"]

@dataclass(frozen=True)
class CachingAllocatorModel:
    """The block and segment sizes of PyTorch's CUDA caching allocator (defaults: its own).

    ``c10/cuda/CUDACachingAllocator.cpp`` (constants in ``c10/core/AllocatorConfig.h``): every
    request is rounded up to 512 B; requests ≤ 1 MiB come from 2 MiB "small" segments; larger
    ones from 20 MiB segments below 10 MiB, else from a segment of the request rounded up to
    2 MiB; a free cached block is reused best-fit and split when the rest is ≥ 512 B (small
    pool) or > 1 MiB (large pool); freed neighbours merge. Segments are kept until
    ``empty_cache``. No ``PYTORCH_CUDA_ALLOC_CONF`` options (``expandable_segments``,
    ``max_split_size_mb``, ``roundup_power2_divisions``) are modelled.
    """

    min_block_bytes: int = 512
    small_size_bytes: int = 1 << 20
    small_buffer_bytes: int = 2 << 20
    large_buffer_bytes: int = 20 << 20
    min_large_alloc_bytes: int = 10 << 20
    round_large_bytes: int = 2 << 20

    def round_size(self, size: int) -> int:
        b = self.min_block_bytes
        return b if size < b else b * -(-size // b)

    def segment_size(self, rounded: int) -> int:
        if rounded <= self.small_size_bytes:
            return self.small_buffer_bytes
        if rounded < self.min_large_alloc_bytes:
            return self.large_buffer_bytes
        r = self.round_large_bytes
        return r * -(-rounded // r)


class _Block:
    __slots__ = ("addr", "next", "prev", "size", "small", "used")

    def __init__(self, addr: int, size: int, small: bool) -> None:
        self.addr = addr
        self.size = size
        self.small = small
        self.used = False
        self.prev: _Block | None = None
        self.next: _Block | None = None


class _Allocator:
    def __init__(self, model: CachingAllocatorModel) -> None:
        self.m = model
        self.free: dict[bool, list[tuple[int, int, _Block]]] = {True: [], False: []}
        self.next_addr = 0
        self.reserved = self.allocated = self.max_allocated = self.segments = 0

    def _insert(self, block: _Block) -> None:
        bisect.insort(self.free[block.small], (block.size, block.addr, block))

    def _remove(self, block: _Block) -> None:
        pool = self.free[block.small]
        i = bisect.bisect_left(pool, (block.size, block.addr))
        if i < len(pool) and pool[i][2] is block:
            del pool[i]

    def malloc(self, size: int) -> _Block:
        m = self.m
        rounded = m.round_size(size)
        small = rounded <= m.small_size_bytes
        pool = self.free[small]
        i = bisect.bisect_left(pool, (rounded, -1))
        if i < len(pool):
            block = pool.pop(i)[2]
        else:
            seg = m.segment_size(rounded)
            block = _Block(self.next_addr, seg, small)
            self.next_addr += seg
            self.reserved += seg
            self.segments += 1
        rest = block.size - rounded
        if (rest >= m.min_block_bytes) if small else (rest > m.small_size_bytes):
            tail = _Block(block.addr + rounded, rest, small)
            tail.prev, tail.next = block, block.next
            if block.next is not None:
                block.next.prev = tail
            block.next = tail
            block.size = rounded
            self._insert(tail)
        block.used = True
        self.allocated += block.size
        self.max_allocated = max(self.max_allocated, self.allocated)
        return block

    def release(self, block: _Block) -> None:
        block.used = False
        self.allocated -= block.size
        for other in (block.prev, block.next):
            if other is None or other.used:
                continue
            self._remove(other)
            if other is block.prev:
                other.size += block.size
                other.next = block.next
                if block.next is not None:
                    block.next.prev = other
                block = other
            else:
                block.size += other.size
                block.next = other.next
                if other.next is not None:
                    other.next.prev = block
        self._insert(block)


def replay_caching_allocator(
    events: list[int],
    sizes: dict[int, int],
    resident: int,
    model: CachingAllocatorModel | None = None,
    steps: int = 2,
) -> AllocatorPeak:
    """Replay a tracked step's allocations through the caching-allocator model.

    ``events[:resident]`` are the storages live before the step (allocated once); the rest of
    the step is replayed ``steps`` times, so that the second pass runs on the cache the first
    left behind, as a steady-state step does after warm-up.
    """
    alloc = _Allocator(model or CachingAllocatorModel())
    live: dict[int, _Block] = {}
    for ev in events[:resident]:
        if ev > 0:
            live[ev] = alloc.malloc(sizes[ev])
    step_events = events[resident:]
    offset = max(sizes, default=0) + 1
    resident_serials = set(live)
    for k in range(steps):
        for ev in step_events:
            serial = abs(ev)
            key = serial if serial in resident_serials else serial + k * offset
            if ev > 0:
                if key not in live:
                    live[key] = alloc.malloc(sizes[serial])
            else:
                block = live.pop(key, None)
                if block is not None:
                    alloc.release(block)
    return AllocatorPeak(alloc.max_allocated, alloc.reserved, alloc.segments)
