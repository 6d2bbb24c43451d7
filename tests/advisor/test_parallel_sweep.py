"""A simulated sweep in worker processes: the same results as one plan after another."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from torch import nn

from advisor.cli import main
from advisor.core.errors import InvalidInputError
from advisor.engines import simulate as simulate_module
from advisor.engines.progress import SweepProgress
from advisor.engines.simulate import default_workers, simulate_plans
from advisor.models import ModuleSource
from advisor.plans import parse_plans
from profilers.records import TrialResult, TrialStatus

PLANS = "baseline;lora;grad-ckpt;sgd;freeze-layers(k=99);lora(targets=nope)"  # the last two fail


def _figures(r: TrialResult) -> dict[str, Any]:
    out = r.to_dict()
    out.pop("wall_time_s")
    return out


@pytest.fixture(params=[True, False], ids=["fork", "fork-server"])
def start(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Workers as forks of this process, or started fresh and sent the model (as where
    another thread runs, or CUDA is initialised)."""
    monkeypatch.setattr(simulate_module, "_fork_is_safe", lambda: request.param)
    return bool(request.param)


@pytest.mark.slow
def test_workers_give_the_serial_results_in_plan_order(start: bool) -> None:
    plans = parse_plans(PLANS)
    said: list[SweepProgress] = []
    seen: list[str] = []
    par = simulate_plans(
        "tiny-gpt2", plans, 2, 32, workers=2, progress=said.append, on_result=lambda r: seen.append(r.plan)
    )
    ser = simulate_plans("tiny-gpt2", plans, 2, 32, workers=1)
    assert [r.plan for r in par] == [p.name for p in plans]
    assert [_figures(r) for r in par] == [_figures(r) for r in ser]
    assert [r.status for r in par][-2:] == [TrialStatus.ERROR, TrialStatus.ERROR]
    assert sorted(seen) == sorted(p.name for p in plans)
    finished = [e for e in said if e.finished]  # one event per plan, as each finishes
    assert sorted(e.index for e in finished) == list(range(1, len(plans) + 1))
    assert [e.sweep_elapsed_s for e in finished] == sorted(e.sweep_elapsed_s for e in finished)
    assert all(e.result is not None for e in finished)


@pytest.mark.slow
def test_bad_input_raises_as_serially() -> None:
    plans = parse_plans("baseline;lora")
    with pytest.raises(InvalidInputError) as serial:
        simulate_plans("tiny-gpt2", plans, 1, 5000, workers=1)
    with pytest.raises(InvalidInputError) as parallel:
        simulate_plans("tiny-gpt2", plans, 1, 5000, workers=2)
    assert str(parallel.value) == str(serial.value) and parallel.value.hint


def test_a_model_that_cannot_be_sent_runs_here_or_in_forks(start: bool) -> None:
    source = ModuleSource("lambda-mlp", lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8)))
    said: list[SweepProgress] = []
    results = simulate_plans(source, parse_plans("baseline;sgd"), 2, 4, workers=2, progress=said.append)
    assert [r.status for r in results] == [TrialStatus.OK, TrialStatus.OK]
    assert results[1].tensor_peak.peak_bytes < results[0].tensor_peak.peak_bytes  # type: ignore[union-attr]
    # a fork inherits the lambda, and a worker reports only each plan's end; a model that
    # cannot be pickled to a fresh worker runs here, and each plan's start is heard
    assert any(e.kind == "start" for e in said) is (not start)
    assert [r.to_dict() | {"wall_time_s": 0} for r in results] == [
        r.to_dict() | {"wall_time_s": 0} for r in simulate_plans(source, parse_plans("baseline;sgd"), 2, 4, workers=1)
    ]


def test_forks_only_where_no_other_thread_runs() -> None:
    assert simulate_module._fork_is_safe() is (threading.active_count() == 1)  # pytest-xdist runs threads
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert simulate_module._fork_is_safe() is False
    finally:
        stop.set()
        other.join()


def test_workers_must_be_positive() -> None:
    with pytest.raises(InvalidInputError):
        simulate_plans("tiny-gpt2", parse_plans("baseline"), 1, 8, workers=0)
    assert default_workers() >= 1


def test_cli_full_replay_and_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--model", "tiny-llama", "--batch", "1", "--seq", "16", "--full-replay"]) == 0
    assert "full replay: asked for" in capsys.readouterr().out
    code = main(["simulate", "--model", "tiny-llama", "--sweep", "--plans", "baseline;sgd", "--batch", "1",
                 "--seq", "16", "--workers", "1"])  # fmt: skip
    assert code == 0
    assert "2 plans simulated" in capsys.readouterr().out
