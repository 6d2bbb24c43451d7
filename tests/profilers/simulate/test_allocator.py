"""The CUDA caching-allocator model and the replay of a step's allocations on it."""

from __future__ import annotations

from profilers.simulate.allocator import CachingAllocatorModel, replay_caching_allocator

MIB = 2**20


def _replay(sizes: list[int], frees: list[int] | None = None) -> tuple[int, int, int]:
    events = list(range(1, len(sizes) + 1)) + [-s for s in (frees or [])]
    peak = replay_caching_allocator(events, {i + 1: n for i, n in enumerate(sizes)}, resident=0, steps=1)
    return peak.max_allocated_bytes, peak.max_reserved_bytes, peak.segments


def test_allocator_rounds_small_requests_into_a_2_mib_segment() -> None:
    assert _replay([1, 513, 1000]) == (512 + 1024 + 1024, 2 * MIB, 1)


def test_allocator_gives_medium_requests_20_mib_segments_and_large_ones_their_own() -> None:
    assert _replay([3 * MIB]) == (3 * MIB, 20 * MIB, 1)
    assert _replay([3 * MIB, 3 * MIB]) == (6 * MIB, 20 * MIB, 1)  # split from the same segment
    assert _replay([11 * MIB + 1]) == (12 * MIB, 12 * MIB, 1)  # rounded up to 2 MiB


def test_allocator_reuses_freed_blocks_best_fit_and_merges_neighbours() -> None:
    sizes = [4 * MIB, 4 * MIB, 4 * MIB, 8 * MIB]  # three blocks in one 20 MiB segment, then 8 MiB
    events = [1, 2, 3, -1, -2, 4]  # 1 and 2 merge into 8 MiB: 4 reuses it, no new segment
    peak = replay_caching_allocator(events, dict(enumerate(sizes, 1)), resident=0, steps=1)
    assert peak.max_reserved_bytes == 20 * MIB and peak.segments == 1


def test_allocator_steady_state_reuses_the_first_pass_cache() -> None:
    sizes = {1: 64 * MIB, 2: 30 * MIB, 3: 30 * MIB}
    events = [1, 2, -2, 3, -3]  # resident 1, then a step allocating and freeing
    one = replay_caching_allocator(events, sizes, resident=1, steps=1)
    two = replay_caching_allocator(events, sizes, resident=1, steps=2)
    assert one.max_reserved_bytes == two.max_reserved_bytes == 94 * MIB


def test_allocator_model_defaults_are_pytorchs() -> None:
    m = CachingAllocatorModel()
    assert (m.round_size(1), m.round_size(512), m.round_size(513)) == (512, 512, 1024)
    assert m.segment_size(MIB) == 2 * MIB
    assert m.segment_size(MIB + 512) == 20 * MIB
    assert m.segment_size(10 * MIB) == 10 * MIB
