"""Peaks over the whole run: loading a real checkpoint, measured on this CPU, against the
prediction, and which moment decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advisor.engines.simulate import simulate
from advisor.report.trial import trial_text
from profilers.records import RunMoments, TrialResult
from profilers.simulate.moments import load_peak_bytes
from profilers.tracker import Role, TensorMemoryTracker


@pytest.fixture(scope="module")
def fp32_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama saved by save_pretrained in float32 (safetensors, config dtype float32)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("fp32-llama")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    assert json.loads((path / "config.json").read_text())["dtype"] == "float32"
    return path


def _measured_load_peak(path: Path, cast: torch.dtype) -> int:
    """The real ``from_pretrained(path)`` (no dtype) then ``model.to(cast)`` on this CPU, with the
    exact tracker. safetensors hands the weights over memory-mapped, outside torch's dispatch,
    so they are registered the moment from_pretrained returns them; the cast is tracked op by op."""
    from transformers import AutoModelForCausalLM

    tracker = TensorMemoryTracker("cpu")
    with tracker:
        model = AutoModelForCausalLM.from_pretrained(path)
        assert next(model.parameters()).dtype == torch.float32  # transformers 5.25: dtype "auto"
        tracker.register([*model.parameters(), *model.buffers()], Role.PARAMETER)
        model = model.to(cast)  # type: ignore[arg-type]
    peak = tracker.result().peak_bytes
    tracker.close()
    return peak


def test_loading_an_fp32_checkpoint_for_bf16_training_decides_the_peak(fp32_checkpoint: Path) -> None:
    measured = _measured_load_peak(fp32_checkpoint, torch.bfloat16)
    r = simulate(str(fp32_checkpoint), "lora+bf16-weights", 1, 16, target="cpu", count_cost=False)
    assert r.ok, r.reason
    assert r.simulation is not None and r.simulation.moments is not None
    moments = r.simulation.moments
    assert moments.loading_bytes == measured
    assert r.tensor_peak is not None and moments.step_bytes == r.tensor_peak.peak_bytes < measured
    assert moments.deciding == "loading"
    assert moments.loading_path == "float32 checkpoint loaded without dtype, then .to(bfloat16)"
    for markdown in (False, True):
        text = trial_text(r, markdown=markdown)
        assert "deciding moment" in text and "loading (" in text


def test_the_step_decides_when_the_checkpoint_is_trained_in_its_own_dtype(fp32_checkpoint: Path) -> None:
    r = simulate(str(fp32_checkpoint), "baseline", 1, 16, target="cpu", count_cost=False)
    assert r.ok and r.simulation is not None and r.simulation.moments is not None
    moments = r.simulation.moments
    assert r.params is not None
    # no cast: the fp32 weights (4 B each) and the rotary buffers (inv_freq and
    # original_inv_freq: head_dim 64 / 2 = 32 fp32 each)
    assert moments.loading_bytes == 4 * r.params.total + 2 * 32 * 4
    assert moments.deciding == "step"


def test_the_cast_peak_is_the_new_copy_beside_the_old_weights_in_cast_order() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(10, 20, bias=False), torch.nn.Linear(20, 5, bias=False))
    # fp32 → bf16: casting the first weight (200 values) holds 4·(200+100) + 2·200; the
    # second then holds less (2·200 + 4·100 + 2·100)
    assert load_peak_bytes(model, torch.float32, torch.bfloat16) == 4 * 300 + 2 * 200
    # bf16 → fp32: 2·300 + 4·200 while casting the first, the same while casting the second
    # (4·200 + 2·100 + 4·100)
    assert load_peak_bytes(model, torch.bfloat16, torch.float32) == 2 * 300 + 4 * 200
    assert load_peak_bytes(model, torch.float32, torch.float32) == 4 * 300


def test_moments_round_trip_and_old_results_load_without_them(fp32_checkpoint: Path) -> None:
    r = simulate(str(fp32_checkpoint), "lora+bf16-weights", 1, 16, target="cpu", count_cost=False)
    again = TrialResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.simulation is not None and isinstance(again.simulation.moments, RunMoments)
    assert r.simulation is not None and again.simulation.moments == r.simulation.moments
    doc = r.to_dict()
    del doc["simulation"]["moments"]  # as an earlier version wrote it
    assert TrialResult.from_dict(doc).simulation.moments is None  # type: ignore[union-attr]


def test_the_recommendation_notes_a_plan_whose_peak_is_the_loading(fp32_checkpoint: Path) -> None:
    from advisor.api import advise
    from advisor.recommend import Workload
    from advisor.report.markdown import to_markdown

    rec = advise(
        str(fp32_checkpoint), gpu="rtx-4090", workload=Workload(micro_batch=1, seq_len=16),
        plans="lora+bf16-weights", mode="simulate", check_top=0,
    )  # fmt: skip
    assert any(n.startswith("Loading decides the peak") and "lora+bf16-weights" in n for n in rec.notes)
    assert "Loading decides the peak" in to_markdown(rec)
