"""Readers for the YAML recipes of axolotl and torchtune (neither package is needed).

axolotl: the keys of its documented config (``docs/config.qmd``; examples such as
``examples/llama-3/qlora.yml``): an axolotl ``optimizer`` is a Trainer ``optim`` name, and
``bf16``/``fp16`` set both the Trainer's autocast and the dtype the base is loaded in; a QLoRA
base is quantized as axolotl's loader does (NF4, double quantization, compute in that dtype).
torchtune: its recipe configs (``recipes/configs/llama3_2/1B_lora_single_device.yaml``,
``…/1B_qlora_single_device.yaml``): ``model._component_`` names the builder
(``lora_llama3_2_1b``, ``qlora_…``), ``dtype`` is the dtype everything trains in (no autocast),
and its module names map onto Hugging Face's (``output_proj`` → ``o_proj``; ``w1``/``w2``/``w3``
→ ``gate_proj``/``down_proj``/``up_proj``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from advisor.plans.configs.hf import (
    MULTI_GPU_NOTE,
    MULTI_GPU_WHY,
    as_bool,
    as_int,
    read_optimizer,
)
from advisor.plans.configs.types import ConfigConflictError, ConfigError, ConfigFormat, Reading

__all__ = ["model_from_builder", "read_axolotl", "read_torchtune"]

# axolotl keys with no effect on one GPU's step memory
_AXOLOTL_NEUTRAL = {
    "base_model_config", "model_type", "tokenizer_type", "tokenizer_config", "strict", "datasets", "test_datasets",
    "dataset_prepared_path", "val_set_size", "output_dir", "lora_model_dir", "pad_to_sequence_len",
    "eval_sample_packing", "num_epochs", "max_steps", "lr_scheduler", "learning_rate", "train_on_inputs",
    "group_by_length", "tf32", "early_stopping_patience", "resume_from_checkpoint", "local_rank", "logging_steps",
    "warmup_steps", "warmup_ratio", "evals_per_epoch", "eval_steps", "saves_per_epoch", "save_steps", "debug",
    "weight_decay", "special_tokens", "tokens", "chat_template", "max_grad_norm", "seed", "hub_model_id",
    "eval_batch_size", "loss_watchdog_threshold", "loss_watchdog_patience", "save_strategy", "eval_strategy",
    "lora_fan_in_fan_out", "trust_remote_code", "save_safetensors", "shuffle_merged_datasets", "is_llama_derived_model",
    "is_mistral_derived_model", "adam_beta1", "adam_beta2", "adam_epsilon", "cosine_min_lr_ratio",
    "save_total_limit", "remove_unused_columns", "bf16_full_eval", "gradient_checkpointing_kwargs",
}  # fmt: skip
_AXOLOTL_NEUTRAL_PREFIXES = ("wandb_", "mlflow_", "comet_", "hf_", "dataloader_", "plugins")


def read_axolotl(data: Mapping[str, Any], r: Reading) -> None:
    """An axolotl config."""
    r.formats.append(ConfigFormat.AXOLOTL)
    d = dict(data)
    base = d.pop("base_model", None)
    if base:
        r.set("model", str(base), "base_model")
    four = as_bool("load_in_4bit", d.pop("load_in_4bit", False))
    eight = as_bool("load_in_8bit", d.pop("load_in_8bit", False))
    if four and eight:
        raise ConfigConflictError(
            "contradictory config: load_in_4bit and load_in_8bit are both true",
            "set one of load_in_4bit, load_in_8bit",
        )
    bf16_value = d.pop("bf16", False)
    bf16 = as_bool("bf16", bf16_value)
    fp16 = as_bool("fp16", d.pop("fp16", False))
    if bf16 and fp16:
        raise ConfigConflictError(
            "contradictory config: bf16 and fp16 are both true", "set one of bf16, fp16"
        )
    if str(bf16_value).lower() == "auto":
        r.notes.append("bf16: auto read as bf16 (axolotl uses it where the GPU supports it)")
    compute = "bfloat16" if bf16 else "float16" if fp16 else "float32"
    adapter = str(d.pop("adapter", "") or "").lower()
    if adapter not in ("", "lora", "qlora"):
        raise ConfigError(
            f"adapter {adapter!r} is not modelled", "adapter: lora or qlora (or none: full fine-tune)"
        )
    if adapter == "qlora" and not four:
        raise ConfigConflictError(
            "contradictory config: adapter qlora without load_in_4bit", "add load_in_4bit: true"
        )
    if adapter:
        targets = d.pop("lora_target_modules", None)
        linear = as_bool("lora_target_linear", d.pop("lora_target_linear", False))
        if linear:
            r.notes.append("lora_target_linear: every linear layer of the blocks")
            if not targets:
                targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        r.set_lora(
            "lora_r/lora_alpha/lora_dropout/lora_target_modules",
            r=as_int("lora_r", d.pop("lora_r", 8)),
            alpha=int(d.pop("lora_alpha", 16)),
            dropout=float(d.pop("lora_dropout", 0.0)),
            targets=tuple(sorted(str(t) for t in targets)) if targets else None,
        )
    elif four or eight:
        raise ConfigConflictError(
            "contradictory config: a quantized base (load_in_4bit/8bit) with no adapter cannot be trained",
            "add adapter: qlora (4-bit) or adapter: lora (8-bit)",
        )
    if four:  # axolotl's loader: nf4, double quantization, compute in the training dtype
        r.set_quant("load_in_4bit", bits=4, quant_type="nf4", double_quant=True, compute_dtype=compute)
    elif eight:
        r.set_quant("load_in_8bit", bits=8)
    if bf16 or fp16:
        name = "bf16" if bf16 else "fp16"
        if four or eight or fp16:
            r.set("precision", name, name, f"{name} autocast")
            if fp16 and not (four or eight):
                r.notes.append(
                    "axolotl loads the model in float16 under fp16: read as fp16 autocast on fp32 weights "
                    "(an upper bound: there is no pure-fp16 cut)"
                )
        else:
            r.set("precision", "bf16-weights", "bf16", "bf16-weights (base loaded in bfloat16)")
            r.notes.append("axolotl loads the model in bfloat16 under bf16: read as bf16-weights")
    micro = as_int("micro_batch_size", d.pop("micro_batch_size", 1))
    r.set("micro_batch", micro, "micro_batch_size")
    steps = as_int("gradient_accumulation_steps", d.pop("gradient_accumulation_steps", 1))
    total = d.pop("batch_size", None)
    if total is not None and as_int("batch_size", total) != micro * steps:
        raise ConfigConflictError(
            f"contradictory config: batch_size {total} is not micro_batch_size {micro} × "
            f"gradient_accumulation_steps {steps} = {micro * steps}",
            "drop batch_size, or make it micro_batch_size × gradient_accumulation_steps",
        )
    r.set("accumulation", steps, "gradient_accumulation_steps")
    if "sequence_len" in d:
        r.set("seq_len", as_int("sequence_len", d.pop("sequence_len")), "sequence_len")
    if as_bool("sample_packing", d.pop("sample_packing", False)):
        r.mapped.append(("sample_packing", "every sequence full: sequence_len tokens"))
    ckpt = d.pop("gradient_checkpointing", False)
    if ckpt == "offload":
        r.set("grad-ckpt", True, "gradient_checkpointing", "grad-ckpt")
        r.set("offload", True, "gradient_checkpointing: offload", "offload")
    elif as_bool("gradient_checkpointing", ckpt):
        r.set("grad-ckpt", True, "gradient_checkpointing", "grad-ckpt")
    if as_bool("activation_offloading", d.pop("activation_offloading", False)):
        r.set("offload", True, "activation_offloading", "offload")
    for key in ("flash_attention", "sdp_attention", "xformers_attention"):
        if as_bool(key, d.pop(key, False)):
            r.set("sdpa-attn", True, key, "sdpa-attn")
            if key != "sdp_attention":
                r.notes.append(
                    f"{key}: read as SDPA attention (on CUDA its fused kernels keep O(seq) memory)"
                )
    if "optimizer" in d:
        read_optimizer(r, "optimizer", d.pop("optimizer"), d.pop("optim_args", None))
    else:
        r.notes.append("optimizer not given: the Trainer's default adamw_torch_fused")
        read_optimizer(r, "optimizer (default)", "adamw_torch_fused")
    if as_bool("torch_compile", d.pop("torch_compile", False)):
        r.set("compile", True, "torch_compile", "compile")
    for key in ("fsdp", "fsdp_config"):
        value = d.pop(key, None)
        if value:
            r.ignore(key, value, MULTI_GPU_WHY)
            r.notes.append(MULTI_GPU_NOTE)
    for key, value in d.items():
        if value is None or key in _AXOLOTL_NEUTRAL or key.startswith(_AXOLOTL_NEUTRAL_PREFIXES):
            continue  # unset (YAML null), or no effect on one GPU's step memory
        why = (
            "not modelled" if key in ("lora_modules_to_save", "unfrozen_parameters", "peft_use_dora") else ""
        )
        r.ignore(key, value, why)


# -- torchtune ---------------------------------------------------------------------------------

_TT_MODULES = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "output_proj": "o_proj"}
_TT_MLP = ("gate_proj", "down_proj", "up_proj")  # torchtune w1, w2, w3
_TT_NEUTRAL = {
    "output_dir", "tokenizer", "checkpointer", "resume_from_checkpoint", "save_adapter_weights_only", "seed",
    "shuffle", "lr_scheduler", "epochs", "max_steps_per_epoch", "clip_grad_norm", "device", "metric_logger",
    "log_every_n_steps", "log_peak_memory_stats", "log_level", "profiler", "collate_fn", "run_val_every_n_steps",
    "dataset_val", "batch_size_val", "custom_sharded_layers",
}  # fmt: skip
_TT_OPTIMIZERS = {
    "torch.optim.AdamW": None, "torch.optim.Adam": None, "torch.optim.SGD": "sgd",
    "bitsandbytes.optim.AdamW8bit": "adamw8bit", "bitsandbytes.optim.PagedAdamW8bit": "paged-adamw8bit",
    "torchao.optim.AdamW8bit": "adamw8bit", "torchao.prototype.low_bit_optim.AdamW8bit": "adamw8bit",
}  # fmt: skip


def model_from_builder(component: str) -> str | None:
    """The built-in model a torchtune builder names (``…lora_llama3_2_1b`` → ``llama-3.2-1b``,
    ``qwen2_5_0_5b`` → ``qwen2.5-0.5b``), or ``None``."""
    name = component.rsplit(".", 1)[-1]
    name = re.sub(r"^(q?lora_)", "", name)
    m = re.fullmatch(r"llama(\d)_(\d)_(\d+b)", name)
    if m:
        return f"llama-{m[1]}.{m[2]}-{m[3]}"
    m = re.fullmatch(r"qwen(\d)_(\d)_(\d+)(?:_(\d+))?b", name)
    if m:
        size = f"{m[3]}.{m[4]}b" if m[4] else f"{m[3]}b"
        return f"qwen{m[1]}.{m[2]}-{size}"
    if name == "mistral_7b":
        return "mistral-7b"
    return None


def read_torchtune(data: Mapping[str, Any], r: Reading) -> None:
    """A torchtune recipe config."""
    r.formats.append(ConfigFormat.TORCHTUNE)
    d = dict(data)
    model = dict(d.pop("model", None) or {})
    component = str(model.pop("_component_", ""))
    builder = component.rsplit(".", 1)[-1]
    preset = model_from_builder(component)
    if preset is not None:
        r.set("model", preset, "model._component_")
    elif component:
        r.notes.append(f"model {component}: no built-in model of that name; give --model")
    dtype = str(d.pop("dtype", "fp32")).lower()
    if dtype not in ("bf16", "fp32", "bfloat16", "float32"):
        raise ConfigError(f"dtype {dtype!r} is not one torchtune trains in", "dtype: bf16 or fp32")
    bf16 = dtype in ("bf16", "bfloat16")
    quantized = builder.startswith("qlora_")
    if builder.startswith(("lora_", "qlora_")):
        targets: list[str] = []
        for module in model.pop("lora_attn_modules", None) or ["q_proj", "v_proj"]:
            if module not in _TT_MODULES:
                raise ConfigError(f"model.lora_attn_modules: {module!r} is not a torchtune attention module",
                                  f"use some of {', '.join(_TT_MODULES)}")  # fmt: skip
            targets.append(_TT_MODULES[module])
        if as_bool("apply_lora_to_mlp", model.pop("apply_lora_to_mlp", False)):
            targets += _TT_MLP
        if as_bool("apply_lora_to_output", model.pop("apply_lora_to_output", False)):
            targets.append("lm_head")
        r.set_lora(
            "model.lora_rank/lora_alpha/lora_dropout/lora_attn_modules",
            r=as_int("model.lora_rank", model.pop("lora_rank", 8)),
            alpha=int(model.pop("lora_alpha", 16)),
            dropout=float(model.pop("lora_dropout", 0.0)),
            targets=tuple(sorted(targets)),
        )
    if quantized:  # torchao NF4 (block 64, scales quantized again in blocks of 256)
        r.set_quant("model._component_ (qlora_)", bits=4, quant_type="nf4", double_quant=True,
                    compute_dtype="bfloat16" if bf16 else "float32")  # fmt: skip
        r.notes.append(
            "torchao's NF4 read as bitsandbytes NF4 with double quantization (the same layout in bytes)"
        )
    if bf16:
        if quantized:
            r.set("precision", "bf16", "dtype", "bf16 (QLoRA: computes in bfloat16)")
        else:
            r.set("precision", "bf16-weights", "dtype", "bf16-weights (torchtune trains in pure bf16)")
    for key, value in model.items():
        r.ignore(f"model.{key}", value)
    r.set("micro_batch", as_int("batch_size", d.pop("batch_size", 1)), "batch_size")
    r.set("accumulation", as_int("gradient_accumulation_steps", d.pop("gradient_accumulation_steps", 1)),
          "gradient_accumulation_steps")  # fmt: skip
    if as_bool("enable_activation_checkpointing", d.pop("enable_activation_checkpointing", False)):
        r.set("grad-ckpt", True, "enable_activation_checkpointing", "grad-ckpt")
    if as_bool("enable_activation_offloading", d.pop("enable_activation_offloading", False)):
        r.set("offload", True, "enable_activation_offloading", "offload")
    if as_bool("compile", d.pop("compile", False)):
        r.set("compile", True, "compile", "compile")
    if as_bool("optimizer_in_bwd", d.pop("optimizer_in_bwd", False)):
        r.ignore("optimizer_in_bwd", True, "not modelled: gradients are freed during backward in torchtune")
    _tt_optimizer(dict(d.pop("optimizer", None) or {}), r)
    dataset = d.pop("dataset", None)
    if isinstance(dataset, Mapping) and as_bool("dataset.packed", dataset.get("packed", False)):
        r.mapped.append(("dataset.packed", "every sequence full: tokenizer.max_seq_len tokens"))
    tokenizer = d.get("tokenizer")
    if isinstance(tokenizer, Mapping) and tokenizer.get("max_seq_len"):
        r.set("seq_len", as_int("tokenizer.max_seq_len", tokenizer["max_seq_len"]), "tokenizer.max_seq_len")
    loss = d.pop("loss", None)
    if isinstance(loss, Mapping) and loss.get("_component_"):
        r.ignore(
            "loss._component_",
            loss["_component_"],
            "not modelled: the prediction is for the model's own loss",
        )
    for key, value in d.items():
        if key not in _TT_NEUTRAL:
            r.ignore(key, value)


def _tt_optimizer(opt: dict[str, Any], r: Reading) -> None:
    component = str(opt.pop("_component_", "torch.optim.AdamW"))
    if component not in _TT_OPTIMIZERS:
        r.ignore("optimizer._component_", component, "optimizer not modelled: read as AdamW")
        return
    cut = _TT_OPTIMIZERS[component]
    kwargs: dict[str, Any] = {}
    if cut == "sgd" and opt.get("momentum"):
        kwargs["momentum"] = float(opt.pop("momentum"))
    r.set("optimizer", cut, "optimizer._component_", cut or "AdamW (torch)")
    r.values["optimizer_kwargs"] = kwargs
    if cut is None and as_bool("optimizer.fused", opt.pop("fused", False)):
        r.set("optimizer_impl", "fused", "optimizer.fused", "optim-impl(kind=fused)")
    elif cut is None and "foreach" in opt:
        kind = "foreach" if as_bool("optimizer.foreach", opt.pop("foreach")) else "loop"
        r.set("optimizer_impl", kind, "optimizer.foreach", f"optim-impl(kind={kind})")
    for key, value in opt.items():
        if key not in ("lr", "weight_decay", "betas", "eps", "momentum", "amsgrad"):
            r.ignore(f"optimizer.{key}", value)
