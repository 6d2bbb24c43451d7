"""Progress of work over many plans, as events.

Every engine that runs plans one after another — a sweep (measured or simulated), many
simulations, the recommender's trials — reports through its ``progress`` callback with a
:class:`SweepProgress` per event: which plan of how many, what it is doing, and how long it has
taken. Nothing here prints; the front ends render the events (the CLI on stderr with an ETA,
the TUI in its bar). ``str(event)`` is a readable line, so a callback that prints text works.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from profilers.records import TrialResult

__all__ = ["PlanEvents", "ProgressCallback", "SweepProgress"]


@dataclass(frozen=True)
class SweepProgress:
    """One progress event: ``kind`` is ``start``, ``stage`` (a trial step), ``done`` (the
    result is in: on disk for a sweep with a results file) or ``reused`` (taken from the
    results file). ``phase`` names the work when a run has more than one pass over plans (the
    recommender's trials, then its search for the largest micro-batch); empty for one pass."""

    kind: str
    index: int  # 1-based
    total: int
    plan: str
    elapsed_s: float  # since this plan started
    sweep_elapsed_s: float  # since the run started
    message: str = ""
    result: TrialResult | None = None
    phase: str = ""

    @property
    def finished(self) -> bool:
        """Whether this plan is over (its result is in)."""
        return self.kind in ("done", "reused")

    def __str__(self) -> str:
        head = f"plan {self.index}/{self.total} {self.plan}"
        if self.kind == "reused":
            return f"{head}: done before, reused"
        if self.kind == "done" and self.result is not None:
            status = self.result.status.value
            why = f" — {self.result.reason}" if self.result.reason else ""
            return f"{head}: {status}{why} ({self.elapsed_s:.1f} s)"
        return f"{head}: {self.message or self.kind} ({self.elapsed_s:.1f} s)"


ProgressCallback = Callable[[SweepProgress], None]


class PlanEvents:
    """The events of one plan, timed from the plan's start: ``events("start", "starting")``,
    ``events.stage("timed step 1/3")`` (a trial's own progress callback), ``events("done",
    result=r)``."""

    def __init__(
        self, say: ProgressCallback, index: int, total: int, plan: str, run_started: float, phase: str = ""
    ) -> None:
        self.say, self.index, self.total, self.plan = say, index, total, plan
        self.run_started, self.phase = run_started, phase
        self.started = time.perf_counter()

    def __call__(self, kind: str, message: str = "", result: TrialResult | None = None) -> None:
        now = time.perf_counter()
        self.say(
            SweepProgress(
                kind, self.index, self.total, self.plan, now - self.started, now - self.run_started,
                message, result, self.phase,
            )
        )  # fmt: skip

    def stage(self, message: str) -> None:
        self("stage", message)
