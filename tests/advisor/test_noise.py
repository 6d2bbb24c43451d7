"""Timing noise: the spread of timed steps, the threshold, and the flag in every output (the
recommender does not rank on a noisy speed; the sweep's change table, profile's table, the
text, Markdown and JSON reports say so). Synthetic Timing records: exact figures."""

from __future__ import annotations

import json

import pytest

from advisor.catalog.gpus import custom_gpu
from advisor.engines.sweep import SweepResult
from advisor.plans.cuts import parse_plan
from advisor.recommend import (
    NOISY_SPREAD,
    Backends,
    Mode,
    NeedPart,
    PlanVerdict,
    PredictedNeed,
    is_noisy,
    mark_pareto,
    rank_verdicts,
    recommend,
    tensor_parts,
)
from advisor.recommend.workload import Workload
from advisor.report import Advice, change_table, from_json
from advisor.report.trial import trial_text
from profilers.records import (
    MemoryBreakdown,
    ParamCounts,
    Provenance,
    TensorPeak,
    Timing,
    TrialResult,
    TrialStatus,
)

GiB = 2**30


def timing(median: float, low: float, high: float, steps: int = 5) -> Timing:
    return Timing(steps, median, low, high, tokens_per_step=512, samples_per_step=4)


# -- the spread and the threshold --------------------------------------------------------------


def test_spread_is_max_minus_min_over_the_median() -> None:
    assert timing(4.0, 3.5, 4.5).spread == 0.25
    assert timing(2.0, 1.0, 4.0).spread == 1.5
    assert timing(1.0, 1.0, 1.0).spread == 0.0
    assert timing(4.0, 4.0, 4.0, steps=1).spread is None  # one step cannot show its noise
    assert timing(0.0, 0.0, 0.0).spread is None


def test_the_threshold_is_exclusive_and_unknown_is_not_noisy() -> None:
    assert NOISY_SPREAD == 0.25
    assert not is_noisy(timing(4.0, 3.5, 4.5))  # exactly 25%: not over it
    assert is_noisy(timing(4.0, 3.5, 4.5 + 1e-9))
    assert not is_noisy(timing(4.0, 1.0, 9.0, steps=1)) and not is_noisy(None)


def test_the_spread_is_kept_in_a_trials_json() -> None:
    trial = _trial("lora", timing(4.0, 3.0, 5.0))
    data = trial.to_dict()
    assert data["timing"]["spread"] == 0.5
    assert TrialResult.from_dict(json.loads(json.dumps(data))).timing == trial.timing


# -- the recommender does not rank on noise --------------------------------------------------


def _verdict(plan: str, time_s: float, need: int, noisy: bool = False) -> PlanVerdict:
    return PlanVerdict(
        plan, tuple(plan.split("+")) if plan != "baseline" else (), {}, 24 * GiB, 21 * GiB,
        need=PredictedNeed((NeedPart("parameters", need, Provenance.MEASURED),)), fits=True,
        tokens_per_s=1e6 / time_s, train_time_s=time_s, noisy=noisy,
    )  # fmt: skip


def test_a_noisy_plan_ranks_after_the_steady_ones_and_off_the_front() -> None:
    fast_but_noisy = _verdict("lora", 10.0, 2 * GiB, noisy=True)
    steady = [_verdict("baseline", 100.0, 8 * GiB), _verdict("sgd", 50.0, 6 * GiB)]
    ranked = rank_verdicts(mark_pareto([fast_but_noisy, *steady]))
    assert [v.plan for v in ranked] == ["sgd", "baseline", "lora"]
    assert [v.pareto for v in ranked] == [True, False, False]  # lora would have dominated both
    noisy_two = [_verdict("lora", 10.0, 3 * GiB, True), _verdict("sgd", 90.0, 1 * GiB, True)]
    assert [v.plan for v in rank_verdicts(noisy_two)] == ["sgd", "lora"]  # by need, not by speed


def _trial(plan: str, t: Timing | None) -> TrialResult:
    b = MemoryBreakdown(GiB, 0, GiB, 2 * GiB, 0, GiB)
    return TrialResult(
        model="fake", plan=plan, cuts=parse_plan(plan).cut_names, device="cuda:0", batch_size=4,
        seq_len=128, status=TrialStatus.OK, params=ParamCounts(10**9, 10**9, GiB, GiB),
        tensor_peak=TensorPeak(b.total_bytes, b, 3 * GiB, "backward"), timing=t,
    )  # fmt: skip


# baseline steady at 1.0 s; lora "fastest" at 0.1 s but its steps spread 50%; sgd steady at 0.9 s
TIMINGS = {
    "baseline": timing(1.0, 0.95, 1.05),
    "lora": timing(0.1, 0.08, 0.13),
    "sgd": timing(0.9, 0.88, 0.92),
}


@pytest.fixture(scope="module")
def advice() -> Advice:
    backends = Backends(
        trial=lambda plan, batch: _trial(plan.name, TIMINGS[plan.name] if batch == 4 else None),
        need=lambda t: PredictedNeed((*tensor_parts(t), NeedPart("CUDA context", GiB // 2, Provenance.MEASURED))),
        step_time=lambda t, plan: (t.timing.median_step_time_s, Provenance.MEASURED) if t.timing else None,
    )
    rec = recommend(
        "fake", [parse_plan(p) for p in ("lora", "sgd")], custom_gpu(24 * GiB), Workload(),
        backends, mode=Mode.MEASURE, check_top=0,
    )  # fmt: skip
    return Advice.of(rec)


def test_recommend_flags_the_noisy_plan_and_ranks_it_last(advice: Advice) -> None:
    assert [v.plan for v in advice.ranked] == ["sgd", "baseline", "lora"]
    lora = advice.verdict("lora")
    assert lora.noisy and lora.timing_spread == pytest.approx(0.5) and not lora.pareto
    assert not advice.verdict("sgd").noisy and advice.verdict("sgd").timing_spread == pytest.approx(0.04 / 0.9)
    assert advice.best is not None and advice.best.plan == "sgd"
    assert any(n.startswith("Noisy timings: the timed steps of lora (50%) varied by more than 25%") for n in advice.notes)


def test_the_flag_is_in_the_text_markdown_and_json(advice: Advice) -> None:
    text = advice.to_text()
    row = next(line for line in text.splitlines() if line.startswith("3  lora"))
    assert "tok/s noisy" in row
    assert "noisy: lora (50%): timed steps varied by more than 25% of the median" in text
    md = advice.to_markdown()
    assert "tok/s noisy |" in md and "Noisy timings: the timed steps of lora (50%)" in md
    data = json.loads(advice.to_json())
    lora = next(v for v in data["ranked"] if v["plan"] == "lora")
    assert lora["noisy"] is True
    assert lora["timing_spread"]["unit"] == "fraction" and lora["timing_spread"]["value"] == pytest.approx(0.5)
    assert next(v for v in data["ranked"] if v["plan"] == "sgd")["noisy"] is False
    again = from_json(advice.to_json())
    assert again.verdict("lora").noisy and again == advice


# -- the sweep's change table and profile's table ----------------------------------------------


def test_the_change_table_flags_a_noisy_baseline_and_plan() -> None:
    results = (
        _trial("baseline", timing(10.0, 4.0, 12.0)),  # 80%: the +1344% of the issue was against this
        _trial("lora", timing(0.7, 0.69, 0.71)),
        _trial("sgd", timing(1.0, 1.0, 1.0, steps=1)),
    )
    sweep = SweepResult("fake", 4, 128, "cuda:0", results)
    text = change_table(sweep)
    lines = text.splitlines()
    assert lines[0].split()[:8] == ["plan", "status", "peak", "Δ", "peak", "tokens/s", "Δ", "tok/s"]
    assert "step spread" in lines[0]
    base = next(x for x in lines if x.startswith("baseline "))
    lora = next(x for x in lines if x.startswith("lora "))
    sgd = next(x for x in lines if x.startswith("sgd "))
    assert "80% noisy" in base
    assert "+1328.6% noisy" in lora and " 3% " in lora  # steady itself, but against a noisy baseline
    assert "+900.0% noisy" in sgd and " – " in sgd  # one step: its spread is unknown
    assert lines[-1].startswith("noisy timings: baseline (80%): timed steps varied by more than 25%")
    md = change_table(sweep, markdown=True)
    assert "| 80% noisy |" in md and "_noisy timings: baseline (80%)" in md
    quiet = SweepResult("fake", 4, 128, "cuda:0", results[1:])
    assert "noisy" not in change_table(quiet)


def _row(text: str, figure: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(figure + "  "))
    return [cell.strip() for cell in line[len(figure) :].strip().split("  ") if cell.strip()]


def test_profiles_table_has_the_spread_row() -> None:
    noisy = trial_text(_trial("lora", timing(4.0, 3.0, 5.0)))
    assert _row(noisy, "step-time spread") == ["50% of the median: noisy (over 25%)", "measured"]
    steady = trial_text(_trial("lora", timing(4.0, 3.9, 4.1)))
    assert _row(steady, "step-time spread") == ["5% of the median", "measured"]
    one = trial_text(_trial("lora", timing(4.0, 4.0, 4.0, steps=1)))
    assert _row(one, "step-time spread") == ["– (one timed step)", "measured"]
