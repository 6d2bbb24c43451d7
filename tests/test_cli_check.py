"""``vram-advisor check CONFIG``: the plan understood, the ignored keys, the simulated need on the
GPU, the verdict by the one fit rule and the nearest plan that fits; JSON with ``--json``; one
clear error for a config without a model, a Hub id not in the cache, or a multi-GPU config
without its GPU count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import TrainingArguments

from advisor import api
from advisor.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "configs"
TINY_AXOLOTL = str(FIXTURES / "axolotl_lora_tiny.yml")


def _dump(tmp_path: Path) -> str:
    path = tmp_path / "training_args.json"
    args = TrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=4,
                             gradient_accumulation_steps=2, optim="adamw_torch", use_cpu=True)  # fmt: skip
    path.write_text(args.to_json_string())
    return str(path)


def test_check_prints_plan_need_and_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", TINY_AXOLOTL, "--gpu", "rtx-4090", "-q"]) == 0
    out = capsys.readouterr().out
    assert "config: " in out and "(axolotl)" in out
    assert "plan understood: grad-ckpt+lora(r=16,targets=q_proj|v_proj)+accum(steps=2)+adamw8bit" in out
    assert "micro-batch 2 × accumulation 2 = batch 4, sequence 128" in out
    assert "ignored: none" in out
    assert "tensor peak" in out and "simulated" in out
    assert "verdict on NVIDIA GeForce RTX 4090: " in out and ": fits" in out
    assert "nearest plan that fits: this one, as it is" in out


def test_check_json_agrees_with_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _dump(tmp_path)
    args = ["check", config, "--model", "tiny-llama", "--gpu-mem", "640MiB", "--seq", "128", "--no-search", "--json"]
    assert main(args) == 3  # read and simulated, and it does not fit: a script can branch on it
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "vram-advisor/check" and doc["schema_version"] == 2  # 2 since the per-rank fields
    assert doc["config"]["plan"] == "accum(steps=2)" and doc["config"]["batch_size"] == 8
    assert doc["config"]["formats"] == ["training-arguments"] and doc["config"]["ignored"] == []
    assert (doc["model"], doc["seq_len"], doc["seq_len_assumed"]) == ("tiny-llama", 128, False)
    # the same plan simulated by the API at the config's sizes
    alone = api.simulate("tiny-llama", "accum(steps=2)", batch_size=8, seq_len=128)
    assert alone.tensor_peak is not None and doc["tensor_peak_bytes"] == alone.tensor_peak.peak_bytes
    need = api.gpu_figures(alone, api.target_gpu(gpu_mem="640MiB")).need
    assert need is not None and doc["need_bytes"] == need.total_bytes
    assert doc["budget_bytes"] == int(640 * 2**20 * 0.9)
    assert doc["fits"] is False and doc["need_bytes"] > doc["budget_bytes"]
    assert doc["nearest"] is None and doc["neighbours_tried"] == 0


def test_a_config_without_a_model_needs_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", _dump(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: the config names no model" in err and "--model llama-3.2-1b" in err
    assert "Traceback" not in err


def test_multi_gpu_configs_are_checked_per_rank(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 2}))
    assert main(["check", str(path), "--model", "tiny-llama"]) == 1
    err = capsys.readouterr().err
    assert "error: the config's plan zero(stage=3) is multi-GPU but does not say how many GPUs" in err
    assert "--gpus N" in err and "Traceback" not in err
    args = ["check", str(path), "--model", "tiny-llama", "--gpus", "4", "--seq", "32", "--no-search", "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "plan understood: zero(stage=3)" in out
    assert "4 GPUs over 1 node: the figures below are per rank (one GPU)" in out
    assert "does not say how many GPUs" not in out  # given: the note is gone
    assert "(one rank's layout" in out


def test_contradictory_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.yml"
    path.write_text("base_model: tiny-llama\nbf16: true\nfp16: true\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: contradictory config: bf16 and fp16 are both true"


def test_a_hub_id_not_in_the_cache_is_the_hub_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "a.yml"
    path.write_text("base_model: acme-research/never-published-7b\nadapter: lora\nmicro_batch_size: 1\n")
    assert main(["check", str(path), "--no-search"]) == 1
    err = capsys.readouterr().err
    assert "error: acme-research/never-published-7b: config.json is not in the Hugging Face cache" in err


@pytest.fixture
def check_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``api.check_config`` computed once per set of arguments: the text and the JSON run of a
    slow check render the same result (the rendering is what they test, not a second search)."""
    real = api.check_config
    seen: dict[str, api.ConfigCheck] = {}

    def once(config: list[Path], **kwargs: object) -> api.ConfigCheck:
        key = repr((config, sorted((k, repr(v)) for k, v in kwargs.items() if k != "progress")))
        if key not in seen:
            seen[key] = real(config, **kwargs)  # type: ignore[arg-type]
        return seen[key]

    monkeypatch.setattr(api, "check_config", once)


@pytest.mark.slow
@pytest.mark.usefixtures("check_once")
def test_check_finds_the_nearest_plan_that_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # full fine-tuning of tiny-llama (batch 8 as 4 × 2, seq 128) needs 582.75 MiB on a CUDA GPU
    # (test above): 640 MiB less the 10% margin (576 MiB) is too little; a plan one change away fits
    config = _dump(tmp_path)
    args = ["check", config, "--model", "tiny-llama", "--gpu-mem", "640MiB", "--seq", "128", "-q"]
    assert main([*args, "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is False and doc["neighbours_tried"] >= 10
    nearest = doc["nearest"]
    assert nearest["fits"] is True and nearest["need_bytes"] <= doc["budget_bytes"] < doc["need_bytes"]
    assert "TrainingArguments" in doc["write_back"]
    assert main(args) == 3
    out = capsys.readouterr().out
    assert f"nearest plan that fits (best of {doc['neighbours_tried']} one change away): {nearest['plan']}" in out
    assert "as TrainingArguments:" in out
    # the nearest plan, simulated on its own at the same sizes, fits the same budget
    alone = api.simulate("tiny-llama", nearest["plan"], batch_size=8, seq_len=128)
    assert api.gpu_figures(alone, api.target_gpu(gpu_mem="640MiB")).fits is True


@pytest.mark.slow
@pytest.mark.usefixtures("check_once")
def test_acceptance_axolotl_qlora_on_an_rtx_4090(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(FIXTURES / "axolotl_qlora.yml")
    assert main(["check", config, "--gpu", "rtx-4090", "-q"]) == 0
    out = capsys.readouterr().out
    assert "model: llama-3.2-1b" in out
    assert "plan understood: sdpa-attn+grad-ckpt+qlora(" in out
    assert "micro-batch 2 × accumulation 4 = batch 8, sequence 4096" in out
    assert "lora_modules_to_save: ['embed_tokens', 'lm_head'] (not modelled)" in out
    assert "verdict on NVIDIA GeForce RTX 4090: " in out
    assert "nearest plan that fits: this one, as it is" in out
    assert main(["check", config, "--gpu", "rtx-4090", "-q", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is True and doc["need_bytes"] <= doc["budget_bytes"]
    assert doc["config"]["seq_len"] == 4096 and doc["gpu"] == "rtx-4090"


def test_batch_and_sequence_where_the_config_has_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from peft import LoraConfig

    LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]).save_pretrained(str(tmp_path))
    config = str(tmp_path / "adapter_config.json")
    args = ["check", config, "--model", "tiny-llama", "--gpu", "rtx-4090", "--no-search", "--json", "-q"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["batch_size"] == 1 and doc["seq_len"] == api.CONFIG_SEQ_LEN and doc["seq_len_assumed"]
    assert "no batch size in the config: micro-batch 1 assumed" in doc["config"]["notes"]
    assert main([*args, "--batch", "3", "--seq", "64"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["config"]["batch_size"], doc["seq_len"], doc["seq_len_assumed"]) == (3, 64, False)
    alone = api.simulate("tiny-llama", "lora(r=4,alpha=8,dropout=0.0,targets=q_proj|v_proj)", batch_size=3, seq_len=64)
    assert alone.tensor_peak is not None and doc["tensor_peak_bytes"] == alone.tensor_peak.peak_bytes
