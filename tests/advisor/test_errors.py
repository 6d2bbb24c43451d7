"""One error path (issue 18): every command and API entry refuses bad input with an
AdvisorError and a hint — before any work — and the CLI prints it as one message, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

import advisor
from advisor import api
from advisor.cli import main
from advisor.core.errors import AdvisorError, PlanError

REFUSED = {
    "grad-ckpt+grad-ckpt": "grad-ckpt appears twice",
    "sgd+adamw8bit": "adamw8bit and sgd both choose the optimizer",
    "lora+frozen-emb": "frozen-emb is redundant under lora",
}


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2  # the message, then its hint
    return captured.err


# -- explicit plans that are redundant or conflicting ------------------------------------------


@pytest.mark.parametrize("plan", sorted(REFUSED))
def test_the_api_refuses_a_plan_the_sweep_would_prune(plan: str, tmp_path: Path) -> None:
    why = REFUSED[plan]
    calls = [
        lambda: advisor.simulate("tiny-llama", plan, batch_size=1, seq_len=8),
        lambda: advisor.profile("tiny-llama", plan=plan, batch_size=1, seq_len=8, steps=0),
        lambda: advisor.profile("tiny-llama", plan=advisor.parse_plans(plan)[0], batch_size=1, seq_len=8),
        lambda: advisor.sweep("tiny-llama", plans=f"lora;{plan}", out=tmp_path / "s.jsonl"),
        lambda: api.simulate_plans("tiny-llama", plans=[plan]),
        lambda: advisor.advise("tiny-llama", plans=plan),
    ]
    for call in calls:
        with pytest.raises(PlanError, match=why) as info:
            call()
        assert "refused" in info.value.message and info.value.hint
    assert not (tmp_path / "s.jsonl").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--plans", "{plan}"],
        ["simulate", "--sweep", "--plans", "baseline;{plan}"],
        ["profile", "--cuts", "{cuts}"],
        ["sweep", "--plans", "{plan}", "--out", "{out}"],
        ["recommend", "--plans", "lora;{plan}"],
    ],
)
@pytest.mark.parametrize("plan", sorted(REFUSED))
def test_the_cli_refuses_it_in_one_message(
    argv: list[str], plan: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.jsonl"
    args = [a.format(plan=plan, cuts=plan.replace("+", ","), out=out) for a in argv]
    err = _one_error(capsys, main([args[0], "--model", "tiny-llama", *args[1:]]))
    assert REFUSED[plan] in err and "hint: " in err
    assert not out.exists()


@pytest.mark.parametrize("text", ["++", "", ";", "lora;;sgd", "lora+"])
def test_empty_plan_text_is_an_error_everywhere(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["simulate", "--model", "tiny-llama", "--plans", text],
        ["simulate", "--model", "tiny-llama", "--sweep", "--plans", text],
        ["sweep", "--model", "tiny-llama", "--plans", text],
        ["recommend", "--model", "tiny-llama", "--plans", text],
    ):
        err = _one_error(capsys, main(argv))
        assert "empty" in err or "no plan" in err
    for call in (
        lambda: advisor.simulate("tiny-llama", text),
        lambda: advisor.profile("tiny-llama", plan=text),
        lambda: advisor.sweep("tiny-llama", plans=text),
        lambda: advisor.advise("tiny-llama", plans=text),
        lambda: api.simulate_plans("tiny-llama", plans=text),
    ):
        with pytest.raises(AdvisorError):
            call()
