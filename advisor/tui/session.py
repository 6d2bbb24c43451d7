"""The TUI's state without the UI: the plans of a run, the trials in hand, and re-ranking.

Trials are cached by (plan, micro-batch), so re-ranking for another GPU, budget or ranking
reuses every trial already run; a cancelled run keeps what finished. No textual import here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.catalog.gpus import GpuSpec
from advisor.core.errors import AdvisorError, InvalidInputError
from advisor.models import HFModelSource, ModelSource, resolve_model
from advisor.plans import Plan
from advisor.recommend.workload import Workload
from profilers.records import TrialResult, TrialStatus

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]  # (text, plans done, plans in all)


class Cancelled(Exception):
    """Raised inside the run when the person cancels it."""


def known_cut_names() -> list[str]:
    """Every cut the TUI offers, in the registry's order."""
    from advisor.plans.cuts import CUTS

    return [name for name in CUTS if name != "compile"]


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
        from advisor.plans.cuts import combinations, parse_cuts

        if not config.model:
            raise InvalidInputError("no model given", "type a built-in name such as tiny-llama")
        source = resolve_model(config.model)
        source.check_sizes(config.workload.micro_batch, config.workload.seq_len)
        if config.mode == "measure":
            from advisor.engines.measure import check_measurable

            check_measurable(source, "cpu", (config.workload.micro_batch,))
        cuts = parse_cuts(",".join(config.cuts)) if config.cuts else []
        space = combinations(cuts, max_size=min(config.max_combo, max(1, len(cuts))))
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
        inner = self._backends(gpu).trial

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

    def _mode(self) -> Any:
        from advisor.recommend import Mode

        assert self.config is not None
        return Mode.MEASURE if self.config.mode == "measure" else Mode.SIMULATE

    def _backends(self, gpu: GpuSpec) -> Any:
        from advisor.recommend import cut_settings, default_backends

        assert self.config is not None and self.source is not None
        backends = default_backends(self.source, gpu, self.config.workload, self._mode())
        return dataclasses.replace(backends, settings=cut_settings)

    def _recommend(
        self,
        plans: list[Plan],
        gpu: GpuSpec,
        rank_by: str,
        trial: Callable[[Plan, int], TrialResult],
        check_top: int,
    ) -> Any:
        from advisor.core.io import environment
        from advisor.recommend import recommend
        from advisor.report import Advice

        assert self.config is not None and self.source is not None
        task = self.source.task.value if isinstance(self.source, HFModelSource) else "custom"
        rec = recommend(
            self.source.name,
            plans,
            gpu,
            self.config.workload,
            dataclasses.replace(self._backends(gpu), trial=trial),
            rank_by=rank_by,
            mode=self._mode(),
            check_top=check_top,
            environment=environment(),
            model_task=task,
        )
        return Advice.of(rec)

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
        from advisor.report import load_report

        rec = load_report(path)
        self.config = None
        self.trials.clear()
        self.last = rec
        return rec


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


__all__ = ["AdvisorError", "Cancelled", "Session", "SessionConfig", "default_cut_names", "known_cut_names"]
