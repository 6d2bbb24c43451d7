"""Sequence lengths of a real dataset: a :class:`LengthDistribution`, from the samples' token
counts or from a few percentiles (``p50=300,p95=1800,max=4096``).

Pure data and arithmetic; reading a dataset file (and its tokenizer) is
:mod:`advisor.models.datasets`' business.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from advisor.core.errors import InvalidInputError

__all__ = ["LENGTHS_HINT", "PERCENTILE_SAMPLES", "LengthDistribution", "parse_lengths"]

LENGTHS_HINT = "give percentiles and the maximum, e.g. lengths='p50=300,p95=1800,max=4096'"
# a distribution given as percentiles is read as this many samples at evenly spaced quantiles
PERCENTILE_SAMPLES = 1000


@dataclass(frozen=True)
class LengthDistribution:
    """Token counts of a dataset's samples, in the data's order.

    ``origin`` says where they come from (a file, or ``"percentiles"``) and ``counted_by`` how
    a sample's tokens were counted: a tokenizer's name, ``"estimate: …"`` (no tokenizer: a
    byte/word estimate) or ``"percentiles"`` (interpolated from given percentiles).
    """

    lengths: tuple[int, ...]
    origin: str = "given"
    counted_by: str = "given"

    def __post_init__(self) -> None:
        if not self.lengths:
            raise InvalidInputError(
                f"the length distribution from {self.origin} has no samples",
                "give a dataset with at least one non-empty sample, or " + LENGTHS_HINT,
            )
        bad = [n for n in self.lengths if isinstance(n, bool) or not isinstance(n, int) or n < 1]
        if bad:
            raise InvalidInputError(
                f"sample lengths must be whole numbers ≥ 1, got {bad[0]!r}", LENGTHS_HINT
            )

    @property
    def estimated(self) -> bool:
        """True when the token counts are not a tokenizer's (an estimate or percentiles)."""
        return self.counted_by.startswith("estimate") or self.counted_by == "percentiles"

    @property
    def count(self) -> int:
        return len(self.lengths)

    @property
    def max_len(self) -> int:
        return max(self.lengths)

    @property
    def total_tokens(self) -> int:
        return sum(self.lengths)

    @property
    def mean_len(self) -> float:
        return self.total_tokens / self.count

    def percentile(self, q: float) -> int:
        """The ``q``-th percentile (nearest rank) of the lengths."""
        ordered = sorted(self.lengths)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def summary(self) -> str:
        return (
            f"{self.count} samples, p50 {self.percentile(50)}, p95 {self.percentile(95)}, "
            f"max {self.max_len} tokens ({self.counted_by})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "counted_by": self.counted_by,
            "max": self.max_len,
            "mean": round(self.mean_len, 2),
            "origin": self.origin,
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_percentiles(cls, points: dict[float, int], origin: str = "percentiles") -> LengthDistribution:
        """Lengths at :data:`PERCENTILE_SAMPLES` evenly spaced quantiles, interpolated linearly
        between the given ``{percentile: length}`` points (0 → 1 token unless given; 100, the
        maximum, must be given)."""
        if 100 not in points:
            raise InvalidInputError("the length percentiles need the maximum (max=N)", LENGTHS_HINT)
        pts = dict(points)
        pts.setdefault(0, 1)
        keys = sorted(pts)
        for a, b in itertools.pairwise(keys):
            if pts[a] > pts[b]:
                name_a = "max" if a == 100 else f"p{a:g}"
                name_b = "max" if b == 100 else f"p{b:g}"
                raise InvalidInputError(
                    f"length percentiles must not decrease: {name_a}={pts[a]} > {name_b}={pts[b]}",
                    LENGTHS_HINT,
                )
        out = []
        for i in range(PERCENTILE_SAMPLES):
            q = 100 * (i + 0.5) / PERCENTILE_SAMPLES
            hi = next(k for k in keys if k >= q)
            lo = max(k for k in keys if k <= q) if any(k <= q for k in keys) else hi
            frac = 0.0 if hi == lo else (q - lo) / (hi - lo)
            out.append(max(1, round(pts[lo] + frac * (pts[hi] - pts[lo]))))
        out[-1] = pts[100]  # the maximum is a length the data really has
        return cls(tuple(out), origin=origin, counted_by="percentiles")


_POINT = re.compile(r"^(?:p(\d+(?:\.\d+)?)|(max|min))$")


def parse_lengths(text: str) -> LengthDistribution:
    """``"p50=300,p95=1800,max=4096"`` → a :class:`LengthDistribution` (see
    :meth:`LengthDistribution.from_percentiles`)."""
    points: dict[float, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        match = _POINT.match(key.strip().lower())
        if not sep or match is None:
            raise InvalidInputError(f"cannot read the length point {part!r}", LENGTHS_HINT)
        q = 100.0 if match.group(2) == "max" else 0.0 if match.group(2) == "min" else float(match.group(1))
        if not 0 < q <= 100 and match.group(2) != "min":
            raise InvalidInputError(f"percentile {key} is not between p1 and p100", LENGTHS_HINT)
        try:
            n = int(value.strip())
        except ValueError:
            raise InvalidInputError(f"length {value!r} of {key} is not a whole number", LENGTHS_HINT) from None
        if n < 1:
            raise InvalidInputError(f"length {key}={n} must be ≥ 1", LENGTHS_HINT)
        if q in points:
            raise InvalidInputError(f"{key} is given twice", LENGTHS_HINT)
        points[q] = n
    if not points:
        raise InvalidInputError("no length percentiles given", LENGTHS_HINT)
    return LengthDistribution.from_percentiles(points, origin=text.strip())
