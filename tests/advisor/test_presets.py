"""Architecture presets: published shapes, no download; simulate them, refuse to measure big ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from advisor.catalog.presets import PRESETS
from advisor.core.errors import InvalidInputError, UnknownModelError
from advisor.engines.measure import check_measurable, meta_parameter_count
from advisor.engines.simulate import simulate
from advisor.models import builtin_models, preset_source, resolve_model
from profilers.records import Provenance, TrialStatus

REQUIRED = {
    "llama-3.2-1b", "llama-3.1-8b", "mistral-7b", "qwen2.5-0.5b", "qwen2.5-7b", "phi-3-mini",
    "gpt2", "gpt2-xl", "bert-base",
    "llama-3.2-3b", "llama-3.1-70b", "llama-3.1-405b", "qwen2.5-14b", "qwen2.5-32b",
    "qwen2.5-72b", "gemma-2-9b", "gemma-2-27b", "gemma-3-12b", "gemma-3-27b",
    "mistral-nemo-12b", "phi-4", "mixtral-8x7b", "qwen3-30b-a3b",
}  # fmt: skip

# Published parameter counts (the Hub's safetensors metadata of each release), written out here
# rather than read from the presets, so that a preset edited by mistake fails the test.
PUBLISHED = {
    "llama-3.2-3b": 3_212_749_824, "llama-3.1-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800, "qwen2.5-14b": 14_770_033_664,
    "qwen2.5-32b": 32_763_876_352, "qwen2.5-72b": 72_706_203_648,
    "gemma-2-9b": 9_241_705_984, "gemma-2-27b": 27_227_128_320,
    "mistral-nemo-12b": 12_247_782_400, "phi-4": 14_659_507_200,
    "mixtral-8x7b": 46_702_792_704, "qwen3-30b-a3b": 30_532_122_624,
}  # fmt: skip
# Gemma 3 is released multimodal: these are the whole releases' counts
GEMMA3_RELEASES = {"gemma-3-12b": 12_187_325_040, "gemma-3-27b": 27_432_406_640}
SIGLIP_TOWER = 416_866_032  # the vision tower, the same in both


pytestmark = pytest.mark.usefixtures("fast_simulations")


def test_every_required_preset_is_registered_as_a_preset() -> None:
    kinds = {m.name: m.kind for m in builtin_models()}
    assert REQUIRED <= set(PRESETS)
    assert all(kinds[name] == "preset" for name in PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_on_meta_with_its_published_parameter_count(name: str) -> None:
    source = resolve_model(name)
    assert source.name == name and not source.has_pretrained_weights
    model = source.build("meta")
    assert next(model.parameters()).device.type == "meta"
    assert sum(p.numel() for p in model.parameters()) == PRESETS[name].params


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_big_preset_matches_the_published_parameter_count(name: str) -> None:
    assert meta_parameter_count(resolve_model(name)) == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(GEMMA3_RELEASES))
def test_gemma3_text_decoder_is_the_release_less_its_vision_tower_and_projector(name: str) -> None:
    source = resolve_model(name)
    hidden = source.config.hidden_size  # type: ignore[attr-defined]
    text = meta_parameter_count(source)
    # the projector: a 1152-wide RMSNorm and a 1152 x hidden_size matrix
    assert text + SIGLIP_TOWER + 1152 + 1152 * hidden == GEMMA3_RELEASES[name]
    assert "vision tower" in PRESETS[name].params_source


def test_alternating_and_mixture_of_experts_shapes_are_the_published_ones() -> None:
    gemma3 = resolve_model("gemma-3-27b").config  # type: ignore[attr-defined]
    assert gemma3.layer_types[:6] == ["sliding_attention"] * 5 + ["full_attention"]
    assert gemma3.layer_types.count("full_attention") == 10  # 62 layers, every 6th global
    gemma2 = resolve_model("gemma-2-9b").config  # type: ignore[attr-defined]
    assert gemma2.layer_types[:2] == ["sliding_attention", "full_attention"]
    mixtral = resolve_model("mixtral-8x7b").build("meta")
    experts = mixtral.model.layers[0].mlp.experts
    assert tuple(experts.gate_up_proj.shape) == (8, 2 * 14336, 4096)
    qwen3 = resolve_model("qwen3-30b-a3b").build("meta")
    assert tuple(qwen3.model.layers[0].mlp.experts.down_proj.shape) == (128, 2048, 768)


def test_models_command_lists_the_big_presets(capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("llama-3.1-405b", "gemma-3-27b", "mixtral-8x7b", "qwen3-30b-a3b", "phi-4"):
        assert name in out


def test_preset_names_resolve_case_insensitively_and_misspellings_get_suggestions() -> None:
    assert resolve_model("Llama-3.1-8B").name == "llama-3.1-8b"
    with pytest.raises(UnknownModelError, match=re.escape("did you mean llama-3.1-8b")):
        resolve_model("llama-3.1-8")


def test_tied_preset_keeps_one_embedding_when_simulated() -> None:
    result = simulate("gpt2", None, 1, 16, target="cpu", fake_device="cpu", count_cost=False)
    assert result.ok, result.reason
    assert result.params is not None and result.params.total == 124_439_808
    assert result.params.provenance is Provenance.SIMULATED


def test_a_users_config_json_simulates_like_the_preset(tmp_path: Path) -> None:
    config = preset_source("gpt2").config
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    from_file = simulate(str(path), None, 1, 32, target="cpu", fake_device="cpu", count_cost=False)
    from_preset = simulate("gpt2", None, 1, 32, target="cpu", fake_device="cpu", count_cost=False)
    assert from_file.ok and from_preset.ok
    assert from_file.tensor_peak is not None and from_preset.tensor_peak is not None
    assert from_file.tensor_peak.peak_bytes == from_preset.tensor_peak.peak_bytes


def test_bitsandbytes_plans_are_simulated_on_their_stand_ins() -> None:
    from advisor.plans.cuts import parse_plan

    for plan in ("qlora", "adamw8bit"):  # once unsupported; main simulates them now
        result = simulate("tiny-llama", parse_plan(plan), 1, 16, fake_device="cpu")
        assert result.status is TrialStatus.OK, (plan, result.reason)


def test_big_presets_are_refused_for_measuring_with_a_hint_to_simulate() -> None:
    with pytest.raises(InvalidInputError, match=re.escape("vram-advisor simulate --model llama-3.1-8b")):
        check_measurable(resolve_model("llama-3.1-8b"), "cpu")
    check_measurable(resolve_model("tiny-llama"), torch.device("cpu"))  # small: fine
    assert meta_parameter_count(resolve_model("gpt2")) == 124_439_808


def test_api_simulate_takes_a_plan_text() -> None:
    from advisor.api import simulate as api_simulate

    result = api_simulate("tiny-gpt2", batch_size=2, seq_len=16, plan="lora+grad-ckpt")
    assert result.ok and result.plan == "grad-ckpt+lora"
    assert result.simulation is not None and result.simulation.target == "cuda"


def test_cli_simulate_prints_the_peak_and_the_gpu_need(capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.cli import main

    code = main(
        ["simulate", "--model", "gpt2", "--cuts", "lora,grad-ckpt", "-b", "1", "-s", "64", "--gpu", "h100"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "peak tensor memory" in out and "simulated" in out
    assert "GPU need on NVIDIA H100" in out and "fits" in out and "step time" in out


def test_cli_simulate_sweep_lists_every_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from advisor.cli import main

    out_json = tmp_path / "sim.json"
    code = main(
        ["simulate", "-m", "tiny-llama", "--sweep", "--plans", "lora;sgd;qlora", "-b", "1", "-s", "16",
         "--gpu", "t4", "--json", str(out_json)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    for plan in ("baseline", "lora", "sgd", "qlora"):
        assert plan in out
    assert "unsupported" not in out  # qlora too is simulated now (bitsandbytes stand-ins)
    doc = json.loads(out_json.read_text())
    assert doc["kind"] == "vram-advisor/simulate" and len(doc["results"]) == 4
