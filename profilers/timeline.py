"""Memory over time: the live bytes of one step by category, from the tracker's event log.

The :class:`~profilers.tracker.TensorMemoryTracker` logs every allocation and free of the step
(``+serial``/``-serial``), the role of each storage, where each phase began and the aten op
that made each storage. :func:`build_timeline` replays that log into a :class:`MemoryTimeline`:

* samples ``(t, live bytes per category)`` where ``t`` is the event index (one event per
  allocation or free; the step's own clock, not seconds). Every event is kept up to
  ``max_samples``; past that, events are cut into ``max_samples`` equal buckets and each bucket
  keeps its sample with the most live bytes, so the peak and every local high survive;
* the phase spans (forward, backward, optimizer, zero_grad), the peak's moment and phase, and
  the largest tensors alive at the peak with the op that made them (``resident`` for what was
  registered before the step: parameters, optimizer state, the batch).

:func:`memory_viz_snapshot` turns the same log into the dict ``torch.cuda.memory._snapshot()``
returns (torch 2.13: ``segments`` with ``blocks``, ``device_traces`` with ``alloc`` /
``free_requested`` / ``free_completed`` entries), so that pytorch.org/memory_viz opens a
simulated step as if a GPU had recorded it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CATEGORIES", "LiveTensor", "MemoryTimeline", "PhaseSpan", "build_timeline", "memory_viz_snapshot"]

# the stacking order of a chart: what stays for the whole step at the bottom
CATEGORIES = ("parameter", "buffer", "optimizer", "gradient", "input", "activation", "communication")


@dataclass(frozen=True)
class PhaseSpan:
    """A phase of the step, from event ``start`` up to (not including) event ``end``."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class LiveTensor:
    """A storage alive at the peak: its bytes, role, and the aten op that made it."""

    nbytes: int
    category: str
    op: str  # e.g. "aten.mm.default"; "resident" when it was registered before the step


@dataclass(frozen=True)
class MemoryTimeline:
    """Live bytes by category over one step (see the module docstring). ``live[c][i]`` is the
    bytes of category ``categories[c]`` after event ``t[i]``."""

    categories: tuple[str, ...]
    t: tuple[int, ...]
    live: tuple[tuple[int, ...], ...]
    phases: tuple[PhaseSpan, ...]
    events: int  # events in the whole log
    peak_t: int
    peak_bytes: int
    peak_phase: str
    top_tensors: tuple[LiveTensor, ...]
    downsampled: bool = False

    def totals(self) -> list[int]:
        """Live bytes of all categories at each sample."""
        return [sum(col) for col in zip(*self.live, strict=True)] if self.live else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "t": list(self.t),
            "live": [list(s) for s in self.live],
            "phases": [{"name": p.name, "start": p.start, "end": p.end} for p in self.phases],
            "events": self.events,
            "peak_t": self.peak_t,
            "peak_bytes": self.peak_bytes,
            "peak_phase": self.peak_phase,
            "top_tensors": [{"nbytes": x.nbytes, "category": x.category, "op": x.op} for x in self.top_tensors],
            "downsampled": self.downsampled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryTimeline:
        return cls(
            categories=tuple(data["categories"]),
            t=tuple(int(x) for x in data["t"]),
            live=tuple(tuple(int(x) for x in s) for s in data["live"]),
            phases=tuple(PhaseSpan(str(p["name"]), int(p["start"]), int(p["end"])) for p in data["phases"]),
            events=int(data["events"]),
            peak_t=int(data["peak_t"]),
            peak_bytes=int(data["peak_bytes"]),
            peak_phase=str(data["peak_phase"]),
            top_tensors=tuple(
                LiveTensor(int(x["nbytes"]), str(x["category"]), str(x["op"])) for x in data.get("top_tensors", ())
            ),
            downsampled=bool(data.get("downsampled", False)),
        )


def _phase_spans(marks: Sequence[tuple[int, str]], n_events: int) -> tuple[PhaseSpan, ...]:
    spans: list[PhaseSpan] = []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n_events
        if spans and spans[-1].name == name:
            spans[-1] = PhaseSpan(name, spans[-1].start, end)
        elif end > start or i == len(marks) - 1:
            spans.append(PhaseSpan(name, start, end))
    return tuple(spans)


def build_timeline(
    events: Sequence[int],
    nbytes: Mapping[int, int],
    roles: Mapping[int, str],
    phase_marks: Sequence[tuple[int, str]],
    ops: Mapping[int, str],
    *,
    max_samples: int = 2000,
    top: int = 10,
    start: int = 0,
) -> MemoryTimeline:
    """Replay an event log (``+serial`` allocated, ``-serial`` freed) into a timeline; the
    first ``start`` events (the storages registered before the step) are its starting state,
    not samples."""
    if max_samples < 2:
        raise ValueError(f"max_samples must be at least 2, got {max_samples}")
    index = {c: i for i, c in enumerate(CATEGORIES)}
    live = [0] * len(CATEGORIES)
    n = len(events)
    start = min(start, n)
    for ev in events[:start]:
        serial = ev if ev > 0 else -ev
        live[index[roles[serial]]] += nbytes[serial] if ev > 0 else -nbytes[serial]
    bucket = max(1, -(-(n - start) // max_samples))  # ceil
    ts: list[int] = []
    cols: list[list[int]] = [[] for _ in CATEGORIES]
    best_t, best_total, best_row = -1, -1, live[:]
    peak_t, peak_total = start, sum(live)
    ts.append(start)  # the state the step starts from
    for c, v in enumerate(live):
        cols[c].append(v)
    for i, ev in enumerate(events[start:], start=start + 1):
        serial = ev if ev > 0 else -ev
        live[index[roles[serial]]] += nbytes[serial] if ev > 0 else -nbytes[serial]
        total = sum(live)
        if total > peak_total:
            peak_total, peak_t = total, i
        if total > best_total:
            best_t, best_total, best_row = i, total, live[:]
        if (i - start) % bucket == 0 or i == n:
            ts.append(best_t)
            for c, v in enumerate(best_row):
                cols[c].append(v)
            best_total = -1
    alive: set[int] = set()
    for ev in events[:peak_t]:
        if ev > 0:
            alive.add(ev)
        else:
            alive.discard(-ev)
    biggest = sorted(alive, key=lambda s: (-nbytes[s], s))[:top]
    phases = _phase_spans([(max(m, start), name) for m, name in phase_marks], n)
    peak_phase = next((p.name for p in phases if p.start < peak_t <= p.end), phases[0].name if phases else "")
    # the largest storages alive at the peak, largest first
    return MemoryTimeline(
        categories=CATEGORIES,
        t=tuple(ts),
        live=tuple(tuple(c) for c in cols),
        phases=phases,
        events=n,
        peak_t=peak_t,
        peak_bytes=peak_total,
        peak_phase=peak_phase,
        top_tensors=tuple(LiveTensor(nbytes[s], roles[s], ops.get(s, "resident")) for s in biggest),
        downsampled=bucket > 1,
    )


def memory_viz_snapshot(
    events: Sequence[int],
    nbytes: Mapping[int, int],
    roles: Mapping[int, str],
    ops: Mapping[int, str],
    *,
    resident: int = 0,
    device: int = 0,
) -> dict[str, Any]:
    """The step as ``torch.cuda.memory._snapshot()`` lays it out (torch 2.13,
    torch/cuda/memory.py ``_snapshot`` and torch/cuda/_memory_viz.py): one segment per storage
    alive at the end, and a device trace of ``alloc`` / ``free_requested`` / ``free_completed``
    actions with addresses, sizes and a frame naming the op (``name``) and the role
    (``filename``). Sizes are the exact tensor bytes, not the caching allocator's rounded
    blocks; addresses are distinct and 512-aligned.
    The first ``resident`` allocations (what lived before the step) are the segments'
    ``active_allocated`` blocks with no trace entry, as a snapshot taken mid-run shows them.
    """
    addr_of: dict[int, int] = {}
    next_addr = 0x7F0000000000

    def frames(serial: int) -> list[dict[str, Any]]:
        return [{"filename": f"{roles[serial]}", "line": 0, "name": ops.get(serial, "resident")}]

    live_at_end: set[int] = set()
    trace: list[dict[str, Any]] = []
    for i, ev in enumerate(events):
        serial = ev if ev > 0 else -ev
        if ev > 0:
            addr_of[serial] = next_addr
            next_addr += -(-nbytes[serial] // 512) * 512  # distinct, 512-aligned addresses
            live_at_end.add(serial)
            if i < resident:
                continue
            trace.append({"action": "alloc", "addr": addr_of[serial], "size": nbytes[serial],
                          "stream": 0, "frames": frames(serial), "time_us": i})  # fmt: skip
        else:
            live_at_end.discard(serial)
            for action in ("free_requested", "free_completed"):
                trace.append({"action": action, "addr": addr_of[serial], "size": nbytes[serial],
                              "stream": 0, "frames": frames(serial), "time_us": i})  # fmt: skip
    segments = []
    for serial in sorted(live_at_end, key=lambda s: addr_of[s]):
        size = nbytes[serial]
        segments.append({
            "device": device, "address": addr_of[serial], "total_size": size, "allocated_size": size,
            "active_size": size, "requested_size": size, "stream": 0, "segment_type": "large",
            "segment_pool_id": (0, 0), "is_expandable": False, "frames": frames(serial),
            "blocks": [{"address": addr_of[serial], "size": size, "requested_size": size,
                        "state": "active_allocated", "frames": frames(serial)}],
        })  # fmt: skip
    traces: list[list[dict[str, Any]]] = [[] for _ in range(device + 1)]
    traces[device] = trace
    return {"segments": segments, "device_traces": traces, "allocator_settings": {}}
