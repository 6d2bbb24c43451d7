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

one JSON object per line, keys sorted; a later line for the same key replaces an earlier one.
The header says which sweep the file holds (model, sizes, device, timed and warm-up steps): a
re-run with other ones is refused, naming both, unless told to start afresh (``new=True``,
``--new``), which moves the old file aside to ``NAME.old.jsonl`` first.

Nothing in a results file is ever dropped. A complete last record without its newline is kept
(the newline is added before the next append). A last line cut short by a crash is skipped when
reading and moved to the side file ``NAME.damaged.jsonl`` before the next append; a damaged line
in the middle is skipped with a warning and left where it is. A file from another tool, or of a
schema version this vram-advisor does not know, is refused with that version named.
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
from advisor.engines.progress import PlanEvents, ProgressCallback
from advisor.engines.progress import SweepProgress as SweepProgress  # its old home: still importable here
from advisor.engines.simulate import simulate as simulate_plan
from advisor.models import ModelSource, resolve_model
from advisor.plans import BASELINE, Plan
from advisor.plans.cuts import PlanSpace, PrunedPlan, user_plans
from profilers.records import TrialResult, TrialStatus
from profilers.trial import resolve_device

log = logging.getLogger(__name__)

SWEEP_KIND = "vram-advisor/sweep"
RESULT_KIND = "result"
SWEEP_SCHEMA_VERSION = 1
SIMULATED_DEVICE = "simulated:cuda"  # the device of a simulated sweep's keys: never mixed with measured ones
KNOWN_SWEEP_VERSIONS = frozenset({1})  # the versions this code reads (older ones of ours stay here)
# what must match for a re-run to resume a results file: its header's "sweep" fields
SAME_SWEEP = ("model", "batch_size", "seq_len", "device", "steps", "warmup_steps")


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


SweepCallback = ProgressCallback  # the name this module has always used


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

    @property
    def simulated(self) -> bool:
        """Whether the plans were simulated on fake tensors (``sweep(..., simulate=True)``)."""
        return self.device == SIMULATED_DEVICE

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
        argument="out",
    )


def side_path(path: Path, tag: str) -> Path:
    """``NAME.TAG.jsonl`` beside ``NAME.jsonl`` (``NAME.TAG-2.jsonl`` … when that exists and
    ``tag`` is ``old``; the damaged-lines file is appended to, so it is always the same)."""
    stem, suffix = path.stem, path.suffix or ".jsonl"
    side = path.with_name(f"{stem}.{tag}{suffix}")
    n = 2
    while tag == "old" and side.exists():
        side = path.with_name(f"{stem}.{tag}-{n}{suffix}")
        n += 1
    return side


def _record(line: bytes) -> dict[str, Any] | None:
    """The JSON object on ``line``, or ``None`` when it does not parse as one."""
    try:
        doc = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _check_version(path: Path, doc: dict[str, Any]) -> None:
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _not_ours(path, f"its header has schema_version {version!r}")
    if version not in KNOWN_SWEEP_VERSIONS:
        raise ReportError(
            f"{path} is a sweep results file of schema_version {version}; this vram-advisor "
            f"reads version{'s' if len(KNOWN_SWEEP_VERSIONS) > 1 else ''} "
            f"{', '.join(map(str, sorted(KNOWN_SWEEP_VERSIONS)))}",
            "upgrade vram-advisor to read it, or give another results file: out=PATH",
            argument="out",
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
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"cannot read {path} ({exc.strerror or exc})", "check the path", argument="out") from None
    lines = raw.split(b"\n")
    complete = lines[:-1]
    tail = lines[-1].strip()
    if tail:  # after the last newline: a complete record that lacks its newline, or a line cut short
        if _record(tail) is not None:
            complete.append(tail)
        elif not any(line.strip() for line in complete) and not tail.startswith(_HEADER_START):
            raise _not_ours(path, "it does not start with a sweep header")
        else:
            log.warning(
                "%s: skipping a damaged last line (a write cut short); it is moved to %s on the next write",
                path,
                side_path(path, "damaged"),
            )
            found.damaged_lines += 1
    first = True
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        doc = _record(line)
        if doc is None:
            if first:
                raise _not_ours(path, "its first line is not a JSON object")
            log.warning("%s:%d: skipping a damaged line (left in the file)", path, number)
            found.damaged_lines += 1
            continue
        if first:
            kind = doc.get("kind")
            if kind != SWEEP_KIND:
                version = doc.get("schema_version")
                seen = f"kind {kind!r}" if kind is not None else "no 'kind' field"
                if version is not None:
                    seen += f", schema_version {version!r}"
                raise _not_ours(path, f"no sweep header on its first line: {seen}")
            _check_version(path, doc)
            found.header = doc
            first = False
            continue
        if not isinstance(doc, dict) or doc.get("kind") != RESULT_KIND:
            continue  # a record kind from a newer version
        try:
            key = SweepKey.from_dict(doc["key"])
            found.results[key] = TrialResult.from_dict(doc["result"])
        except (KeyError, TypeError, ValueError, AttributeError, ReportError) as exc:
            log.warning("%s:%d: skipping an unreadable result (%s)", path, number, exc)
            found.damaged_lines += 1
    return found


# how every header line begins (keys sorted, compact): a file holding only a line cut short is
# one of ours only if that line begins so
_HEADER_START = b'{"created":'


def _settle_tail(path: Path) -> None:
    """Make the next append start on a fresh line, losing nothing: a complete last record gets
    its newline; a line cut short by a crash is moved to ``NAME.damaged.jsonl`` (fsync'd) and
    only then cut from the results file."""
    with path.open("rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if _record(tail.strip()) is not None:
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
            return
        if tail.strip():
            side = side_path(path, "damaged")
            with side.open("ab") as keep:
                keep.write(tail + b"\n")
                keep.flush()
                os.fsync(keep.fileno())
            log.warning("%s: a damaged last line (%d bytes) moved to %s", path, len(tail), side)
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


def _write_line(fh: IO[str], doc: dict[str, Any]) -> None:
    fh.write(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


@contextmanager
def _appender(path: Path, header: dict[str, Any]) -> Iterator[Callable[[SweepKey, TrialResult], None]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists() or path.stat().st_size == 0
    if not fresh:
        _settle_tail(path)
        fresh = path.stat().st_size == 0  # the header itself was cut short
    with path.open("a", encoding="utf-8") as fh:
        if fresh:
            _write_line(fh, header)

        def append(key: SweepKey, result: TrialResult) -> None:
            _write_line(fh, {"kind": RESULT_KIND, "key": key.to_dict(), "result": result.to_dict()})

        yield append


def _header(
    model: str, batch_size: int, seq_len: int, device: str, steps: int, warmup: int, space: PlanSpace,
    engine: str = "measure",
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
            "engine": engine,
            "steps": steps,
            "warmup_steps": warmup,
            "plans": [p.name for p in space.plans],
            "pruned": [{"plan": p.plan, "reason": p.reason, "kind": p.kind} for p in space.pruned],
        },
    }


def _describe(params: dict[str, Any]) -> str:
    return (
        f"{params.get('model')}, batch {params.get('batch_size')} × seq {params.get('seq_len')} on "
        f"{params.get('device')}, {params.get('steps')} timed + {params.get('warmup_steps')} warm-up steps"
    )


def _check_same_sweep(path: Path, held: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse to resume ``path`` when its header is another sweep's, naming both."""
    params = held.get("sweep") if isinstance(held.get("sweep"), dict) else {}
    assert isinstance(params, dict)
    differ = [k for k in SAME_SWEEP if k in params and params[k] != wanted[k]]
    if differ:
        raise ReportError(
            f"{path} holds another sweep ({_describe(params)}), not this one ({_describe(wanted)}): "
            f"{', '.join(differ)} differ{'s' if len(differ) == 1 else ''}",
            f"give another results file: out=PATH, or start this one afresh with new=True (the old "
            f"file is moved to {side_path(path, 'old')})",
            argument="out",
        )


def _start_afresh(path: Path) -> Path | None:
    """Move an existing results file aside to ``NAME.old.jsonl``; the path it went to."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    aside = side_path(path, "old")
    os.replace(path, aside)
    log.warning("%s moved to %s: this sweep starts afresh", path, aside)
    return aside


# -- running -----------------------------------------------------------------------------------


def _run_plan(
    plan: Plan,
    source: ModelSource,
    key: SweepKey,
    steps: int,
    warmup_steps: int,
    stage: Callable[[str], None],
) -> TrialResult:
    try:
        if key.device == SIMULATED_DEVICE:
            return simulate_plan(
                source, plan, key.batch_size, key.seq_len, warmup_steps=max(1, warmup_steps), progress=stage
            )
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
    simulate: bool = False,
    new: bool = False,
) -> SweepResult:
    """Run each plan as a trial and return every result.

    A plan that fails (out of memory, unsupported here, a model or plan error) gets a result
    with its status and reason, and the sweep goes on. With ``out``, each result is appended to
    that JSON Lines file as it arrives, and plans already there (same model, plan name, batch,
    sequence length and device) are reused instead of run; ``retry_failed`` runs the failed ones
    again. A file holding another sweep (model, sizes, device, steps) is refused before anything
    runs, unless ``new`` moves it aside to ``NAME.old.jsonl`` and starts afresh. ``plans`` is a
    :class:`PlanSpace` or a list of plans (``Plan`` or ``"lora+sgd"``), run in order after
    dropping duplicates; a conflicting or redundant one raises :class:`PlanError`. ``simulate``
    replays each plan on fake tensors as for a CUDA GPU instead of measuring it (no hardware,
    any model size; ``device`` is then unused): its keys and header say ``simulated:cuda``, so
    a results file never mixes simulated and measured results.
    KeyboardInterrupt propagates after every finished result is on disk.
    """

    source = resolve_model(model)
    source.check_sizes(batch_size, seq_len)
    space = plans if isinstance(plans, PlanSpace) else user_plans(plans, baseline=False)
    if simulate:
        dev = SIMULATED_DEVICE
    else:
        dev = str(resolve_device(device))
        check_measurable(source, dev)  # an 8B preset is simulated (`sweep --simulate`), not measured
    path = check_writable(out) if out is not None else None
    engine = "simulate" if simulate else "measure"
    header = _header(source.name, batch_size, seq_len, dev, steps, warmup_steps, space, engine)
    done: dict[SweepKey, TrialResult] = {}
    if path is not None:
        held = read_sweep_file(path)  # refuses a file that is not ours, before anything moves
        if new:
            _start_afresh(path)
        else:
            if held.header is not None:
                _check_same_sweep(path, held.header, header["sweep"])
            done = held.results
    say = progress or (lambda _event: None)
    total = len(space.plans)
    started = time.perf_counter()
    results: list[TrialResult] = []
    reused: list[str] = []
    log.info("sweep of %s: %d plans (%d pruned), batch %d × seq %d on %s", source.name, total,
             len(space.pruned), batch_size, seq_len, dev)  # fmt: skip

    def run_all(append: Callable[[SweepKey, TrialResult], None] | None) -> None:
        for index, plan in enumerate(space.plans, 1):
            key = SweepKey(source.name, plan.name, batch_size, seq_len, dev)
            event = PlanEvents(say, index, total, plan.name, started)
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
    params = found.header.get("sweep")
    try:
        if not isinstance(params, dict):
            raise TypeError("no 'sweep' object in the header")
        pruned = tuple(
            PrunedPlan(str(p.get("plan", "")), str(p.get("reason", "")), str(p.get("kind", "")))
            for p in params.get("pruned", [])
        )
        model, device = str(params.get("model", "")), str(params.get("device", ""))
        batch_size, seq_len = int(params.get("batch_size", 0)), int(params.get("seq_len", 0))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{path} has a damaged sweep header ({exc})", "run the sweep again with another out=PATH") from None
    # a file mixed by an older version (another sweep appended into it): only this sweep's results
    ours = {k: r for k, r in found.results.items() if (k.model, k.batch_size, k.seq_len, k.device)
            == (model, batch_size, seq_len, device)}  # fmt: skip
    if len(ours) < len(found.results):
        log.warning("%s: %d results of another sweep left out", path, len(found.results) - len(ours))
    return SweepResult(
        model=model,
        batch_size=batch_size,
        seq_len=seq_len,
        device=device,
        results=tuple(ours.values()),
        pruned=pruned,
        reused=tuple(r.plan for r in ours.values()),
        path=Path(path),
    )
