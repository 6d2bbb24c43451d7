"""One fit rule: simulate, profile, recommend and the API give the same verdict for the same
plan, GPU, budget and margin, at the default margin and an explicit one, and each verdict says
which budget and margin it used."""

from __future__ import annotations

import math
import re

import pytest

from advisor import api
from advisor.cli import main
from advisor.core.errors import AdvisorError
from advisor.core.units import format_bytes
from advisor.engines.need import DEFAULT_MARGIN, NeedPart, PredictedNeed, fits_in, usable_bytes
from advisor.recommend.workload import Workload
from advisor.report.text import budget_text, fit_text
from profilers.records import Provenance

MODEL, PLAN, BATCH, SEQ = "tiny-gpt2", "lora", 1, 16


def test_the_rule_and_its_one_default() -> None:
    assert DEFAULT_MARGIN == 0.10 == Workload().margin == api.DEFAULT_MARGIN
    assert usable_bytes(1000) == 900 and usable_bytes(1000, 0) == 1000 and usable_bytes(1000, 0.25) == 750
    assert fits_in(900, 1000) and not fits_in(901, 1000) and fits_in(1000, 1000, 0)
    assert Workload(margin=0.25).usable_bytes(1000) == 750
    need = PredictedNeed((NeedPart("parameters", 900, Provenance.SIMULATED),))
    assert need.fits(1000) and not need.fits(999) and need.fits(900, 0)
    for bad in (1.0, -0.01, float("nan"), "0.1", True):
        with pytest.raises(AdvisorError, match=r"\[0, 1\)"):
            usable_bytes(1000, bad)  # type: ignore[arg-type]


def test_a_verdict_names_its_budget_and_margin() -> None:
    gib = 1 << 30
    assert budget_text(21 * gib, 0.10) == "18.9 GiB usable (21.0 GiB − 10% margin)"
    assert fit_text(int(19.86 * gib), 21 * gib, 0.10) == "19.9 GiB of 18.9 GiB usable (21.0 GiB − 10% margin): does not fit"
    assert fit_text(int(19.86 * gib), 21 * gib, 0.0) == "19.9 GiB of 21.0 GiB usable (21.0 GiB − 0% margin): fits"


@pytest.fixture(scope="module")
def need_bytes() -> int:
    """The plan's need on an RTX 4090 (any memory: the need does not depend on it)."""
    result = api.simulate(MODEL, PLAN, batch_size=BATCH, seq_len=SEQ)
    figures = api.gpu_figures(result, api.target_gpu("rtx-4090", 1 << 30))
    assert figures.need is not None
    return figures.need.total_bytes


def _simulate_verdict(memory: int, margin: float | None, capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    argv = ["simulate", "-m", MODEL, "--plans", PLAN, "-b", str(BATCH), "-s", str(SEQ)]
    argv += ["--gpu", "rtx-4090", "--gpu-mem", f"{memory}B"]
    argv += [] if margin is None else ["--margin", str(margin)]
    assert main(argv) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("fit "))
    said = re.search(r": (fits|does not fit)\s", line)
    assert said is not None, line
    return said.group(1) == "fits", line


def _recommend_verdict(memory: int, margin: float | None, capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    argv = ["recommend", "-m", MODEL, "--plans", PLAN, "-b", str(BATCH), "-s", str(SEQ), "--check-top", "0"]
    argv += ["--gpu", "rtx-4090", "--gpu-mem", f"{memory}B"]
    argv += [] if margin is None else ["--margin", str(margin)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    row = re.search(rf"^\d+\s+{PLAN}\s+(yes|no)\s", out, re.M)
    assert row is not None, out
    return row.group(1) == "yes", out


@pytest.mark.parametrize(
    ("margin", "fits"),
    [
        (None, False),  # the default 10%: usable 0.9 × need/0.95 ≈ 0.947 × need
        (0.0, True),  # no margin: need/0.95 holds the need
        (0.04, True),  # usable 0.96 × need/0.95 ≈ 1.01 × need
        (0.06, False),  # usable 0.94 × need/0.95 ≈ 0.989 × need
    ],
)
def test_simulate_recommend_and_the_api_agree(
    need_bytes: int, margin: float | None, fits: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = math.ceil(need_bytes / 0.95)
    used = DEFAULT_MARGIN if margin is None else margin
    gpu = api.target_gpu("rtx-4090", memory)
    result = api.simulate(MODEL, PLAN, batch_size=BATCH, seq_len=SEQ)

    figures = api.gpu_figures(result, gpu) if margin is None else api.gpu_figures(result, gpu, margin=margin)
    assert figures.fits is fits and figures.margin == used
    assert figures.budget_bytes == int(memory * (1 - used))

    workload = Workload(micro_batch=BATCH, seq_len=SEQ) if margin is None else Workload(BATCH, SEQ, margin=margin)
    advice = api.advise(MODEL, gpu=gpu, workload=workload, plans=PLAN, check_top=0)
    assert advice.verdict(PLAN).fits is fits
    assert advice.verdict(PLAN).budget_bytes == figures.budget_bytes

    said, line = _simulate_verdict(memory, margin, capsys)
    assert said is fits, line
    budget = f"{format_bytes(int(memory * (1 - used)), 2)} usable ({format_bytes(memory, 2)} − {used:.0%} margin)"
    assert budget in line

    said, out = _recommend_verdict(memory, margin, capsys)
    assert said is fits, out
    assert f"budget {format_bytes(int(memory * (1 - used)))} usable ({format_bytes(memory)} − {used:.0%} margin)" in out


def test_profile_gives_the_same_verdict_on_a_target(need_bytes: int, capsys: pytest.CaptureFixture[str]) -> None:
    """A measured CPU step's need on a target GPU, against a budget that holds it only without
    the margin (the measured tensor peak is the simulated one's, to the byte, on CPU)."""
    argv = ["profile", "-m", MODEL, "--cuts", PLAN, "-b", str(BATCH), "-s", str(SEQ), "--steps", "1", "--device", "cpu"]
    assert main([*argv, "--gpu-mem", "1GiB", "--margin", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "fit " in out and "usable (1.00 GiB − 50% margin): fits" in out
    assert main([*argv, "--gpu-mem", "1MiB"]) == 0
    out = capsys.readouterr().out
    assert "usable (1.00 MiB − 10% margin): does not fit" in out


def test_a_bad_margin_is_one_line_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("simulate", "profile", "recommend"):
        assert main([command, "-m", MODEL, "--gpu-mem", "1GiB", "--margin", "1.5"]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("error: safety margin must be in [0, 1), got 1.5\n  hint: ")


@pytest.mark.slow
def test_the_issue_case_of_an_8b_model_on_21_gib(capsys: pytest.CaptureFixture[str]) -> None:
    """llama-3.1-8b grad-ckpt+lora+bf16-weights 1×2048 on an RTX 4090 with 21 GiB: simulate said
    "fits" (no margin) while recommend said "Nothing fits" (10%); both now say it does not fit."""
    argv = ["-m", "llama-3.1-8b", "--plans", "grad-ckpt+lora+bf16-weights", "-b", "1", "-s", "2048"]
    argv += ["--gpu", "rtx-4090", "--gpu-mem", "21GiB"]
    assert main(["simulate", *argv]) == 0
    out = capsys.readouterr().out
    assert "of 18.90 GiB usable (21.00 GiB − 10% margin): does not fit" in out
    assert main(["recommend", *argv, "--check-top", "0"]) == 0
    out = capsys.readouterr().out
    assert "Nothing fits. Closest: grad-ckpt+lora+bf16-weights needs " in out
    assert "of 18.9 GiB usable (21.0 GiB − 10% margin): does not fit." in out
