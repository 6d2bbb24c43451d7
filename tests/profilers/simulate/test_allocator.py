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


# -- PYTORCH_CUDA_ALLOC_CONF -------------------------------------------------------------------


def _replay_with(conf: str, sizes: list[int], events: list[int]) -> tuple[int, int, int]:
    model, ignored = CachingAllocatorModel().with_alloc_conf(conf)
    assert ignored == ()
    peak = replay_caching_allocator(events, dict(enumerate(sizes, 1)), resident=0, model=model, steps=1)
    return peak.max_allocated_bytes, peak.max_reserved_bytes, peak.segments


# five 12 MiB activations, freed; then five of 13 MiB (the "batch N, then N + 1" case)
_GROWN = ([12 * MIB] * 5 + [13 * MIB] * 5, [1, 2, 3, 4, 5, -1, -2, -3, -4, -5, 6, 7, 8, 9, 10])


def test_expandable_segments_grow_one_segment_instead_of_leaving_slivers() -> None:
    default = _replay_with("", *_GROWN)
    # 12 MiB blocks cannot take 13 MiB requests: five new 14 MiB segments (rounded to 2 MiB)
    assert default == (70 * MIB, 5 * 12 * MIB + 5 * 14 * MIB, 10)
    allocated, reserved, segments = _replay_with("expandable_segments:True", *_GROWN)
    # one large-pool segment of 20 MiB pages: 60 MiB mapped, freed into one block, the 13 MiB
    # requests tile it, the fifth maps one more page at the end
    assert (allocated, segments) == (65 * MIB, 1)
    assert reserved == 80 * MIB and reserved - allocated < 20 * MIB  # within one large page


def test_max_split_size_keeps_oversize_blocks_whole() -> None:
    sizes, events = [100 * MIB, 30 * MIB, 70 * MIB], [1, -1, 2, -2, 3]
    assert _replay_with("", sizes, events)[1] == 100 * MIB  # both split from the cached 100 MiB
    allocated, reserved, segments = _replay_with("max_split_size_mb:64", sizes, events)
    # 30 MiB (< 64) may not take the oversize 100 MiB block: its own segment. 70 MiB (≥ 64) may
    # take a cached oversize block only if it wastes < 20 MiB: 100 − 70 = 30, so its own too
    assert (reserved, segments) == (200 * MIB, 3)
    allocated, reserved, _ = _replay_with("max_split_size_mb:64,max_non_split_rounding_mb:40", sizes, events)
    assert reserved == 130 * MIB and allocated == 100 * MIB  # 70 MiB took the whole 100 MiB block


def test_roundup_power2_divisions_round_requests_to_division_steps() -> None:
    model, _ = CachingAllocatorModel().with_alloc_conf("roundup_power2_divisions:4")
    assert model.round_size(5 * MIB + 1) == 6 * MIB  # between 4 and 8 MiB, in steps of 1 MiB
    assert model.round_size(4 * MIB) == 4 * MIB and model.round_size(1000) == 1024
    assert CachingAllocatorModel().round_size(5 * MIB + 1) == 5 * MIB + 512


def test_options_the_model_does_not_follow_are_named() -> None:
    model, ignored = CachingAllocatorModel().with_alloc_conf(
        "garbage_collection_threshold:0.8, expandable_segments:True,roundup_power2_divisions:[256:1,>:8]"
    )
    assert model.expandable_segments
    assert ignored == ("garbage_collection_threshold:0.8", "roundup_power2_divisions:[256:1,>:8]")


def test_a_simulation_follows_the_alloc_conf_of_its_environment(monkeypatch: object) -> None:
    import pytest

    import advisor

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    peaks = {}
    for conf in ("", "expandable_segments:True"):
        mp.setenv("PYTORCH_CUDA_ALLOC_CONF", conf)
        result = advisor.simulate("tiny-llama", "baseline", batch_size=2, seq_len=64)
        assert result.simulation is not None and result.simulation.cuda_allocator is not None
        peaks[conf] = result.simulation.cuda_allocator
    default, expandable = peaks[""], peaks["expandable_segments:True"]
    assert expandable.max_allocated_bytes == default.max_allocated_bytes  # same blocks either way
    assert expandable.segments == 2 < default.segments  # one segment per pool
    assert expandable.max_reserved_bytes < default.max_reserved_bytes
