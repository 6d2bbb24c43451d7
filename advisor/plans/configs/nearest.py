"""The plans one change away from a config's plan: one candidate cut added (or swapped in for
the cut of the same kind it replaces: ``lora`` → ``qlora`` keeps r, alpha and targets), or the
micro-batch halved with twice the accumulation. The recommender ranks them; this module only
lists them."""

from __future__ import annotations

import dataclasses

from advisor.plans.registry import default_cuts
from advisor.plans.types import Cut, Plan, conflict_between

__all__ = ["neighbour_plans"]

_LORA_FIELDS = ("r", "alpha", "dropout", "targets")


def _carry_lora(new: Cut, old: Cut) -> Cut:
    """``new`` (lora or qlora) with the adapter parameters of ``old`` (qlora or lora)."""
    if {new.name, old.name} != {"lora", "qlora"}:
        return new
    return dataclasses.replace(new, **{f: getattr(old, f) for f in _LORA_FIELDS})  # type: ignore[type-var]


def neighbour_plans(plan: Plan, batch_size: int) -> list[Plan]:
    """Plans one change from ``plan`` (which is not among them), in candidate order."""
    out: dict[str, Plan] = {}
    names = set(plan.cut_names)
    for cut in default_cuts():
        if not cut.candidate or cut.name in names:
            continue
        clashing = [c for c in plan.cuts if conflict_between(c, cut) is not None]
        if len(clashing) > 1:
            continue
        if clashing:
            cut = _carry_lora(cut, clashing[0])
        cuts = [c for c in plan.cuts if c not in clashing] + [cut]
        candidate = Plan.of(cuts)
        if candidate.conflict() is None and candidate.redundancy() is None:
            out.setdefault(candidate.name, candidate)
    steps = next((int(getattr(c, "steps", 1)) for c in plan.cuts if c.name == "accum"), 1)
    if batch_size % (steps * 2) == 0:
        accum = next(cls for cls in (type(c) for c in default_cuts()) if cls.name == "accum")
        cuts = [c for c in plan.cuts if c.name != "accum"] + [accum(steps=steps * 2)]  # type: ignore[call-arg]
        candidate = Plan.of(cuts)
        out.setdefault(candidate.name, candidate)
    out.pop(plan.name, None)
    return list(out.values())
