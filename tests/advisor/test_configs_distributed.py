"""Multi-GPU configs read into plans (advisor.plans.configs.distributed): DeepSpeed JSONs checked
by DeepSpeed 0.19.8's own config class, ``accelerate config`` YAMLs loaded by accelerate 1.16's
``ClusterConfig`` (fixtures in tests/fixtures/configs, sources in their headers and
DEEPSPEED_SOURCES.md), every key mapped or listed, contradictions one error; the launch files
of advisor.report.launch read back to the same plan; check and watch driven by a config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import advisor
from advisor import ConfigConflictError, ConfigError, api, plan_from_config
from advisor.plans import parse_plan
from advisor.plans.configs.types import GPUS_UNKNOWN_NOTE
from advisor.report.configs import config_snippets
from advisor.report.launch import launch_snippets

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def _plan(text: str) -> str:
    return parse_plan(text).name


# -- DeepSpeed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["deepspeed_zero3_auto.json", "deepspeed_zero2.json"])
def test_fixtures_are_valid_for_deepspeed_itself(name: str) -> None:
    zero_config = pytest.importorskip("deepspeed.runtime.zero.config")
    data = json.loads((FIXTURES / name).read_text())
    auto = {k: v for k, v in data["zero_optimization"].items() if v == "auto"}
    # the Trainer replaces "auto" before DeepSpeed sees it: stand in DeepSpeed's defaults
    zero = zero_config.DeepSpeedZeroConfig(**{k: v for k, v in data["zero_optimization"].items() if k not in auto})
    assert int(zero.stage) in (2, 3)


def test_deepspeed_zero2_with_explicit_sizes() -> None:
    cp = plan_from_config(FIXTURES / "deepspeed_zero2.json")
    assert cp.plan.name == _plan("zero(stage=2,offload_optimizer=cpu)+bf16+accum(steps=2)")
    assert (cp.micro_batch_size, cp.accumulation_steps, cp.gpus, cp.nodes) == (4, 2, 8, 1)  # 64 = 4 × 2 × 8
    assert dict(cp.mapped)["gradient_clipping"] == "no memory effect"
    ignored = dict(cp.ignored)  # the buckets differ from what the ZeRO model assumes: said, not dropped
    assert ignored["zero_optimization.reduce_bucket_size"].startswith("200000000 (")
    assert "500,000,000" in ignored["zero_optimization.allgather_bucket_size"]
    assert "overlap_comm" in " ".join(ignored)  # true at stage 2: DeepSpeed's default is false there
    assert len(ignored) == 3  # allgather_partitions, reduce_scatter, contiguous_gradients, steps_per_print…: no memory


@pytest.mark.slow  # the first TrainingArguments dump imports the Trainer (~10 s on a loaded machine)
def test_deepspeed_auto_values_are_notes_and_a_training_arguments_dump_fills_them(tmp_path: Path) -> None:
    alone = plan_from_config(FIXTURES / "deepspeed_zero3_auto.json")
    assert alone.plan.name == _plan("zero(stage=3,offload_optimizer=cpu,offload_params=cpu)")
    assert alone.ignored == () and alone.gpus is None and GPUS_UNKNOWN_NOTE in alone.notes
    assert any("reduce_bucket_size: auto" in n and "hidden_size²" in n for n in alone.notes)
    from transformers import TrainingArguments

    ta = tmp_path / "training_args.json"
    ta.write_text(TrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=2,
                                    gradient_accumulation_steps=4, bf16=True, optim="adamw_torch",
                                    use_cpu=True).to_json_string())  # fmt: skip
    both = plan_from_config([FIXTURES / "deepspeed_zero3_auto.json", ta])
    assert both.plan.name == _plan("zero(stage=3,offload_optimizer=cpu,offload_params=cpu)+bf16+accum(steps=4)")
    assert (both.micro_batch_size, both.accumulation_steps) == (2, 4)


def test_a_deepspeed_dict_inside_training_arguments_is_read() -> None:
    cp = plan_from_config({"per_device_train_batch_size": 2, "optim": "adamw_torch",
                           "deepspeed": {"zero_optimization": {"stage": 1}, "train_batch_size": 8}})  # fmt: skip
    assert cp.plan.name == _plan("zero(stage=1)") and cp.gpus == 4
    assert ("deepspeed.zero_optimization.stage", "zero(stage=1)") in cp.mapped


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"train_batch_size": 30, "train_micro_batch_size_per_gpu": 4, "zero_optimization": {"stage": 2}},
         "train_batch_size 30 is not micro-batch 4"),
        ({"bf16": {"enabled": True}, "fp16": {"enabled": True}, "zero_optimization": {"stage": 2}},
         "bf16 and fp16 are both enabled"),
        ({"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}},
         "offload_params needs stage 3"),
        ({"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": 2}, None),
    ],
)  # fmt: skip
def test_deepspeed_contradictions_are_one_error(config: dict[str, Any], says: str | None) -> None:
    if says is None:
        assert plan_from_config(config).micro_batch_size == 2
        return
    with pytest.raises(ConfigConflictError, match=says):
        plan_from_config(config)


def test_zero_stage_0_is_plain_data_parallelism() -> None:
    cp = plan_from_config({"zero_optimization": {"stage": 0}, "train_micro_batch_size_per_gpu": 1})
    assert cp.plan.name == "ddp"


# -- accelerate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "plan", "gpus", "nodes"),
    [
        ("accelerate_fsdp.yaml", "fsdp2+grad-ckpt+bf16", 8, 1),
        ("accelerate_fsdp1_hybrid.yaml", "hsdp(shard=8)+bf16", 16, 2),  # sharded within a node
        ("accelerate_deepspeed.yaml", "zero(stage=2,offload_optimizer=cpu)+bf16+accum(steps=4)", 4, 1),
    ],
)
def test_accelerate_configs_load_in_accelerate_and_become_their_plans(name: str, plan: str, gpus: int, nodes: int) -> None:
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    loaded = config_args.ClusterConfig.from_yaml_file(str(FIXTURES / name))
    assert (loaded.num_processes, loaded.num_machines) == (gpus, nodes)
    cp = plan_from_config(FIXTURES / name)
    assert cp.plan.name == _plan(plan) and (cp.gpus, cp.nodes) == (gpus, nodes)
    assert cp.ignored == ()


@pytest.mark.parametrize(
    ("fsdp", "plan"),
    [
        ({"fsdp_version": 2, "fsdp_reshard_after_forward": False}, "fsdp2(reshard=false)"),
        ({"fsdp_version": 1, "fsdp_sharding_strategy": "SHARD_GRAD_OP"}, "fsdp2(reshard=false)"),
        ({"fsdp_version": 1, "fsdp_reshard_after_forward": "FULL_SHARD"}, "fsdp2"),
        ({"fsdp_version": 1, "fsdp_reshard_after_forward": "NO_SHARD"}, "ddp"),
        ({"fsdp_version": 1, "fsdp_sharding_strategy": 4}, "hsdp(shard=4)"),  # FSDP1's enum: 4 = HYBRID_SHARD
    ],
)
def test_fsdp_sharding_strategies_map_to_strategy_cuts(fsdp: dict[str, Any], plan: str) -> None:
    cp = plan_from_config({"distributed_type": "FSDP", "num_processes": 8, "num_machines": 2, "fsdp_config": fsdp})
    assert cp.plan.name == _plan(plan)


def test_accelerate_keys_not_modelled_are_listed_and_contradictions_are_one_error() -> None:
    cp = plan_from_config({"distributed_type": "MULTI_GPU", "num_processes": 2, "mixed_precision": "fp16",
                           "fsdp_config": {}, "some_new_key": 1})  # fmt: skip
    assert cp.plan.name == _plan("ddp+fp16") and cp.ignored == (("some_new_key", "1"),)
    offload = plan_from_config({"distributed_type": "FSDP", "num_processes": 2,
                                "fsdp_config": {"fsdp_version": 2, "fsdp_offload_params": True}})  # fmt: skip
    assert "not modelled" in dict(offload.ignored)["fsdp_config.fsdp_offload_params"]
    with pytest.raises(ConfigConflictError, match="fsdp_reshard_after_forward HYBRID_SHARD but fsdp_sharding_strategy"):
        plan_from_config({"distributed_type": "FSDP", "num_processes": 4, "fsdp_config": {
            "fsdp_reshard_after_forward": "HYBRID_SHARD", "fsdp_sharding_strategy": "FULL_SHARD"}})  # fmt: skip
    with pytest.raises(ConfigError, match="distributed_type XLA is not modelled"):
        plan_from_config({"distributed_type": "XLA", "num_processes": 8})
    with pytest.raises(ConfigConflictError, match="train_batch_size 8 is not micro-batch 2 × accumulation 1 × 8 GPUs"):
        plan_from_config([{"distributed_type": "DEEPSPEED", "num_processes": 8,
                           "deepspeed_config": {"deepspeed_config_file": "ds.json"}},
                          {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 2}}])  # fmt: skip


# -- written back and read again ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gpus", "nodes"),
    [
        ("zero(stage=3,offload_optimizer=cpu,offload_params=cpu)+bf16+accum(steps=2)", 16, 2),
        ("zero(stage=1)", 4, 1),
        ("fsdp2(reshard=false)+grad-ckpt+bf16", 8, 1),
        ("hsdp(shard=4)+bf16", 16, 2),
        ("ddp+bf16", 2, 1),
    ],
)
def test_launch_files_read_back_to_the_same_plan(text: str, gpus: int, nodes: int) -> None:
    plan = parse_plan(text)
    settings = {c.name: dict(vars(c)) for c in plan.cuts}
    launch = launch_snippets(settings, gpus, nodes, micro_batch=2)
    assert launch is not None
    files = [json.loads(t) if n.endswith(".json") else yaml.safe_load(t) for n, t in launch.files.items()
             if n.endswith((".json", ".yaml"))]  # fmt: skip
    cp = plan_from_config(files)
    micro = 2 if "zero" in text else 1  # an accelerate config has no batch: the script sets it
    assert cp.plan.name == plan.name and (cp.gpus, cp.nodes, cp.micro_batch_size) == (gpus, nodes, micro)
    assert cp.ignored == () and not any("deepspeed_config_file" in n for n in cp.notes)
    # the same files are the write-back snippets of a checked config
    formats = {s.format for s in config_snippets(cp)}
    assert "accelerate" in formats and ("DeepSpeed" in formats) == ("zero" in text)


def test_written_accelerate_files_load_in_accelerate(tmp_path: Path) -> None:
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    for text in ("hsdp(shard=4)+bf16", "ddp", "zero(stage=2)"):
        launch = launch_snippets({c.name: dict(vars(c)) for c in parse_plan(text).cuts}, 8, 2)
        assert launch is not None
        for name, body in launch.files.items():
            if name.endswith(".yaml"):
                (tmp_path / name).write_text(body)
                loaded = config_args.ClusterConfig.from_yaml_file(str(tmp_path / name))
                assert (loaded.num_processes, loaded.num_machines) == (8, 2)


# -- check and watch ---------------------------------------------------------------------------


@pytest.mark.slow  # three simulations of one rank
def test_check_simulates_one_rank_of_the_config_s_gpus() -> None:
    config = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 2}
    with pytest.raises(advisor.AdvisorError, match="does not say how many GPUs"):
        advisor.check_config(config, model="tiny-llama", seq_len=32, search=False)
    check = advisor.check_config(config, model="tiny-llama", seq_len=32, search=False, gpus=4)
    assert (check.config.gpus, check.config.nodes) == (4, 1) and GPUS_UNKNOWN_NOTE not in check.config.notes
    rank = advisor.simulate("tiny-llama", "zero(stage=3)", batch_size=2, seq_len=32, gpus=4)
    assert rank.tensor_peak is not None and check.result.tensor_peak is not None
    assert check.result.tensor_peak.peak_bytes == rank.tensor_peak.peak_bytes
    two = advisor.check_config(config, model="tiny-llama", seq_len=32, search=False, gpus=2)
    assert two.result.tensor_peak is not None
    assert two.result.tensor_peak.peak_bytes > check.result.tensor_peak.peak_bytes  # fewer ranks: bigger shards


@pytest.mark.slow  # the neighbours of the plan, each simulated as one rank
def test_the_nearest_plan_of_a_multi_gpu_config_keeps_its_strategy_and_gpus() -> None:
    config = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 2}
    first = advisor.check_config(config, model="tiny-llama", seq_len=32, search=False, gpus=4, gpu="rtx-4090")
    assert first.figures.need is not None
    memory = int(first.figures.need.total_bytes / 0.9) - 1  # just too small for it
    check = advisor.check_config(config, model="tiny-llama", seq_len=32, gpus=4, gpu="rtx-4090", gpu_mem=memory)
    assert check.fits is False and check.nearest is not None and check.nearest.fits
    nearest = check.nearest
    assert "zero(stage=3)" in nearest.plan and nearest.gpus == 4
    rank = advisor.simulate("tiny-llama", nearest.plan, batch_size=2, seq_len=32, gpus=4)
    need = api.gpu_figures(rank, check.gpu).need
    assert need is not None and nearest.need is not None and nearest.need.total_bytes == need.total_bytes
    assert check.figures.budget_bytes is not None and need.total_bytes <= check.figures.budget_bytes
    assert check.to_dict()["neighbours_tried"] >= 1


def _tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def test_watch_predicts_from_a_config(tmp_path: Path) -> None:
    model = _tiny_llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "optim": "adamw_torch"}
    with advisor.watch(model, opt, config=config) as w:
        for _ in range(2):
            ids = torch.randint(0, 128, (2, 16))
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    report = w.report()
    pred = report.prediction
    assert pred is not None and pred.peak_bytes is not None, pred
    assert (pred.plan, pred.batch_size, pred.seq_len) == ("baseline", 2, 16)
    # the same plan given by name predicts the same bytes
    by_name = advisor.watch(_tiny_llama(), plan="baseline", batch_size=2, seq_len=16)
    by_name.watcher.device = torch.device("cpu")
    assert by_name.prediction().peak_bytes == pred.peak_bytes
    assert report.prediction_error is not None and "prediction error" in report.to_markdown()
    with pytest.raises(advisor.AdvisorError, match="plan or config, not both"):
        advisor.watch(model, plan="baseline", config=config)


def test_hf_callback_takes_a_config(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    from advisor.integrations.hf import VramAdvisorCallback

    model = _tiny_llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    args = TrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=2, use_cpu=True, report_to=[])
    callback = VramAdvisorCallback(config={"per_device_train_batch_size": 2, "bf16": True, "optim": "adamw_torch"},
                                   seq_len=16)  # fmt: skip
    callback.on_train_begin(args, None, None, model=model, optimizer=opt)
    callback.on_step_begin(args, None, None)
    ids = torch.randint(0, 128, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    callback.on_step_end(args, None, None)
    callback.on_train_end(args, None, None)
    pred = callback.last_report.prediction
    assert pred is not None and (pred.plan, pred.batch_size, pred.seq_len) == ("bf16", 2, 16)
