"""A collective's buffers that the backend's own thread frees a moment after the step dropped them
(torch 2.13's gloo reduce-scatter reduces a copy of its input, held by the call's ``Work``, which
gloo's worker thread may drop after the main thread went on): the tracker waits for that release,
so the peak is the collective's layout, not the thread scheduler's."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
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


class _Gloo:
    """Stand-ins for FSDP2's ``FSDPParamGroup.unshard`` / ``wait_for_unshard`` (torch 2.13) on a
    synchronous gloo all-gather: the flat output is allocated in ``unshard``; ``wait_for_unshard``
    drops it (or, in forward, keeps it in ``comm_ctx.all_gather_state`` and drops the one kept
    before), while gloo's worker thread holds the finished ``Work``, and the output, ``hold_s``
    longer."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.threads: list[threading.Thread] = []

    def held_late(self, obj: Any) -> None:
        work = [obj]

        def worker() -> None:
            time.sleep(self.hold_s)
            work.clear()

        thread = threading.Thread(target=worker)
        thread.start()
        self.threads.append(thread)

    def unshard(self, group: Any, async_op: bool = False) -> None:
        result = SimpleNamespace(all_gather_output=torch.empty(group.numel), all_gather_work=None)
        setattr(group, group.result_attr, result)

    def wait_for_unshard(self, group: Any) -> None:
        result = getattr(group, group.result_attr)
        setattr(group, group.result_attr, None)
        self.held_late(result)
        if group.forward:
            prev, group.comm_ctx.all_gather_state = group.comm_ctx.all_gather_state, SimpleNamespace(
                all_gather_result=result
            )
            if prev is not None:
                self.held_late(prev)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def _group(numel: int, ctx: Any, *, forward: bool, result_attr: str = "_all_gather_result") -> Any:
    group = SimpleNamespace(numel=numel, forward=forward, comm_ctx=ctx, result_attr=result_attr,
                            _all_gather_output=torch.empty(0))  # fmt: skip
    setattr(group, result_attr, None)
    return group


@pytest.fixture
def gloo(monkeypatch: pytest.MonkeyPatch) -> Any:
    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup

    fake = _Gloo(hold_s=0.05)
    monkeypatch.setattr(FSDPParamGroup, "unshard", fake.unshard)
    monkeypatch.setattr(FSDPParamGroup, "wait_for_unshard", fake.wait_for_unshard)
    yield fake
    fake.join()
    assert FSDPParamGroup.unshard == fake.unshard  # the tracker's patches are undone
    assert FSDPParamGroup.wait_for_unshard == fake.wait_for_unshard


def test_all_gather_output_dropped_after_copy_out_counts_until_dropped(gloo: _Gloo) -> None:
    """Backward (as under fsdp2+lora at the root): the root's output is copied out and dropped,
    then the prefetch of the last block all-gathers its own."""
    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup

    ctx = SimpleNamespace(all_gather_state=None)
    root, last = _group(2 * N, ctx, forward=False), _group(3 * N, ctx, forward=False)
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        FSDPParamGroup.unshard(root)  # 8,000 bytes
        FSDPParamGroup.wait_for_unshard(root)
        FSDPParamGroup.unshard(last)  # 12,000 bytes
        FSDPParamGroup.wait_for_unshard(last)
    peak = tracker.result()
    tracker.close()
    # one output at a time: 12,000; the root's held by gloo's thread through the prefetch: 20,000
    assert peak.peak_bytes == 3 * N * 4


def test_all_gather_outputs_kept_in_forward_count_until_the_next_copy_out(gloo: _Gloo) -> None:
    """Forward keeps each output for the next group's copy-out; the root's post-forward drops the
    last one (not a method the tracker wraps: its next phase waits for it)."""
    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup

    ctx = SimpleNamespace(all_gather_state=None)
    first, second = _group(2 * N, ctx, forward=True), _group(3 * N, ctx, forward=True)
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        FSDPParamGroup.unshard(first)  # 8,000
        FSDPParamGroup.wait_for_unshard(first)  # kept
        FSDPParamGroup.unshard(second)  # + 12,000: both live, as FSDP2 keeps them
        FSDPParamGroup.wait_for_unshard(second)  # drops the first's, keeps its own
        gloo.held_late(ctx.all_gather_state)
        ctx.all_gather_state = None  # the root's post-forward
        tracker.set_phase("backward")
        grads = torch.empty(6 * N)  # 24,000
    peak = tracker.result()
    tracker.close()
    # max(8,000 + 12,000, 24,000); either output held by gloo's thread into backward: 44,000
    assert peak.peak_bytes == 6 * N * 4
    assert grads.numel() == 6 * N


def test_all_gather_wait_falls_back_without_torchs_private_attributes(gloo: _Gloo) -> None:
    """A torch whose groups keep their result elsewhere: nothing to wait for, the tracker counts
    what it sees (a late release included) and does not fail."""
    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup

    gloo.hold_s = 0.5
    other = _group(2 * N, SimpleNamespace(), forward=False, result_attr="_result")  # no all_gather_state
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        start = time.monotonic()
        FSDPParamGroup.unshard(other)
        FSDPParamGroup.wait_for_unshard(other)  # nothing it knows of to wait for: returns at once
        after = torch.empty(3 * N)
        tracker.set_phase("backward")
        returned_s = time.monotonic() - start
    peak = tracker.result()
    tracker.close()
    assert peak.peak_bytes == 5 * N * 4  # the late one still counted
    assert after.numel() == 3 * N
    assert returned_s < gloo.hold_s
