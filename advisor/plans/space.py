"""The plan space: singles, every compatible combination up to a size, or a user list, with
conflicting and redundant sets pruned and the reason recorded."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from advisor.core.errors import PlanError, whole_number
from advisor.plans.parse import parse_plan, parse_plans
from advisor.plans.types import Cut, Plan, conflict_between

__all__ = ["PlanSpace", "PrunedPlan", "check_plan", "combinations", "explicit_plans", "singles", "user_plans"]

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


def _why_not(plan: Plan) -> PrunedPlan | None:
    """Why ``plan`` is left out of a sweep (its conflict or redundancy), or ``None``: the one
    rule, in the same words, for pruning a sweep and for refusing a plan given explicitly."""
    conflict = plan.conflict()
    if conflict is not None:
        return PrunedPlan(plan.name, conflict, "conflict")
    redundant = plan.redundancy()
    if redundant is not None:
        return PrunedPlan(plan.name, redundant, "redundant")
    return None


def _fix(plan: Plan, kind: str) -> str:
    """The hint for a plan refused as ``kind``: which cut to drop."""
    if kind == "conflict":
        for i, a in enumerate(plan.cuts):
            for b in plan.cuts[i + 1 :]:
                if conflict_between(a, b) is not None:
                    if a.name == b.name:
                        return f"give {a.name} once"
                    return f"keep one of {a.name} and {b.name}"
    names = {c.name for c in plan.cuts}
    for cut in plan.cuts:
        by = sorted(cut.redundant_with & names)
        if by:
            return f"drop {cut.name} ({by[0]} covers it)"
    return "drop one of the cuts"


def check_plan(plan: Plan) -> Plan:
    """``plan`` in canonical order when it can run as given; :class:`PlanError` with the reason
    a sweep would prune it (two cuts that conflict, a cut redundant under another) otherwise."""
    if not isinstance(plan, Plan):
        raise PlanError(
            f"a plan is a Plan or text such as 'lora+grad-ckpt', got {type(plan).__name__}",
            "pass plan text, e.g. plan=\"lora+grad-ckpt\"",
        )
    plan = Plan.of(plan.cuts)
    why = _why_not(plan)
    if why is not None:
        raise PlanError(f"plan {plan.name} is refused ({why.kind}): {why.reason}", _fix(plan, why.kind))
    return plan


def explicit_plans(plans: str | Plan | Iterable[Plan | str]) -> list[Plan]:
    """Plans a user named (``"lora+sgd;bf16"``, a ``Plan``, or a list of either), each checked
    by :func:`check_plan`, duplicates dropped. Empty text, an empty list, and a conflicting or
    redundant plan raise :class:`PlanError`: what a user names is run, or refused with the
    reason, never silently dropped."""
    if isinstance(plans, Plan):
        items: list[Plan | str] = [plans]
    elif isinstance(plans, str):  # not an iterable of one-letter plans
        items = list(parse_plans(plans))
    else:
        items = list(plans)
    if not items:
        raise PlanError("no plans given", "name at least one plan, e.g. 'lora+grad-ckpt' or 'baseline'")
    out: list[Plan] = []
    seen: set[str] = set()
    for item in items:
        plan = check_plan(parse_plan(item) if isinstance(item, str) else item)
        if plan.name not in seen:
            seen.add(plan.name)
            out.append(plan)
    return out


def _prune(candidates: Iterable[Plan], baseline: bool) -> PlanSpace:
    plans: list[Plan] = [Plan()] if baseline else []
    seen = {p.name for p in plans}
    pruned: list[PrunedPlan] = []
    for plan in candidates:
        plan = Plan.of(plan.cuts)  # canonical order: the same set always has the same name
        if plan.name in seen:
            continue
        seen.add(plan.name)
        why = _why_not(plan)
        if why is not None:
            pruned.append(why)
        else:
            plans.append(plan)
    return PlanSpace(tuple(plans), tuple(pruned))


def combinations(cuts: Sequence[Cut], max_size: int = 1, *, baseline: bool = True) -> PlanSpace:
    """Every compatible combination of ``cuts`` of 1 to ``max_size`` cuts (plus the baseline);
    combinations with conflicting or redundant cuts are pruned with the reason."""
    whole_number("max_combo", max_size, 1, "max combination size")

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
    baseline first unless told not to. Plans are checked by :func:`explicit_plans`: a
    conflicting or redundant one raises :class:`PlanError` (a sweep of combinations prunes it)."""
    return _prune(explicit_plans(plans), baseline)
