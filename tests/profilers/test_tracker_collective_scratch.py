"""A collective's buffers that the backend's own thread frees a moment after the step dropped them
(torch 2.13's gloo reduce-scatter reduces a copy of its input, held by the call's ``Work``, which
gloo's worker thread may drop after the main thread went on): the tracker waits for that release,
so the peak is the collective's layout, not the thread scheduler's."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch
import torch.distributed as dist

from profilers.tracker import TensorMemoryTracker

N = 1_000  # fp32 elements: 4,000 bytes


def _late_reduce_scatter(hold_s: float, held: list[threading.Thread]) -> Any:
    """A synchronous reduce-scatter whose input copy a worker thread frees ``hold_s`` later."""

    def reduce_scatter_single(output: torch.Tensor, input: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        scratch = [input.clone()]  # gloo's copy of the whole input

        def worker() -> None:
            time.sleep(hold_s)
            scratch.clear()  # the worker drops the Work, and the copy with it

        thread = threading.Thread(target=worker)
        thread.start()
        held.append(thread)
        output.copy_(input[: output.numel()])

    return reduce_scatter_single


def test_scratch_freed_late_by_another_thread_counts_for_the_call_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held: list[threading.Thread] = []
    monkeypatch.setattr(dist, "reduce_scatter_single", _late_reduce_scatter(0.05, held))
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        grads = torch.empty(N)  # the reduce-scatter input: 4,000 bytes
        out = torch.empty(N // 4)  # this rank's chunk: 1,000 bytes
        dist.reduce_scatter_single(out, grads)  # the copy, 4,000 bytes, for the call
        after = torch.empty(2 * N)  # what the step allocates next: 8,000 bytes
    peak = tracker.result()
    tracker.close()
    for thread in held:
        thread.join()
    # during the call: grads + out + copy = 9,000; after it: grads + out + after = 13,000.
    # Counting the copy until the worker freed it (50 ms later) would give 17,000
    assert peak.peak_bytes == (N + N // 4 + 2 * N) * 4
    assert after.numel() == 2 * N
    # the patch is undone on exit
    assert dist.reduce_scatter_single.__name__ == "reduce_scatter_single"
    assert "waiting" not in repr(dist.reduce_scatter_single)


def test_all_gather_output_freed_late_by_another_thread_counts_until_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FSDP2 drops an asynchronous all-gather's flat output after its copy-out (torch 2.13,
    ``FSDPParamGroup.wait_for_unshard``); gloo's worker thread may hold it a moment longer."""
    from types import SimpleNamespace

    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup

    held: list[threading.Thread] = []

    def wait_for_unshard(group: Any) -> None:  # the copy-out, then the result dropped
        work = [group._all_gather_result]  # gloo's Work holds the output

        def worker() -> None:
            time.sleep(0.05)
            work.clear()

        thread = threading.Thread(target=worker)
        thread.start()
        held.append(thread)
        group._all_gather_result = None

    monkeypatch.setattr(FSDPParamGroup, "wait_for_unshard", wait_for_unshard)
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        result = SimpleNamespace(all_gather_output=torch.empty(2 * N), all_gather_work=object())
        group = SimpleNamespace(_all_gather_result=result, comm_ctx=SimpleNamespace(all_gather_state=None))
        del result
        FSDPParamGroup.wait_for_unshard(group)  # type: ignore[arg-type]
        after = torch.empty(3 * N)  # the next allocation: 12,000 bytes
    peak = tracker.result()
    tracker.close()
    for thread in held:
        thread.join()
    # the output (8,000) until dropped, then ``after`` (12,000); both would give 20,000
    assert peak.peak_bytes == 3 * N * 4
    assert after.numel() == 3 * N
    assert FSDPParamGroup.wait_for_unshard is wait_for_unshard  # the tracker's patch is undone
