"""The workload: validation with messages that list the allowed values, derived figures."""

from __future__ import annotations

import pytest

from advisor.core.errors import InvalidInputError
from advisor.recommend.workload import Workload, parse_count


def test_defaults_and_derived_figures() -> None:
    w = Workload(micro_batch=2, seq_len=512, dataset_tokens=1_000_000, epochs=3)
    assert w.margin == 0.10
    assert w.total_tokens == 3_000_000
    assert w.tokens_per_micro_batch == 1024
    assert w.usable_bytes(1000) == 900
    assert Workload(margin=0).usable_bytes(1000) == 1000


def test_round_trips_through_a_dict() -> None:
    w = Workload(micro_batch=3, seq_len=7, dataset_tokens=99, epochs=0.5, margin=0.2)
    assert Workload.from_dict({**w.to_dict(), "unknown": 1}) == w


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"micro_batch": 0}, "micro-batch must be ≥ 1"),
        ({"micro_batch": 2.5}, "whole number"),
        ({"seq_len": 0}, "sequence length must be ≥ 1"),
        ({"dataset_tokens": 0}, "dataset size must be ≥ 1"),
        ({"epochs": 0}, "epochs must be a number > 0"),
        ({"epochs": float("nan")}, "epochs must be a number > 0"),
        ({"margin": 1.0}, "[0, 1)"),
        ({"margin": -0.1}, "[0, 1)"),
        ({"margin": "10%"}, "[0, 1)"),
    ],
)
def test_bad_values_say_what_is_allowed(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Workload(**kwargs)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert info.value.hint  # every message comes with the fix


def test_margin_message_lists_the_allowed_range() -> None:
    with pytest.raises(InvalidInputError) as info:
        Workload(margin=1.5)
    assert "0 (no margin) up to but not including 1" in str(info.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [("50M", 50_000_000), ("2.5B", 2_500_000_000), ("300k", 300_000), ("1_000", 1000), ("7", 7)],
)
def test_parse_count(text: str, value: int) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-5M", "0", "5X"])
def test_parse_count_rejects_nonsense(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_count(text)
