"""The TUI's state without the UI: the plans of a run, the trials in hand, and re-ranking.

Trials are cached by (plan, micro-batch), so re-ranking for another GPU, budget or ranking
reuses every trial already run; a cancelled run keeps what finished. No textual import here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor import api
from advisor.api import Plan, Workload
from advisor.catalog.gpus import GpuSpec
from advisor.core.errors import AdvisorError, InvalidInputError
from advisor.models import ModelSource
from advisor.report import load_report, report_paths
from profilers.records import TrialResult, TrialStatus

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]  # (text, plans done, plans in all)


class Cancelled(Exception):
    """Raised inside the run when the person cancels it."""


def known_cut_names() -> list[str]:
    """Every cut the TUI offers, in the registry's order (opt-in cuts such as compile left out)."""
    return api.cut_names()


def default_cut_names() -> list[str]:
    """The cuts ticked when the app opens."""
    return ["lora", "grad-ckpt", "bf16"]


@dataclass(frozen=True)
class SessionConfig:
    """What the setup form asks for."""

    model: str
    gpu: GpuSpec
    workload: Workload
    cuts: list[str]
    mode: str = "simulate"  # or "measure"
    rank_by: str = "time"
    max_combo: int = 2


class Session:
    """Runs plans once and ranks them as often as the target changes."""

    def __init__(self, check_top: int = 1) -> None:
        self.check_top = check_top  # plans whose largest micro-batch is checked by extra trials
        self.config: SessionConfig | None = None
        self.source: ModelSource | None = None
        self.plans: list[Plan] = []
        self.trials: dict[tuple[str, int], TrialResult] = {}
        self.last: Any = None  # the latest Recommendation shown
        self.running = False
        self._cancel = threading.Event()
        self._done_plans: set[str] = set()

    # -- state -------------------------------------------------------------------------------

    @property
    def total_plans(self) -> int:
        return len(self.plans)

    @property
    def done_plans(self) -> int:
        return len(self._done_plans)

    @property
    def has_results(self) -> bool:
        return bool(self.trials) or self.last is not None

    # -- a run -------------------------------------------------------------------------------

    def prepare(self, config: SessionConfig) -> None:
        """Check the input and choose the plans; raises AdvisorError for bad input."""
        if not config.model:
            raise InvalidInputError("no model given", "type a built-in name such as tiny-llama")
        source = api.check_run(config.model, config.workload, mode=config.mode)
        space = api.plan_space(cuts=list(config.cuts), max_combo=min(config.max_combo, max(1, len(config.cuts))))
        if self.config is None or (config.model, config.workload.seq_len, config.mode) != (
            self.config.model, self.config.workload.seq_len, self.config.mode,
        ):  # fmt: skip
            self.trials.clear()  # trials of another model, length or mode are not reusable
        self.config = config
        self.source = source
        self.plans = list(space.plans)
        self._done_plans = set()
        self._cancel.clear()

    def cancel(self) -> None:
        self._cancel.set()

    def _caching_trial(self, gpu: GpuSpec, progress: ProgressFn | None) -> Callable[[Plan, int], TrialResult]:
        """The real trial function, run once per (plan, micro-batch) and kept."""
        assert self.config is not None and self.source is not None
        inner = api.plan_trials(self.source, gpu, self.config.workload, mode=self.config.mode)

        def trial(plan: Plan, micro_batch: int) -> TrialResult:
            if self._cancel.is_set():
                raise Cancelled()
            key = (plan.name, micro_batch)
            if key not in self.trials:
                if progress is not None:
                    progress(f"{plan.name} at micro-batch {micro_batch}", self.done_plans, self.total_plans)
                self.trials[key] = inner(plan, micro_batch)
            self._done_plans.add(plan.name)
            return self.trials[key]

        return trial

    def _recommend(
        self,
        plans: list[Plan],
        gpu: GpuSpec,
        rank_by: str,
        trial: Callable[[Plan, int], TrialResult],
        check_top: int,
    ) -> Any:
        assert self.config is not None and self.source is not None
        return api.rank_plans(
            self.source,
            plans,
            gpu,
            self.config.workload,
            trial=trial,
            mode=self.config.mode,
            rank_by=rank_by,
            check_top=check_top,
        )

    def run(self, progress: ProgressFn) -> None:
        """Run every plan (in the caller's thread); trials land in the cache as they finish."""
        if self.config is None:
            raise InvalidInputError("nothing to run", "prepare a configuration first")
        self.running = True
        try:
            trial = self._caching_trial(self.config.gpu, progress)
            self.last = self._recommend(self.plans, self.config.gpu, self.config.rank_by, trial, self.check_top)
            progress("done", self.total_plans, self.total_plans)
        finally:
            self.running = False

    def rank(self, gpu: GpuSpec, rank_by: str) -> Any:
        """Rank the trials in hand for ``gpu``: only plans already tried, no new trials."""
        if self.config is None or not self.trials:
            return self.last
        tried = {name for name, _ in self.trials}
        plans = [p for p in self.plans if p.name in tried]
        self.last = self._recommend(plans, gpu, rank_by, _cache_only(self.trials), check_top=0)
        return self.last

    # -- saved reports -----------------------------------------------------------------------

    def load(self, path: Path) -> Any:
        """Open a saved report (no trials in hand: it is shown as saved)."""
        rec = load_report(path)
        self.config = None
        self.trials.clear()
        self.last = rec
        return rec


# -- export paths: never replace a file without asking ----------------------------------------


def existing_report_files(prefix: Path) -> list[Path]:
    """Those of ``prefix``'s .json/.md/.svg that exist already (an export would replace them)."""
    return [path for path in report_paths(prefix).values() if path.exists()]


def unused_prefix(prefix: Path) -> Path:
    """``prefix`` itself if none of its report files exist, else the first free ``prefix-2``,
    ``prefix-3``, …"""
    if not existing_report_files(prefix):
        return prefix
    n = 2
    while existing_report_files(prefix.with_name(f"{prefix.name}-{n}")):
        n += 1
    return prefix.with_name(f"{prefix.name}-{n}")


def _cache_only(trials: dict[tuple[str, int], TrialResult]) -> Callable[[Plan, int], TrialResult]:
    """A trial function that answers from the cache and never runs anything new."""

    def trial(plan: Plan, micro_batch: int) -> TrialResult:
        found = trials.get((plan.name, micro_batch))
        if found is not None:
            return found
        return TrialResult(
            model="",
            plan=plan.name,
            cuts=plan.cut_names,
            device="",
            batch_size=micro_batch,
            seq_len=0,
            status=TrialStatus.UNSUPPORTED,
            reason="not in hand (re-ranking uses only trials already run)",
        )

    return trial


__all__ = [
    "AdvisorError",
    "Cancelled",
    "Session",
    "SessionConfig",
    "default_cut_names",
    "existing_report_files",
    "known_cut_names",
    "unused_prefix",
]
