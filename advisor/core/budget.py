"""The one fit rule: a plan fits a GPU when its need is at most the memory less a safety margin.

Pure arithmetic, kept in ``core`` so that every layer — the engines' :class:`PredictedNeed`,
the recommender, the API, and the CLI's option defaults (without importing torch) — decides
with the same numbers.
"""

from __future__ import annotations

from advisor.core.errors import InvalidInputError

__all__ = ["DEFAULT_MARGIN", "check_margin", "fits_in", "usable_bytes"]

# The share of a GPU's memory a plan must leave free to be called a fit. The predicted need is
# the steady step's peak plus modelled overheads; what it leaves out (allocator fragmentation
# over a long run, a checkpoint save, another process, a driver update's context) is a few
# percent to ~10% on real cards, so 10% keeps a "fits" from being an OOM an hour in. Every fit
# verdict (simulate, profile, recommend, the TUI, the API) uses this one default and rule.
DEFAULT_MARGIN = 0.10


def check_margin(margin: object) -> float:
    """``margin`` as a float when it is a share in [0, 1), else :class:`InvalidInputError`."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise InvalidInputError(
            f"safety margin must be in [0, 1), got {margin!r}",
            "allowed: 0 (no margin) up to but not including 1; "
            f"the default {DEFAULT_MARGIN:g} keeps {DEFAULT_MARGIN:.0%} free",
        )
    return float(margin)


def usable_bytes(memory_bytes: int, margin: float = DEFAULT_MARGIN) -> int:
    """The budget a plan may use: ``memory_bytes`` less the share ``margin`` kept free."""
    return int(memory_bytes * (1.0 - check_margin(margin)))


def fits_in(need_bytes: int, memory_bytes: int, margin: float = DEFAULT_MARGIN) -> bool:
    """The one fit rule: a need fits when it is at most the usable budget
    (:func:`usable_bytes`); the recommender, ``simulate``, ``profile``, the TUI and the API
    all decide with it."""
    return need_bytes <= usable_bytes(memory_bytes, margin)
