"""PyTorch's CUDA caching allocator, modelled, and a tracked step's allocations replayed on it.

The replay gives the simulated ``max_memory_allocated`` and ``max_memory_reserved`` of a CUDA
target (:class:`~profilers.records.AllocatorPeak`).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from dataclasses import dataclass

from profilers.records import AllocatorPeak

__all__ = ["ALLOC_CONF_MODELLED", "AllocatorPeak", "CachingAllocatorModel", "replay_caching_allocator"]

log = logging.getLogger(__name__)

_MIB = 1 << 20
# PYTORCH_CUDA_ALLOC_CONF options the model follows; others are reported as not modelled
ALLOC_CONF_MODELLED = ("expandable_segments", "max_split_size_mb", "max_non_split_rounding_mb",
                       "roundup_power2_divisions")  # fmt: skip

@dataclass(frozen=True)
class CachingAllocatorModel:
    """The block and segment sizes of PyTorch's CUDA caching allocator (defaults: its own).

    ``c10/cuda/CUDACachingAllocator.cpp`` (constants in ``c10/core/AllocatorConfig.h``): every
    request is rounded up to 512 B; requests ≤ 1 MiB come from 2 MiB "small" segments; larger
    ones from 20 MiB segments below 10 MiB, else from a segment of the request rounded up to
    2 MiB; a free cached block is reused best-fit and split when the rest is ≥ 512 B (small
    pool) or > 1 MiB (large pool); freed neighbours merge. Segments are kept until
    ``empty_cache``.

    ``PYTORCH_CUDA_ALLOC_CONF`` (:meth:`with_alloc_conf`; read in torch 2.x's
    ``CUDACachingAllocator.cpp`` and ``CUDAAllocatorConfig``):

    * ``expandable_segments:True`` — one segment per pool that grows by mapping pages at its end
      (2 MiB pages for the small pool, 20 MiB for the large one: "Note [Expandable
      Segments]"); a free block at the end is extended rather than a new segment made, and
      blocks split whenever ≥ 512 B remain (``should_split``);
    * ``max_split_size_mb`` — cached blocks at least this large are never split; a request
      below it never takes one, a request above it takes one only if it wastes less than
      ``max_non_split_rounding_mb`` (default 20 MiB) (``get_free_block``);
    * ``roundup_power2_divisions:N`` — requests rounded up to one of N steps between powers of
      two (``roundup_power2_next_division``; the per-size list form is not modelled).

    Not modelled: ``garbage_collection_threshold`` (it needs the device's capacity and acts
    only near it) and the out-of-memory retry that frees cached blocks.
    """

    min_block_bytes: int = 512
    small_size_bytes: int = 1 << 20
    small_buffer_bytes: int = 2 << 20
    large_buffer_bytes: int = 20 << 20
    min_large_alloc_bytes: int = 10 << 20
    round_large_bytes: int = 2 << 20
    expandable_segments: bool = False
    max_split_size_bytes: int | None = None  # None: unlimited (torch's default)
    max_non_split_rounding_bytes: int = 20 << 20
    roundup_power2_divisions: int = 0
    small_page_bytes: int = 2 << 20  # expandable segments' page of the small pool
    large_page_bytes: int = 20 << 20  # … and of the large pool

    def with_alloc_conf(self, conf: str) -> tuple[CachingAllocatorModel, tuple[str, ...]]:
        """This model under a ``PYTORCH_CUDA_ALLOC_CONF`` string, and the options in it that
        the model does not follow (logged)."""
        changes: dict[str, object] = {}
        ignored: list[str] = []
        for item in (part.strip() for part in _options(conf)):
            if not item:
                continue
            key, _, value = item.partition(":")
            key, value = key.strip(), value.strip()
            try:
                if key == "expandable_segments":
                    changes["expandable_segments"] = value.lower() in ("true", "1")
                elif key == "max_split_size_mb":
                    changes["max_split_size_bytes"] = int(float(value) * _MIB)
                elif key == "max_non_split_rounding_mb":
                    changes["max_non_split_rounding_bytes"] = int(float(value) * _MIB)
                elif key == "roundup_power2_divisions" and not value.startswith("["):
                    changes["roundup_power2_divisions"] = int(value)
                else:
                    ignored.append(item)
            except ValueError:
                ignored.append(item)
        if ignored:
            log.info("PYTORCH_CUDA_ALLOC_CONF options not modelled: %s", ", ".join(ignored))
        return dataclasses.replace(self, **changes), tuple(ignored)  # type: ignore[arg-type]

    def round_size(self, size: int) -> int:
        b = self.min_block_bytes
        if size < b:
            return b
        divisions = self.roundup_power2_divisions
        if divisions > 1 and size > b * divisions:
            return _next_power2_division(size, divisions)
        return b * -(-size // b)

    def segment_size(self, rounded: int) -> int:
        if rounded <= self.small_size_bytes:
            return self.small_buffer_bytes
        if rounded < self.min_large_alloc_bytes:
            return self.large_buffer_bytes
        r = self.round_large_bytes
        return r * -(-rounded // r)


def _options(conf: str) -> list[str]:
    """The comma-separated options of an alloc conf; commas inside ``[...]`` lists stay."""
    out, depth, current = [], 0, ""
    for ch in conf:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return [*out, current]


def _next_power2_division(size: int, divisions: int) -> int:
    """``roundup_power2_next_division``: ``size`` rounded up to one of ``divisions`` equal
    steps between the powers of two around it."""
    if size & (size - 1) == 0:
        return size
    floor = 1 << (size.bit_length() - 1)
    step = floor >> (divisions.bit_length() - 1)
    if step == 0:
        return floor << 1
    rounded_floor = size & ~(step - 1)
    return size if rounded_floor == size else rounded_floor + step


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
        self.tail: dict[bool, _Block | None] = {True: None, False: None}  # expandable segments' ends

    def _insert(self, block: _Block) -> None:
        bisect.insort(self.free[block.small], (block.size, block.addr, block))

    def _remove(self, block: _Block) -> None:
        pool = self.free[block.small]
        i = bisect.bisect_left(pool, (block.size, block.addr))
        if i < len(pool) and pool[i][2] is block:
            del pool[i]

    def _cached(self, rounded: int, small: bool) -> _Block | None:
        """``get_free_block``: the best-fit cached block, unless max_split_size forbids it."""
        pool = self.free[small]
        i = bisect.bisect_left(pool, (rounded, -1))
        if i == len(pool):
            return None
        block = pool[i][2]
        limit = self.m.max_split_size_bytes
        if limit is not None and not small and not self.m.expandable_segments:
            if rounded < limit <= block.size:
                return None  # an oversize block for a smaller request
            if rounded >= limit and block.size >= rounded + self.m.max_non_split_rounding_bytes:
                return None  # too much of an oversize block wasted
        del pool[i]
        return block

    def _new_segment(self, rounded: int, small: bool) -> _Block:
        seg = self.m.segment_size(rounded)
        block = _Block(self.next_addr, seg, small)
        self.next_addr += seg
        self.reserved += seg
        self.segments += 1
        return block

    def _expand(self, rounded: int, small: bool) -> _Block:
        """Map pages at the end of the pool's one segment: a free block there grows."""
        page = self.m.small_page_bytes if small else self.m.large_page_bytes
        tail = self.tail[small]
        if tail is None:
            self.segments += 1
            # each pool's segment lives in its own address range
            self.next_addr += 1 << 48
        grow_from = tail if tail is not None and not tail.used else None
        need = rounded - (grow_from.size if grow_from is not None else 0)
        mapped = page * -(-need // page)
        self.reserved += mapped
        if grow_from is not None:
            self._remove(grow_from)
            grow_from.size += mapped
            return grow_from
        addr = tail.addr + tail.size if tail is not None else self.next_addr
        block = _Block(addr, mapped, small)
        block.prev = tail
        if tail is not None:
            tail.next = block
        self.tail[small] = block
        return block

    def _should_split(self, block: _Block, rounded: int) -> bool:
        rest = block.size - rounded
        m = self.m
        if block.small or m.expandable_segments:
            return rest >= m.min_block_bytes
        limit = m.max_split_size_bytes
        return (limit is None or rounded < limit) and rest > m.small_size_bytes

    def malloc(self, size: int) -> _Block:
        m = self.m
        rounded = m.round_size(size)
        small = rounded <= m.small_size_bytes
        block = self._cached(rounded, small)
        if block is None:
            block = self._expand(rounded, small) if m.expandable_segments else self._new_segment(rounded, small)
        if self._should_split(block, rounded):
            tail = _Block(block.addr + rounded, block.size - rounded, small)
            tail.prev, tail.next = block, block.next
            if block.next is not None:
                block.next.prev = tail
            elif self.tail[small] is block:
                self.tail[small] = tail
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
                if self.tail[block.small] is block:
                    self.tail[block.small] = other
                block = other
            else:
                block.size += other.size
                block.next = other.next
                if other.next is not None:
                    other.next.prev = block
                if self.tail[block.small] is other:
                    self.tail[block.small] = block
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
