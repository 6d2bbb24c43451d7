"""The plan space: singles, every compatible combination up to a size, or a user list, with
conflicting and redundant sets pruned and the reason recorded."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from advisor.core.errors import PlanError
from advisor.plans.parse import parse_plan, parse_plans
from advisor.plans.types import Cut, Plan

__all__ = ["PlanSpace", "PrunedPlan", "combinations", "singles", "user_plans"]



@dataclass(frozen=True)
class PrunedPlan:
    """A plan left out of a sweep, and why."""

    plan: str
    reason: str
    kind: str  # "conflict", "redundant" or "duplicate"


@dataclass(frozen=True)
class PlanSpace:
    """The plans a sweep will run, baseline first, and the ones pruned with their reasons."""

    plans: tuple[Plan, ...]
    pruned: tuple[PrunedPlan, ...] = ()

    def __iter__(self) -> Iterator[Plan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)


def _prune(candidates: Iterable[Plan], baseline: bool) -> PlanSpace:
    plans: list[Plan] = [Plan()] if baseline else []
    seen = {p.name for p in plans}
    pruned: list[PrunedPlan] = []
    for plan in candidates:
        plan = Plan.of(plan.cuts)  # canonical order: the same set always has the same name
        if plan.name in seen:
            continue
        conflict = plan.conflict()
        if conflict is not None:
            pruned.append(PrunedPlan(plan.name, conflict, "conflict"))
            seen.add(plan.name)
            continue
        redundant = plan.redundancy()
        if redundant is not None:
            pruned.append(PrunedPlan(plan.name, redundant, "redundant"))
            seen.add(plan.name)
            continue
        plans.append(plan)
        seen.add(plan.name)
    return PlanSpace(tuple(plans), tuple(pruned))


def combinations(cuts: Sequence[Cut], max_size: int = 1, *, baseline: bool = True) -> PlanSpace:
    """Every compatible combination of ``cuts`` of 1 to ``max_size`` cuts (plus the baseline);
    combinations with conflicting or redundant cuts are pruned with the reason."""
    if max_size < 1:
        raise PlanError(f"max combination size must be ≥ 1, got {max_size}", "pass --max-combo 1 or more")

    def candidates() -> Iterator[Plan]:
        for size in range(1, min(max_size, len(cuts)) + 1):
            for combo in itertools.combinations(cuts, size):
                yield Plan.of(combo)

    return _prune(candidates(), baseline)


def singles(cuts: Sequence[Cut], *, baseline: bool = True) -> PlanSpace:
    """The baseline and each cut on its own."""
    return combinations(cuts, 1, baseline=baseline)


def user_plans(plans: str | Iterable[Plan | str], *, baseline: bool = True) -> PlanSpace:
    """A user's list of plans (``Plan`` objects or strings, or one ``"lora+sgd;bf16"`` text),
    baseline first unless told not to."""
    if isinstance(plans, str):  # not an iterable of one-letter plans
        plans = parse_plans(plans)
    parsed = [parse_plan(p) if isinstance(p, str) else p for p in plans]
    return _prune(parsed, baseline)
