"""The registry of cuts: name → class, in registration order (which is the default sweep's
order), filled by :func:`register_cut` beside each cut's definition."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from advisor.plans.types import Cut

__all__ = ["CUTS", "default_cuts", "describe_cuts", "register_cut"]

CUTS: dict[str, type[Cut]] = {}
_CutClass = TypeVar("_CutClass", bound=type[Cut])


def register_cut(cls: _CutClass) -> _CutClass:
    """Make a cut class reachable by its name (a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    CUTS[cls.name] = cls
    return cls


def default_cuts() -> list[Cut]:
    """Every registered cut at its default parameters, opt-in cuts (compile) left out."""
    return [cls() for cls in CUTS.values() if not cls.opt_in]


def describe_cuts() -> list[tuple[str, str, str]]:
    """(name, parameters with defaults, summary) for every registered cut."""
    rows = []
    for cls in CUTS.values():
        fields: tuple[dataclasses.Field[Any], ...] = (
            dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
        )
        params = ", ".join(f"{f.name}={'auto' if f.default == () else f.default}" for f in fields)
        summary = cls.summary + (" [opt-in]" if cls.opt_in else "")
        rows.append((cls.name, params, summary))
    return rows
