"""FSDP2 frees and re-allocates its gathered parameters in place (``storage.resize_``): the
tracker counts those bytes freed and allocated again, to the byte (torch 2.13's
``free_storage`` / ``alloc_storage`` in ``torch/distributed/fsdp/_fully_shard/_fsdp_param.py``)."""

from __future__ import annotations

import torch
from torch.distributed.fsdp._fully_shard import _fsdp_param, _fsdp_param_group

from profilers.tracker import TensorMemoryTracker

N = 1_000  # fp32 elements of each buffer: 4,000 bytes


def test_resize_away_and_back_counts_as_free_and_new_allocation() -> None:
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        gathered = torch.empty(N)  # an all-gather output: 4,000 bytes
        _fsdp_param.free_storage(gathered)  # reshard after forward
        other = torch.empty(2 * N)  # the next block's, larger: 8,000 bytes
        del other
        _fsdp_param_group.alloc_storage(gathered)  # unshard again for backward (imported by name)
        again = torch.empty(N)
    peak = tracker.result()
    tracker.close()
    # live at most 8,000: ``other`` alone, then the gathered buffer back and ``again``;
    # counting the resized-away buffer as live would give 12,000
    assert peak.peak_bytes == 2 * N * 4
    assert gathered.untyped_storage().nbytes() == N * 4 and again.numel() == N
    # the patch is undone on exit
    assert _fsdp_param.free_storage.__module__ == _fsdp_param.__name__
    assert _fsdp_param_group.alloc_storage.__module__ == _fsdp_param.__name__


def test_storage_freed_after_resize_is_not_counted_twice() -> None:
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        gathered = torch.empty(N)
        _fsdp_param.free_storage(gathered)
        del gathered  # the storage dies while resized away: no second free
        kept = torch.empty(2 * N)
    peak = tracker.result()
    tracker.close()
    assert peak.peak_bytes == 2 * N * 4  # ``kept`` alone; freeing ``gathered`` twice would give N × 4
    assert kept.numel() == 2 * N
