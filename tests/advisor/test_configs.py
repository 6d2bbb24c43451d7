"""Users' training configs read into plans (advisor.plans.configs) and plans written back
(advisor.report.configs): real files written by transformers and peft, axolotl and torchtune
YAMLs in their documented shapes (tests/fixtures/configs, each naming its upstream source),
every ignored key listed, contradictions one error, and every written format loaded by the real
library and read back to the same plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from peft import LoraConfig
from transformers import BitsAndBytesConfig, TrainingArguments

from advisor import ConfigConflictError, ConfigError, plan_from_config
from advisor.plans import parse_plan
from advisor.plans.configs import (
    ConfigFormat,
    ConfigPlan,
    detect_format,
    model_from_builder,
    model_from_hub_id,
)
from advisor.plans.configs.hf import MULTI_GPU_NOTE, MULTI_GPU_WHY
from advisor.plans.configs.nearest import neighbour_plans
from advisor.report.configs import (
    axolotl_config,
    bitsandbytes_kwargs,
    config_snippets,
    configs_markdown,
    lora_config_kwargs,
    torchtune_overrides,
    training_arguments_kwargs,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def _plan(text: str) -> str:
    return parse_plan(text).name


def _training_arguments_json(tmp_path: Path, **kwargs: Any) -> Path:
    """A TrainingArguments dump exactly as transformers writes it (``use_cpu``: bf16 needs it
    on a machine without a GPU)."""
    path = tmp_path / "training_args.json"
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, **kwargs)
    path.write_text(args.to_json_string())
    return path


# -- TrainingArguments ------------------------------------------------------------------------


def test_training_arguments_dump_becomes_its_plan(tmp_path: Path) -> None:
    path = _training_arguments_json(
        tmp_path, per_device_train_batch_size=4, gradient_accumulation_steps=2, bf16=True,
        activation_checkpointing=True, optim="adamw_bnb_8bit", learning_rate=3e-4, logging_steps=5,
        label_smoothing_factor=0.1,
    )  # fmt: skip
    cp = plan_from_config(path)
    assert cp.formats == (ConfigFormat.TRAINING_ARGUMENTS,)
    assert cp.plan.name == _plan("grad-ckpt+adamw8bit+bf16+accum(steps=2)")
    assert (cp.micro_batch_size, cp.accumulation_steps, cp.batch_size) == (4, 2, 8)
    assert cp.model is None and cp.seq_len is None
    # a key that changes memory (label smoothing's extra logits-sized temporaries) but is not
    # modelled is listed; learning rate, logging and the output folder change nothing: not listed
    assert [k for k, _ in cp.ignored] == ["label_smoothing_factor"]


@pytest.mark.parametrize(
    ("optim", "expected"),
    [
        ("adamw_torch", "baseline"),  # torch's default implementation: foreach on CUDA
        ("adamw_torch_fused", "optim-impl(kind=fused)"),
        ("paged_adamw_8bit", "paged-adamw8bit"),
        ("adafactor", "adafactor"),
        ("sgd", "sgd"),
    ],
)
def test_trainer_optimizer_names_map_to_cuts(tmp_path: Path, optim: str, expected: str) -> None:
    cp = plan_from_config(_training_arguments_json(tmp_path, optim=optim))
    assert cp.plan.name == _plan(expected)


def test_trainer_default_optimizer_is_the_fused_adamw(tmp_path: Path) -> None:
    # transformers 5.25 with torch ≥ 2.8 defaults to adamw_torch_fused, both in a dump and when
    # the kwargs leave optim out
    assert TrainingArguments(output_dir=str(tmp_path)).optim == "adamw_torch_fused"
    assert plan_from_config(_training_arguments_json(tmp_path)).plan.name == _plan("optim-impl(kind=fused)")
    kwargs = plan_from_config({"per_device_train_batch_size": 2, "output_dir": "x"})
    assert kwargs.plan.name == _plan("optim-impl(kind=fused)")
    assert any("optim not given" in n for n in kwargs.notes)


def test_sgd_momentum_comes_from_optim_args(tmp_path: Path) -> None:
    cp = plan_from_config(_training_arguments_json(tmp_path, optim="sgd", optim_args="momentum=0.9"))
    assert cp.plan.name == _plan("sgd(momentum=0.9)")


def test_an_unmodelled_optimizer_is_listed_not_dropped(tmp_path: Path) -> None:
    cp = plan_from_config(_training_arguments_json(tmp_path, optim="lion_32bit"))
    assert ("optim", "lion_32bit (optimizer not modelled: read as AdamW)") in cp.ignored


# -- PEFT and bitsandbytes --------------------------------------------------------------------


def test_peft_adapter_config_saved_by_peft(tmp_path: Path) -> None:
    LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.1, target_modules=["q_proj", "v_proj"], use_dora=True,
        task_type="CAUSAL_LM", base_model_name_or_path="meta-llama/Llama-3.2-1B",
    ).save_pretrained(str(tmp_path))  # fmt: skip
    cp = plan_from_config(tmp_path / "adapter_config.json")
    assert cp.formats == (ConfigFormat.PEFT,)
    assert cp.plan.name == _plan("lora(r=16,alpha=32,dropout=0.1,targets=q_proj|v_proj)")
    assert cp.model == "llama-3.2-1b"  # the Hub id of a built-in preset: no download
    assert [k for k, _ in cp.ignored] == ["use_dora"]


def test_peft_defaults_are_peft_s_own(tmp_path: Path) -> None:
    LoraConfig().save_pretrained(str(tmp_path))  # r 8, alpha 8, dropout 0, targets from the model type
    cp = plan_from_config(tmp_path / "adapter_config.json")
    assert cp.plan.name == _plan("lora(r=8,alpha=8,dropout=0.0)")
    assert cp.ignored == ()


def test_bitsandbytes_config_with_an_adapter_config_is_qlora(tmp_path: Path) -> None:
    bnb = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )  # fmt: skip
    (tmp_path / "bnb.json").write_text(bnb.to_json_string())
    LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"]).save_pretrained(str(tmp_path))
    cp = plan_from_config([tmp_path / "adapter_config.json", tmp_path / "bnb.json"])
    assert cp.plan.name == _plan("qlora(r=16,alpha=16,dropout=0.0,targets=q_proj|v_proj,compute_dtype=bfloat16)")


def test_bitsandbytes_defaults_are_transformers_own() -> None:
    # BitsAndBytesConfig(load_in_4bit=True): fp4, no double quantization, float32 compute
    cp = plan_from_config(json.loads(BitsAndBytesConfig(load_in_4bit=True).to_json_string()))
    assert cp.plan.name == _plan("qlora(quant_type=fp4,double_quant=false)")
    eight = plan_from_config(json.loads(BitsAndBytesConfig(load_in_8bit=True).to_json_string()))
    assert eight.plan.name == _plan("qlora(bits=8)")
    assert any("llm_int8_threshold=6.0" in n for n in eight.notes)


# -- axolotl and torchtune --------------------------------------------------------------------


def test_axolotl_qlora_yaml() -> None:
    cp = plan_from_config(FIXTURES / "axolotl_qlora.yml")
    assert cp.formats == (ConfigFormat.AXOLOTL,)
    linear = "down_proj|gate_proj|k_proj|o_proj|q_proj|up_proj|v_proj"
    # axolotl's loader: nf4 with double quantization, compute in the training dtype (bf16: auto)
    expected = f"qlora(r=32,alpha=16,dropout=0.05,targets={linear},compute_dtype=bfloat16)"
    expected += "+grad-ckpt+bf16+paged-adamw8bit+sdpa-attn+accum(steps=4)"
    assert cp.plan.name == _plan(expected)
    assert (cp.micro_batch_size, cp.accumulation_steps, cp.seq_len) == (2, 4, 4096)
    assert cp.model == "llama-3.2-1b"
    assert cp.ignored == (("lora_modules_to_save", "['embed_tokens', 'lm_head'] (not modelled)"),)


def test_torchtune_lora_recipe() -> None:
    cp = plan_from_config(FIXTURES / "torchtune_lora.yaml")
    assert cp.formats == (ConfigFormat.TORCHTUNE,)
    # torchtune's output_proj is o_proj; apply_lora_to_mlp adds w1/w2/w3 = gate/down/up
    targets = "down_proj|gate_proj|o_proj|q_proj|up_proj|v_proj"
    expected = f"lora(r=64,alpha=128,dropout=0.0,targets={targets})+bf16-weights+optim-impl(kind=fused)+accum(steps=8)"
    assert cp.plan.name == _plan(expected)
    assert (cp.micro_batch_size, cp.accumulation_steps, cp.seq_len) == (4, 8, None)
    assert cp.model == "llama-3.2-1b"
    assert [k for k, _ in cp.ignored] == ["loss._component_"]


def test_torchtune_qlora_builder_and_switches() -> None:
    cp = plan_from_config({
        "model": {"_component_": "torchtune.models.llama3_1.qlora_llama3_1_8b", "lora_attn_modules": ["q_proj", "k_proj"],
                  "lora_rank": 8, "lora_alpha": 16, "apply_lora_to_output": True},
        "dtype": "bf16", "batch_size": 2, "enable_activation_checkpointing": True, "enable_activation_offloading": True,
        "optimizer": {"_component_": "bitsandbytes.optim.PagedAdamW8bit", "lr": 1e-4}, "compile": True,
        "tokenizer": {"max_seq_len": 2048},
    })  # fmt: skip
    expected = "qlora(r=8,alpha=16,dropout=0.0,targets=k_proj|lm_head|q_proj,compute_dtype=bfloat16)"
    expected += "+bf16+grad-ckpt+offload+compile+paged-adamw8bit"
    assert cp.plan.name == _plan(expected)
    assert (cp.model, cp.seq_len, cp.micro_batch_size) == ("llama-3.1-8b", 2048, 2)


@pytest.mark.parametrize(
    ("component", "preset"),
    [
        ("torchtune.models.llama3_2.lora_llama3_2_1b", "llama-3.2-1b"),
        ("torchtune.models.llama3_1.llama3_1_8b", "llama-3.1-8b"),
        ("torchtune.models.qwen2_5.lora_qwen2_5_0_5b", "qwen2.5-0.5b"),
        ("torchtune.models.qwen2_5.qwen2_5_7b", "qwen2.5-7b"),
        ("torchtune.models.gemma.gemma_2b", None),
    ],
)
def test_torchtune_builders_name_presets(component: str, preset: str | None) -> None:
    from advisor.catalog.presets import PRESETS

    assert model_from_builder(component) == preset
    assert preset is None or preset in PRESETS


def test_hub_ids_of_presets_resolve_offline_and_others_stay() -> None:
    assert model_from_hub_id("meta-llama/Llama-3.1-8B-Instruct")[0] == "llama-3.1-8b"
    assert model_from_hub_id("Qwen/Qwen2.5-0.5B")[0] == "qwen2.5-0.5b"
    assert model_from_hub_id("acme/never-published") == ("acme/never-published", None)


# -- contradictions, refusals, unknown formats --------------------------------------------------


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"per_device_train_batch_size": 2, "bf16": True, "fp16": True}, "bf16 and fp16 are both true"),
        ({"base_model": "tiny-llama", "adapter": "qlora", "load_in_4bit": True, "load_in_8bit": True},
         "load_in_4bit and load_in_8bit are both true"),
        ({"base_model": "tiny-llama", "micro_batch_size": 2, "gradient_accumulation_steps": 4, "batch_size": 16},
         "batch_size 16 is not micro_batch_size 2 × gradient_accumulation_steps 4 = 8"),
        ({"base_model": "tiny-llama", "adapter": "qlora"}, "adapter qlora without load_in_4bit"),
        ({"load_in_4bit": True, "load_in_8bit": True}, "load_in_4bit and load_in_8bit are both true"),
    ],
)  # fmt: skip
def test_contradictions_are_one_clear_error(config: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigConflictError) as info:
        plan_from_config(config)
    assert says in info.value.message and "\n" not in info.value.message
    assert info.value.hint


def test_two_configs_that_disagree_are_a_contradiction(tmp_path: Path) -> None:
    ta = _training_arguments_json(tmp_path, per_device_train_batch_size=4)
    with pytest.raises(ConfigConflictError, match="micro_batch"):
        plan_from_config([ta, {"base_model": "tiny-llama", "micro_batch_size": 2}])


def test_two_adapter_configs_that_disagree_are_a_contradiction() -> None:
    with pytest.raises(ConfigConflictError, match="LoRA r is 16 in one place and 8"):
        plan_from_config([{"peft_type": "LORA", "r": 16}, {"base_model": "tiny-llama", "adapter": "lora", "lora_r": 8}])


def test_multi_gpu_keys_of_a_single_gpu_config_are_listed() -> None:
    cp = plan_from_config({"per_device_train_batch_size": 2, "optim": "adamw_torch", "fsdp": "full_shard"})
    assert cp.ignored == (("fsdp", f"full_shard ({MULTI_GPU_WHY})"),)
    assert MULTI_GPU_NOTE in cp.notes


def test_not_a_config_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a training config"):
        plan_from_config({"hello": 1})
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        plan_from_config(bad)
    with pytest.raises(ConfigError, match="no config file"):
        plan_from_config(tmp_path / "missing.json")
    assert detect_format({"model": {"_component_": "x"}}) is ConfigFormat.TORCHTUNE


# -- the plans one change away ----------------------------------------------------------------


def test_neighbours_swap_lora_for_qlora_keeping_the_adapter_and_halve_the_micro_batch() -> None:
    plan = parse_plan("lora(r=16,targets=q_proj|v_proj)+bf16+accum(steps=2)")
    names = [p.name for p in neighbour_plans(plan, batch_size=8)]
    assert _plan("qlora(r=16,targets=q_proj|v_proj)+bf16+accum(steps=2)") in names
    assert _plan("lora(r=16,targets=q_proj|v_proj)+bf16+accum(steps=4)") in names
    assert _plan("lora(r=16,targets=q_proj|v_proj)+bf16-weights+accum(steps=2)") in names  # bf16 swapped
    assert plan.name not in names and len(names) == len(set(names))
    assert all(parse_plan(n).conflict() is None for n in names)
    # no halving when the batch does not split further
    assert not any("accum(steps=4)" in n for n in (p.name for p in neighbour_plans(plan, batch_size=2)))


# -- writing plans back -----------------------------------------------------------------------

ROUND_TRIPS = [
    ("qlora(r=16,alpha=16,dropout=0.05,targets=q_proj|v_proj,compute_dtype=bfloat16)+grad-ckpt+bf16"
     "+paged-adamw8bit+accum(steps=4)", 8),
    ("lora(r=8,alpha=16,targets=k_proj|o_proj|q_proj|v_proj)+sgd(momentum=0.9)+grad-ckpt+accum(steps=2)", 4),
    ("qlora(bits=8,r=4,alpha=8,dropout=0.0)+adamw8bit", 2),
    ("baseline", 2),
    ("optim-impl(kind=fused)+grad-ckpt", 4),
]  # fmt: skip


@pytest.mark.parametrize(("text", "batch"), ROUND_TRIPS)
def test_hugging_face_snippets_load_in_the_real_libraries_and_read_back(text: str, batch: int, tmp_path: Path) -> None:
    plan = parse_plan(text)
    cp = ConfigPlan.for_plan(plan, batch, 512, "llama-3.2-1b")
    kwargs, _ = training_arguments_kwargs(plan, cp.micro_batch_size)
    parts: list[dict[str, Any]] = [json.loads(TrainingArguments(**kwargs, use_cpu=True).to_json_string())]
    lora = lora_config_kwargs(plan)
    if lora is not None:
        LoraConfig(**lora).save_pretrained(str(tmp_path))
        parts.append(json.loads((tmp_path / "adapter_config.json").read_text()))
    bnb = bitsandbytes_kwargs(plan)
    if bnb is not None:
        parts.append(json.loads(BitsAndBytesConfig(**bnb).to_json_string()))
    back = plan_from_config(parts)
    assert back.plan.name == plan.name
    assert back.batch_size == batch and back.ignored == ()


@pytest.mark.parametrize(("text", "batch"), ROUND_TRIPS[:2] + ROUND_TRIPS[3:])
def test_axolotl_and_torchtune_snippets_read_back(text: str, batch: int) -> None:
    plan = parse_plan(text)
    cp = ConfigPlan.for_plan(plan, batch, 1024, "llama-3.2-1b")
    axolotl, _ = axolotl_config(cp)
    back = plan_from_config(yaml.safe_load(yaml.safe_dump(axolotl)))
    assert (back.plan.name, back.batch_size, back.seq_len, back.model) == (plan.name, batch, 1024, "llama-3.2-1b")
    assert back.ignored == ()
    tune, _ = torchtune_overrides(cp)
    back = plan_from_config(yaml.safe_load(yaml.safe_dump(tune)))
    assert (back.plan.name, back.batch_size, back.seq_len, back.model) == (plan.name, batch, 1024, "llama-3.2-1b")
    assert back.ignored == ()


def test_what_a_format_cannot_say_is_a_note() -> None:
    plan = parse_plan("lora+bf16")
    _, notes = torchtune_overrides(ConfigPlan.for_plan(plan, 4, 256, "llama-3.2-1b"))
    assert any("pure bf16" in n for n in notes)
    _, notes = axolotl_config(ConfigPlan.for_plan(plan, 4, 256, "llama-3.2-1b"))
    assert any("bf16-weights" in n for n in notes)
    _, notes = torchtune_overrides(ConfigPlan.for_plan(parse_plan("adafactor"), 4, 256, "gpt2"))
    assert any("model._component_" in n for n in notes) and any("adafactor" in n for n in notes)


def test_markdown_offers_every_format() -> None:
    cp = ConfigPlan.for_plan(parse_plan("qlora(compute_dtype=bfloat16)+bf16+grad-ckpt"), 4, 512, "llama-3.2-1b")
    formats = [s.format for s in config_snippets(cp)]
    assert formats == ["TrainingArguments", "LoraConfig", "BitsAndBytesConfig", "axolotl", "torchtune"]
    text = configs_markdown(cp)
    assert text.count("```") == 2 * len(formats)
    assert "bnb_4bit_compute_dtype='bfloat16'" in text and "base_model: meta-llama/Llama-3.2-1B" in text


def test_the_markdown_report_offers_the_best_plan_as_training_configs() -> None:
    import dataclasses

    from advisor.report import Advice
    from advisor.report.configs import config_plan_for

    from .test_recommend import fake_recommendation

    rec = Advice.of(fake_recommendation(gpu="rtx-4090", plans="grad-ckpt+lora;sgd"))
    best = rec.best
    assert best is not None
    cp = config_plan_for(rec, best)
    assert cp.plan.name == best.plan and cp.batch_size == rec.workload.micro_batch
    text = rec.to_markdown()
    assert "### The same plan as a training config" in text
    assert text.count("**axolotl**") == 1 and text.count("**torchtune**") == 1
    # automatic LoRA targets are written as the ones the trial chose
    assert best.trial is not None
    chose = dataclasses.replace(best, trial=dataclasses.replace(best.trial, extra={"lora_targets": ["q_proj", "v_proj"]}))
    cp = config_plan_for(rec, chose)
    assert cp.plan.name == _plan("grad-ckpt+lora(targets=q_proj|v_proj)")
    assert axolotl_config(cp)[0]["lora_target_modules"] == ["q_proj", "v_proj"]
    custom = Advice.of(dataclasses.replace(rec, model_task="custom"))
    assert "### The same plan as a training config" not in custom.to_markdown()  # a plain nn.Module
