"""How memory grows with micro-batch and sequence length, fitted from a few sizes.

A training step's tensor peak is the largest of its phases' peaks (forward, backward,
optimizer, zero_grad), and each phase's peak is, to the byte, a sum of terms in the batch
``B`` and the sequence length ``S``: a constant (weights, gradients, optimizer state), ``S``
(rotary tables, position ids), ``B·S`` (hidden states, logits, the batch) and ``B·S²``
(attention scores and masks when they are materialised). So each phase is fitted by least
squares on those terms, and the prediction is the largest phase, which follows the peak when
it moves from the optimizer to the backward as the sizes grow. Results that carry no phase
peaks (measured ones) are fitted on their total peak.

A fit is checked on one size that was not used to fit it (``holdout``), and answers "the
largest micro-batch" and "the longest sequence" that fit a memory budget, optionally through a
function that turns a tensor peak into a GPU need (:mod:`advisor.overheads`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advisor.core.errors import InvalidInputError
from profilers.records import Provenance, TrialResult

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TERMS",
    "GrowthFit",
    "SizePoint",
    "default_sizes",
    "fit_growth",
    "point_from_result",
    "simulate_growth",
]

# name → feature of (batch, seq)
_FEATURES: dict[str, Callable[[float, float], float]] = {
    "1": lambda b, s: 1.0,
    "S": lambda b, s: s,
    "B*S": lambda b, s: b * s,
    "B*S^2": lambda b, s: b * s * s,
    "S^2": lambda b, s: s * s,
    "B": lambda b, s: b,
}
DEFAULT_TERMS: tuple[str, ...] = ("1", "S", "B*S", "B*S^2")
_TOTAL = "total"


@dataclass(frozen=True)
class SizePoint:
    """One size's tensor peak, and its phases' peaks when known."""

    batch_size: int
    seq_len: int
    peak_bytes: int
    phase_peaks: dict[str, int] = field(default_factory=dict)
    provenance: Provenance = Provenance.SIMULATED


def point_from_result(result: TrialResult) -> SizePoint:
    """The size point of a successful trial (measured or simulated)."""
    if result.tensor_peak is None:
        raise InvalidInputError(
            f"{result.model}/{result.plan} at batch {result.batch_size} × seq {result.seq_len} has "
            f"no tensor peak ({result.status.value}: {result.reason})",
            "fit growth from sizes whose trials succeeded",
        )
    phases = result.simulation.phase_peaks if result.simulation is not None else {}
    return SizePoint(
        result.batch_size,
        result.seq_len,
        result.tensor_peak.peak_bytes,
        {str(k): int(v) for k, v in phases.items()},
        result.tensor_peak.provenance,
    )


@dataclass(frozen=True)
class GrowthFit:
    """Tensor peak as a function of (micro-batch, sequence length); provenance ``estimated``."""

    terms: tuple[str, ...]
    coefficients: dict[str, tuple[float, ...]]  # phase (or "total") → one coefficient per term
    points: tuple[SizePoint, ...]
    holdout: SizePoint | None = None
    provenance: Provenance = Provenance.ESTIMATED

    def predict_phases(self, batch_size: float, seq_len: float) -> dict[str, float]:
        x = np.array([_FEATURES[t](batch_size, seq_len) for t in self.terms])
        return {phase: float(x @ np.array(c)) for phase, c in self.coefficients.items()}

    def predict(self, batch_size: float, seq_len: float) -> int:
        """The predicted tensor peak in bytes."""
        return round(max(self.predict_phases(batch_size, seq_len).values()))

    @property
    def holdout_predicted_bytes(self) -> int | None:
        if self.holdout is None:
            return None
        return self.predict(self.holdout.batch_size, self.holdout.seq_len)

    @property
    def holdout_error(self) -> float | None:
        """Relative error on the held-out size: (predicted − actual) / actual."""
        if self.holdout is None or self.holdout_predicted_bytes is None:
            return None
        return (self.holdout_predicted_bytes - self.holdout.peak_bytes) / self.holdout.peak_bytes

    def max_batch_that_fits(
        self,
        budget_bytes: int,
        seq_len: int,
        *,
        need: Callable[[int], int] | None = None,
        limit: int = 1 << 16,
    ) -> int:
        """The largest micro-batch whose need at ``seq_len`` is within ``budget_bytes`` (0: none).

        ``need`` turns a tensor peak into what the budget must hold (e.g. with the CUDA
        overheads); by default the tensor peak itself.
        """
        return _largest(lambda b: self._need(b, seq_len, need) <= budget_bytes, limit)

    def max_seq_that_fits(
        self,
        budget_bytes: int,
        batch_size: int,
        *,
        need: Callable[[int], int] | None = None,
        limit: int = 1 << 20,
    ) -> int:
        """The longest sequence whose need at ``batch_size`` is within ``budget_bytes`` (0: none).

        ``limit`` caps the answer (pass the model's maximum positions).
        """
        return _largest(lambda s: self._need(batch_size, s, need) <= budget_bytes, limit)

    def _need(self, batch_size: int, seq_len: int, need: Callable[[int], int] | None) -> int:
        peak = self.predict(batch_size, seq_len)
        return need(peak) if need is not None else peak

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": list(self.terms),
            "coefficients": {k: list(v) for k, v in self.coefficients.items()},
            "points": [[p.batch_size, p.seq_len, p.peak_bytes] for p in self.points],
            "holdout": None
            if self.holdout is None
            else [self.holdout.batch_size, self.holdout.seq_len, self.holdout.peak_bytes],
            "holdout_predicted_bytes": self.holdout_predicted_bytes,
            "holdout_error": self.holdout_error,
            "provenance": self.provenance.value,
        }


def _largest(fits: Callable[[int], bool], limit: int) -> int:
    """The largest n in [1, limit] with ``fits(n)``, for a monotone ``fits``; 0 when none."""
    if limit < 1 or not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:  # fits(lo) and not fits(hi) (or hi beyond the limit)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def fit_growth(
    points: Sequence[SizePoint | TrialResult],
    holdout: SizePoint | TrialResult | None = None,
    terms: Sequence[str] = DEFAULT_TERMS,
) -> GrowthFit:
    """Fit the tensor peak on ``points`` (least squares per phase); check it on ``holdout``."""
    pts = tuple(p if isinstance(p, SizePoint) else point_from_result(p) for p in points)
    held = holdout if holdout is None or isinstance(holdout, SizePoint) else point_from_result(holdout)
    terms = tuple(terms)
    unknown = [t for t in terms if t not in _FEATURES]
    if unknown:
        raise InvalidInputError(f"unknown growth terms {unknown}", f"choose from {', '.join(_FEATURES)}")
    sizes = {(p.batch_size, p.seq_len) for p in pts}
    if len(sizes) < len(terms):
        raise InvalidInputError(
            f"fitting {len(terms)} terms needs at least {len(terms)} different sizes, got {len(sizes)}",
            "simulate more sizes (vary both the batch and the sequence length)",
        )
    x = np.array([[_FEATURES[t](p.batch_size, p.seq_len) for t in terms] for p in pts], dtype=float)
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    phases = set.intersection(*(set(p.phase_peaks) for p in pts)) if pts else set()
    series: dict[str, list[int]] = (
        {ph: [p.phase_peaks[ph] for p in pts] for ph in sorted(phases)}
        if phases
        else {_TOTAL: [p.peak_bytes for p in pts]}
    )
    coefficients: dict[str, tuple[float, ...]] = {}
    for phase, ys in series.items():
        solution, *_ = np.linalg.lstsq(x / scale, np.array(ys, dtype=float), rcond=None)
        coefficients[phase] = tuple(float(c) for c in solution / scale)
    fit = GrowthFit(terms, coefficients, pts, held)
    if held is not None:
        log.info(
            "growth fit on %d sizes: held-out batch %d × seq %d predicted %d B, actual %d B (%+.2f%%)",
            len(pts), held.batch_size, held.seq_len, fit.holdout_predicted_bytes, held.peak_bytes,
            100 * (fit.holdout_error or 0.0),
        )  # fmt: skip
    return fit


def default_sizes(batch_size: int, seq_len: int) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Sizes to fit around (``batch_size``, ``seq_len``), and one size to hold out.

    The fit uses batches 1, 2 and 4 at a quarter, half and the full sequence length (some
    dropped); the held-out size is 3 at three quarters — inside the fitted range, used by none.
    """
    s = max(4, seq_len)
    quarter, half, three_q = max(1, s // 4), max(2, s // 2), max(3, (3 * s) // 4)
    fit = [(1, quarter), (2, quarter), (4, quarter), (1, half), (4, half), (1, s), (2, s)]
    del batch_size  # the shape of the model's growth does not depend on the target batch
    return fit, (3, three_q)


def simulate_growth(
    model: Any,
    plan: Any = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    holdout: tuple[int, int] | None = None,
    *,
    batch_size: int = 4,
    seq_len: int = 512,
    target: str = "cuda",
    terms: Sequence[str] = DEFAULT_TERMS,
    progress: Callable[[str], None] | None = None,
    moe_imbalance: float = 1.0,
) -> GrowthFit:
    """Simulate ``plan`` at a few sizes and fit its growth (sizes default to :func:`default_sizes`;
    mixture-of-experts layers under the routing ``moe_imbalance`` gives, as :func:`simulate`)."""
    from advisor.engines.simulate import simulate

    if sizes is None:
        sizes, default_holdout = default_sizes(batch_size, seq_len)
        holdout = holdout or default_holdout
    say = progress or (lambda _msg: None)
    results: list[TrialResult] = []
    wanted = list(sizes) + ([holdout] if holdout is not None else [])
    for i, (b, s) in enumerate(wanted, 1):
        say(f"size {i}/{len(wanted)}: batch {b} × seq {s}")
        result = simulate(model, plan, b, s, target=target, count_cost=False, moe_imbalance=moe_imbalance)
        point_from_result(result)  # raises with the reason when the size failed
        results.append(result)
    held = results.pop() if holdout is not None else None
    return fit_growth(results, held, terms)
