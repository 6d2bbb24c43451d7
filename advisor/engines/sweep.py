"""Sweeps: many plans run as trials, one after another, that never die and never lose a result.

Each plan's :class:`~profilers.records.TrialResult` is appended to a JSON Lines results file as
soon as it arrives (flushed and fsync'd), so Ctrl-C or a crash leaves every finished result on
disk. Re-running the same sweep on the same file resumes: plans whose key
``(model, plan, batch_size, seq_len, device)`` is already in the file are not run again.

The results file::

    {"kind": "vram-advisor/sweep", "schema_version": 1, "created": …, "environment": {…},
     "sweep": {"model": …, "batch_size": …, "seq_len": …, "device": …, "plans": […], …}}
    {"kind": "result", "key": {"model": …, "plan": …, "batch_size": …, "seq_len": …,
     "device": …}, "result": {…TrialResult.to_dict()…}}
    …

one JSON object per line, keys sorted. A damaged last line (a crash mid-write) is dropped on
resume; a later line for the same key replaces an earlier one.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from torch import nn

from advisor.core.errors import ReportError
from advisor.core.io import check_writable
from advisor.engines.measure import check_measurable, measure_plan
from advisor.models import ModelSource, resolve_model
from advisor.plans import BASELINE, Plan
from advisor.plans.cuts import PlanSpace, PrunedPlan, user_plans
from profilers.records import TrialResult, TrialStatus
from profilers.trial import resolve_device

log = logging.getLogger(__name__)

SWEEP_KIND = "vram-advisor/sweep"
RESULT_KIND = "result"
SWEEP_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SweepKey:
    """What identifies a finished trial in a results file."""

    model: str
    plan: str
    batch_size: int
    seq_len: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "plan": self.plan,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "device": self.device,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepKey:
        return cls(
            str(data["model"]),
            str(data["plan"]),
            int(data["batch_size"]),
            int(data["seq_len"]),
            str(data["device"]),
        )


@dataclass(frozen=True)
class SweepProgress:
    """One progress event: ``kind`` is ``start``, ``stage`` (a trial step), ``done`` (the
    result is on disk) or ``reused`` (taken from the results file)."""

    kind: str
    index: int  # 1-based
    total: int
    plan: str
    elapsed_s: float  # since this plan started
    sweep_elapsed_s: float  # since the sweep started
    message: str = ""
    result: TrialResult | None = None

    def __str__(self) -> str:
        head = f"plan {self.index}/{self.total} {self.plan}"
        if self.kind == "reused":
            return f"{head}: done before, reused"
        if self.kind == "done" and self.result is not None:
            status = self.result.status.value
            why = f" — {self.result.reason}" if self.result.reason else ""
            return f"{head}: {status}{why} ({self.elapsed_s:.1f} s)"
        return f"{head}: {self.message or self.kind} ({self.elapsed_s:.1f} s)"


SweepCallback = Callable[[SweepProgress], None]


@dataclass(frozen=True)
class PlanChange:
    """One plan's figures and their change against the baseline (``None`` where unknown)."""

    plan: str
    status: TrialStatus
    reason: str | None
    peak_bytes: int | None
    peak_change: float | None  # fraction: -0.25 is 25 % less than the baseline
    tokens_per_s: float | None
    tokens_per_s_change: float | None  # fraction
    trainable: int | None
    trainable_change: int | None  # parameters, against the baseline
    accumulation_steps: int = 1


def _fraction(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base - 1.0


@dataclass(frozen=True)
class SweepResult:
    """Every plan's result (in plan order, reused ones included) and the plans pruned."""

    model: str
    batch_size: int
    seq_len: int
    device: str
    results: tuple[TrialResult, ...]
    pruned: tuple[PrunedPlan, ...] = ()
    reused: tuple[str, ...] = ()  # plan names taken from the results file
    path: Path | None = None

    def result(self, plan: str) -> TrialResult | None:
        """The result of the plan named ``plan``."""
        return next((r for r in self.results if r.plan == plan), None)

    @property
    def baseline(self) -> TrialResult | None:
        base = self.result(BASELINE)
        return base if base is not None and base.ok else None

    def changes(self) -> tuple[PlanChange, ...]:
        """Each plan against the baseline: peak, tokens/s, trainable parameters."""
        base = self.baseline
        base_peak = base.tensor_peak.peak_bytes if base and base.tensor_peak else None
        base_tps = base.timing.tokens_per_s if base and base.timing else None
        base_train = base.params.trainable if base and base.params else None
        out = []
        for r in self.results:
            peak = r.tensor_peak.peak_bytes if r.tensor_peak else None
            tps = r.timing.tokens_per_s if r.timing else None
            train = r.params.trainable if r.params else None
            out.append(
                PlanChange(
                    plan=r.plan,
                    status=r.status,
                    reason=r.reason,
                    peak_bytes=peak,
                    peak_change=_fraction(peak, base_peak),
                    tokens_per_s=tps,
                    tokens_per_s_change=_fraction(tps, base_tps),
                    trainable=train,
                    trainable_change=train - base_train
                    if train is not None and base_train is not None
                    else None,
                    accumulation_steps=r.accumulation_steps,
                )
            )
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "device": self.device,
            "results": [r.to_dict() for r in self.results],
            "pruned": [{"plan": p.plan, "reason": p.reason, "kind": p.kind} for p in self.pruned],
            "reused": list(self.reused),
            "path": str(self.path) if self.path else None,
        }


# -- the results file --------------------------------------------------------------------------


@dataclass
class SweepFile:
    """What a results file holds: its header and the last result for each key."""

    path: Path
    header: dict[str, Any] | None = None
    results: dict[SweepKey, TrialResult] = field(default_factory=dict)
    damaged_lines: int = 0


def _not_ours(path: Path, why: str) -> ReportError:
    return ReportError(
        f"{path} is not a vram-advisor sweep results file ({why})",
        "give another results file: out=PATH, or move that file away",
    )


def read_sweep_file(path: str | Path) -> SweepFile:
    """Read a results file; a missing or empty file reads as empty. Damaged lines are skipped
    with a warning; a file that is not ours raises :class:`ReportError`."""
    path = Path(path)
    found = SweepFile(path)
    if not path.exists():
        return found
    if not path.is_file():
        raise _not_ours(path, "it is not a file")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1]  # anything after the last newline is a line cut short by a crash
    tail = lines[-1].strip()
    if tail:
        if not any(line.strip() for line in complete) and not tail.startswith(_HEADER_START):
            raise _not_ours(path, "it does not start with a sweep header")
        log.warning("%s: ignoring a damaged last line (a write cut short)", path)
        found.damaged_lines += 1
    first = True
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if first:
                raise _not_ours(path, "its first line is not JSON") from None
            log.warning("%s:%d: skipping a damaged line", path, number)
            found.damaged_lines += 1
            continue
        if first:
            if not isinstance(doc, dict) or doc.get("kind") != SWEEP_KIND:
                raise _not_ours(path, "no sweep header on its first line")
            version = doc.get("schema_version")
            if isinstance(version, int) and version > SWEEP_SCHEMA_VERSION:
                log.warning(
                    "%s has schema version %s, newer than this vram-advisor's %s; reading what it can",
                    path,
                    version,
                    SWEEP_SCHEMA_VERSION,
                )
            found.header = doc
            first = False
            continue
        if not isinstance(doc, dict) or doc.get("kind") != RESULT_KIND:
            continue  # a record kind from a newer version
        try:
            key = SweepKey.from_dict(doc["key"])
            found.results[key] = TrialResult.from_dict(doc["result"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s:%d: skipping an unreadable result (%s)", path, number, exc)
            found.damaged_lines += 1
    return found


# how every header line begins (keys sorted, compact): a file holding only a line cut short is
# one of ours only if that line begins so
_HEADER_START = b'{"created":'


def _drop_partial_tail(path: Path) -> None:
    """Cut a line left half-written by a crash, so the next append starts on a fresh line."""
    with path.open("rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)


def _write_line(fh: IO[str], doc: dict[str, Any]) -> None:
    fh.write(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


@contextmanager
def _appender(path: Path, header: dict[str, Any]) -> Iterator[Callable[[SweepKey, TrialResult], None]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists() or path.stat().st_size == 0
    if not fresh:
        _drop_partial_tail(path)
        fresh = path.stat().st_size == 0  # the header itself was cut short
    with path.open("a", encoding="utf-8") as fh:
        if fresh:
            _write_line(fh, header)

        def append(key: SweepKey, result: TrialResult) -> None:
            _write_line(fh, {"kind": RESULT_KIND, "key": key.to_dict(), "result": result.to_dict()})

        yield append


def _header(
    model: str, batch_size: int, seq_len: int, device: str, steps: int, warmup: int, space: PlanSpace
) -> dict[str, Any]:
    from advisor.core.io import environment

    return {
        "kind": SWEEP_KIND,
        "schema_version": SWEEP_SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "sweep": {
            "model": model,
            "batch_size": batch_size,
            "seq_len": seq_len,
            "device": device,
            "steps": steps,
            "warmup_steps": warmup,
            "plans": [p.name for p in space.plans],
            "pruned": [{"plan": p.plan, "reason": p.reason, "kind": p.kind} for p in space.pruned],
        },
    }


# -- running -----------------------------------------------------------------------------------


class _Events:
    """Progress events of one plan, timed from the plan's start."""

    def __init__(self, say: SweepCallback, index: int, total: int, plan: str, sweep_started: float) -> None:
        self.say, self.index, self.total, self.plan = say, index, total, plan
        self.sweep_started = sweep_started
        self.started = time.perf_counter()

    def __call__(self, kind: str, message: str = "", result: TrialResult | None = None) -> None:
        now = time.perf_counter()
        self.say(
            SweepProgress(
                kind, self.index, self.total, self.plan, now - self.started, now - self.sweep_started,
                message, result,
            )
        )  # fmt: skip

    def stage(self, message: str) -> None:
        self("stage", message)


def _run_plan(
    plan: Plan,
    source: ModelSource,
    key: SweepKey,
    steps: int,
    warmup_steps: int,
    stage: Callable[[str], None],
) -> TrialResult:
    try:
        return measure_plan(
            plan, source, key.batch_size, key.seq_len, device=key.device, steps=steps,
            warmup_steps=warmup_steps, progress=stage,
        )  # fmt: skip
    except Exception as exc:  # run_trial never raises for a plan; this is belt and braces
        log.debug("plan %s failed outside its trial", plan.name, exc_info=True)
        text = " ".join(str(exc).split())[:600] or type(exc).__name__
        return TrialResult(
            model=source.name,
            plan=plan.name,
            cuts=plan.cut_names,
            device=key.device,
            batch_size=key.batch_size,
            seq_len=key.seq_len,
            status=TrialStatus.ERROR,
            reason=f"{type(exc).__name__}: {text}",
        )


def sweep(
    model: str | nn.Module | ModelSource,
    plans: PlanSpace | Iterable[Plan | str],
    *,
    batch_size: int = 4,
    seq_len: int = 128,
    device: str = "auto",
    steps: int = 3,
    warmup_steps: int = 1,
    out: str | Path | None = None,
    progress: SweepCallback | None = None,
    retry_failed: bool = False,
) -> SweepResult:
    """Run each plan as a trial and return every result.

    A plan that fails (out of memory, unsupported here, a model or plan error) gets a result
    with its status and reason, and the sweep goes on. With ``out``, each result is appended to
    that JSON Lines file as it arrives, and plans already there (same model, plan name, batch,
    sequence length and device) are reused instead of run; ``retry_failed`` runs the failed ones
    again. ``plans`` is a :class:`PlanSpace` or a list of plans (``Plan`` or ``"lora+sgd"``),
    run in order after dropping duplicates and conflicting or redundant plans.
    KeyboardInterrupt propagates after every finished result is on disk.
    """

    source = resolve_model(model)
    source.check_sizes(batch_size, seq_len)
    space = plans if isinstance(plans, PlanSpace) else user_plans(plans, baseline=False)
    dev = str(resolve_device(device))
    check_measurable(source, dev)  # an 8B preset is simulated (`simulate --sweep`), not measured
    path = check_writable(out) if out is not None else None
    done = read_sweep_file(path).results if path is not None else {}
    say = progress or (lambda _event: None)
    total = len(space.plans)
    started = time.perf_counter()
    results: list[TrialResult] = []
    reused: list[str] = []
    header = _header(source.name, batch_size, seq_len, dev, steps, warmup_steps, space)
    log.info("sweep of %s: %d plans (%d pruned), batch %d × seq %d on %s", source.name, total,
             len(space.pruned), batch_size, seq_len, dev)  # fmt: skip

    def run_all(append: Callable[[SweepKey, TrialResult], None] | None) -> None:
        for index, plan in enumerate(space.plans, 1):
            key = SweepKey(source.name, plan.name, batch_size, seq_len, dev)
            event = _Events(say, index, total, plan.name, started)
            previous = done.get(key)
            if previous is not None and (previous.ok or not retry_failed):
                results.append(previous)
                reused.append(plan.name)
                event("reused", result=previous)
                continue
            event("start", "starting")
            result = _run_plan(plan, source, key, steps, warmup_steps, event.stage)
            if append is not None:
                append(key, result)  # on disk before anyone hears of it
            done[key] = result
            results.append(result)
            log.info("plan %d/%d %s: %s", index, total, plan.name, result.status.value)
            event("done", result.status.value, result)

    if path is None:
        run_all(None)
    else:
        with _appender(path, header) as append:
            run_all(append)
    return SweepResult(
        model=source.name,
        batch_size=batch_size,
        seq_len=seq_len,
        device=dev,
        results=tuple(results),
        pruned=space.pruned,
        reused=tuple(reused),
        path=path,
    )


def load_sweep(path: str | Path) -> SweepResult:
    """A :class:`SweepResult` from a results file (the sweep of its header, in file order)."""
    found = read_sweep_file(path)
    if found.header is None:
        raise ReportError(f"{path} holds no sweep", "run a sweep with out=PATH first")
    params = found.header.get("sweep", {})
    pruned = tuple(
        PrunedPlan(p.get("plan", ""), p.get("reason", ""), p.get("kind", ""))
        for p in params.get("pruned", [])
    )
    return SweepResult(
        model=str(params.get("model", "")),
        batch_size=int(params.get("batch_size", 0)),
        seq_len=int(params.get("seq_len", 0)),
        device=str(params.get("device", "")),
        results=tuple(found.results.values()),
        pruned=pruned,
        reused=tuple(r.plan for r in found.results.values()),
        path=Path(path),
    )
