"""Growth of memory with batch and sequence length: fitted, checked on a held-out size."""

from __future__ import annotations

import pytest

from advisor.core.errors import InvalidInputError
from advisor.engines.growth import SizePoint, default_sizes, fit_growth, simulate_growth
from advisor.plans.cuts import parse_plan

pytestmark = pytest.mark.usefixtures("fast_simulations")


def test_simulated_growth_predicts_the_held_out_size_within_2_percent() -> None:
    fit = simulate_growth("tiny-llama", parse_plan("baseline"), seq_len=256, target="cpu")
    assert fit.holdout is not None
    assert (fit.holdout.batch_size, fit.holdout.seq_len) == (3, 192)
    assert fit.holdout not in fit.points  # the held-out size is not used in the fit
    assert abs(fit.holdout_error or 1.0) < 0.02
    assert set(fit.coefficients) == {"forward", "backward", "optimizer", "zero_grad"}


def test_growth_of_eager_attention_on_a_preset_follows_the_quadratic_term() -> None:
    fit = simulate_growth("gpt2", parse_plan("eager-attn+lora"), seq_len=256, target="cuda")
    assert abs(fit.holdout_error or 1.0) < 0.02
    assert max(c[fit.terms.index("B*S^2")] for c in fit.coefficients.values()) > 0


def _synthetic(b: int, s: int) -> SizePoint:
    forward = 1000 + 3 * s + 50 * b * s + 2 * b * s * s
    optimizer = 500_000 + 8 * b * s
    return SizePoint(b, s, max(forward, optimizer), {"forward": forward, "optimizer": optimizer})


def test_the_fit_is_exact_on_phases_that_are_sums_of_its_terms() -> None:
    sizes, held = default_sizes(4, 128)
    fit = fit_growth([_synthetic(b, s) for b, s in sizes], _synthetic(*held))
    assert fit.holdout_error == pytest.approx(0.0, abs=1e-9)
    for b, s in [(1, 8), (16, 1024), (7, 300)]:  # the peak moves from the optimizer to the forward
        assert fit.predict(b, s) == _synthetic(b, s).peak_bytes


def test_largest_batch_and_sequence_that_fit_a_budget() -> None:
    sizes, _ = default_sizes(4, 128)
    fit = fit_growth([_synthetic(b, s) for b, s in sizes])
    budget = 10_000_000
    b = fit.max_batch_that_fits(budget, 512)
    assert fit.predict(b, 512) <= budget < fit.predict(b + 1, 512)
    s = fit.max_seq_that_fits(budget, 2)
    assert fit.predict(2, s) <= budget < fit.predict(2, s + 1)
    assert fit.max_seq_that_fits(budget, 2, limit=1024) == min(s, 1024)
    assert fit.max_batch_that_fits(1000, 512) == 0  # not even one sample fits
    # a need function (e.g. with GPU overheads) is applied before comparing
    with_overhead = fit.max_batch_that_fits(budget, 512, need=lambda peak: peak + 2_000_000)
    assert with_overhead < b


def test_fit_needs_enough_distinct_sizes_and_known_terms() -> None:
    with pytest.raises(InvalidInputError, match="at least 4"):
        fit_growth([_synthetic(1, 8), _synthetic(2, 8)])
    with pytest.raises(InvalidInputError, match="unknown growth terms"):
        fit_growth([_synthetic(1, 8)], terms=("B^3",))


def test_measured_points_without_phases_fit_the_total() -> None:
    points = [SizePoint(b, s, 100 + 7 * b * s) for b, s in [(1, 8), (2, 8), (1, 16), (4, 16), (2, 32)]]
    fit = fit_growth(points, SizePoint(3, 24, 100 + 7 * 3 * 24), terms=("1", "B*S"))
    assert set(fit.coefficients) == {"total"}
    assert fit.holdout_error == pytest.approx(0.0, abs=1e-9)
    assert fit.to_dict()["holdout"] == [3, 24, 604]
