"""Readers for the Hugging Face configs: ``TrainingArguments``, PEFT's ``LoraConfig``
(``adapter_config.json``) and ``BitsAndBytesConfig``.

Followed in the installed sources: transformers 5.25 (``training_args.py``: ``optim`` defaults
to ``adamw_torch_fused`` with torch ≥ 2.8; ``trainer_optimizer.py``: ``adamw_torch`` and
``adamw_torch_fused`` are ``torch.optim.AdamW``, the latter with ``fused=True``, the former with
torch's own default — ``foreach`` on CUDA; ``adafactor`` is transformers' Adafactor, read here
as the ``adafactor`` cut; ``sgd`` is ``torch.optim.SGD`` with ``optim_args`` momentum;
``utils/quantization_config.py``: ``BitsAndBytesConfig`` defaults ``fp4``, no double
quantization, float32 compute, uint8 storage), and peft 0.22 (``LoraConfig``: r 8, alpha 8,
dropout 0.0, ``target_modules`` None → peft's table for the model type).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advisor.plans.configs.types import ConfigConflictError, ConfigError, ConfigFormat, Reading

__all__ = ["as_bool", "as_int", "read_bitsandbytes", "read_peft", "read_training_arguments"]


def as_bool(key: str, value: Any) -> bool:
    """A config flag: true/false, 1/0, yes/no; ``None`` is false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "auto"):
        return value.strip().lower() in ("true", "1", "yes", "auto")
    raise ConfigError(f"{key}: expected true or false, got {value!r}", f"set {key}: true or {key}: false")


def as_int(key: str, value: Any, minimum: int = 1) -> int:
    """A whole number ≥ ``minimum`` (text such as ``"4"`` accepted)."""
    try:
        number = int(value) if not isinstance(value, bool) and float(value) == int(value) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise ConfigError(
            f"{key}: expected a whole number ≥ {minimum}, got {value!r}", f"set {key}: {minimum} or more"
        )
    return number


# -- TrainingArguments ------------------------------------------------------------------------

# Trainer ``optim`` → (optimizer cut, implementation cut): None, None is torch.optim.AdamW with
# torch's default implementation (foreach on CUDA), the baseline
OPTIM_NAMES: dict[str, tuple[str | None, str | None]] = {
    "adamw_torch": (None, None),
    "adamw_torch_fused": (None, "fused"),
    "adamw_hf": (None, "loop"),  # transformers' own AdamW (removed in v5): one tensor at a time
    "adamw_bnb_8bit": ("adamw8bit", None),
    "adamw_8bit": ("adamw8bit", None),
    "paged_adamw_8bit": ("paged-adamw8bit", None),
    "adafactor": ("adafactor", None),
    "sgd": ("sgd", None),
}
# TrainingArguments keys that do not change one GPU's training-step memory
_NEUTRAL_PREFIXES = (
    "output_dir", "overwrite_output_dir", "logging_", "log_", "save_", "eval_", "per_device_eval", "do_",
    "learning_rate", "weight_decay", "adam_", "max_grad_norm", "num_train_epochs", "max_steps",
    "lr_scheduler", "warmup_", "seed", "data_seed", "report_to", "run_name", "push_to_hub", "hub_",
    "dataloader_", "remove_unused_columns", "disable_tqdm", "prediction_loss_only",
    "load_best_model_at_end", "metric_for_best_model", "greater_is_better", "resume_from_checkpoint",
    "ignore_data_skip", "include_", "skip_memory_metrics", "batch_eval_metrics", "eval_accumulation", "label_names",
    "group_by_length", "length_column_name", "average_tokens_across_devices", "restore_callback_states",
    "full_determinism", "trust_remote_code", "use_cpu", "project", "trackio_", "enable_jit_checkpoint",
    "bf16_full_eval", "fp16_full_eval", "accelerator_config",     "local_rank", "past_index", "debug", "jit_mode_eval", "tf32",
    "torch_empty_cache_steps", "use_legacy_prediction_loop", "per_gpu_", "predict_with_generate",
    "generation_", "sortish_sampler", "neftune_noise_alpha", "optim_target_modules", "lr_scheduler_kwargs",
)  # fmt: skip
_MULTI_GPU_KEYS = (
    "fsdp",
    "fsdp_config",
    "deepspeed",
    "ddp_",
    "parallelism_config",
    "tp_size",
    "fsdp_min_num_params",
)


MULTI_GPU_WHY = "multi-GPU: give the accelerate config or DeepSpeed JSON alongside; planned for one GPU"
MULTI_GPU_NOTE = (
    "multi-GPU settings (FSDP, DDP) are read from an accelerate config or a DeepSpeed JSON given "
    "alongside; from this file alone the plan is for one GPU"
)


def _training_arguments_defaults() -> dict[str, Any]:
    """TrainingArguments' field defaults, from the installed transformers (a key at its default
    is not a choice the user made)."""
    import dataclasses

    from transformers import TrainingArguments

    out: dict[str, Any] = {}
    for f in dataclasses.fields(TrainingArguments):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default.value if hasattr(f.default, "value") else f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _optim_args(text: Any) -> dict[str, str]:
    if not text:
        return {}
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    return dict(item.split("=", 1) for item in str(text).replace(" ", "").split(",") if "=" in item)


def read_optimizer(r: Reading, key: str, name: str, optim_args: Any = None) -> None:
    """A Trainer ``optim`` name into the optimizer and implementation cuts (unknown: ignored)."""
    name = str(name).strip().lower()
    found = OPTIM_NAMES.get(name)
    if found is None:
        r.ignore(key, name, "optimizer not modelled: read as AdamW")
        r.notes.append(f"optimizer {name} is not modelled: the prediction is for AdamW")
        return
    cut, impl = found
    if cut is not None:
        kwargs: dict[str, Any] = {}
        if cut == "sgd":
            momentum = _optim_args(optim_args).get("momentum")
            kwargs = {"momentum": float(momentum)} if momentum is not None else {}
        r.set("optimizer", cut, key, f"{cut}{'(' + str(kwargs) + ')' if kwargs else ''}")
        r.values["optimizer_kwargs"] = kwargs
    else:
        r.set("optimizer", None, key, "AdamW (torch)")
    if impl is not None:
        r.set("optimizer_impl", impl, key, f"optim-impl(kind={impl})")
    if name == "adamw_hf":
        r.notes.append("adamw_hf was removed in transformers 5: read as AdamW stepping one tensor at a time")


def read_training_arguments(data: Mapping[str, Any], r: Reading) -> None:
    """``TrainingArguments`` as JSON (``to_json_string()``) or keyword arguments."""
    r.formats.append(ConfigFormat.TRAINING_ARGUMENTS)
    defaults = _training_arguments_defaults()
    d = dict(data)
    bf16 = as_bool("bf16", d.pop("bf16", False))
    fp16 = as_bool("fp16", d.pop("fp16", False))
    if bf16 and fp16:
        raise ConfigConflictError(
            "contradictory config: bf16 and fp16 are both true", "set one of bf16, fp16"
        )
    if bf16:
        r.set("precision", "bf16", "bf16", "bf16 (autocast; fp32 weights)")
    elif fp16:
        r.set("precision", "fp16", "fp16", "fp16 (autocast + GradScaler)")
    if "per_device_train_batch_size" in d:
        r.set("micro_batch", as_int("per_device_train_batch_size", d.pop("per_device_train_batch_size")),
              "per_device_train_batch_size")  # fmt: skip
    else:
        r.notes.append(
            f"per_device_train_batch_size not given: transformers' default {defaults.get('per_device_train_batch_size', 8)}"
        )
        r.set(
            "micro_batch",
            int(defaults.get("per_device_train_batch_size", 8)),
            "per_device_train_batch_size (default)",
        )
    if "gradient_accumulation_steps" in d:
        r.set("accumulation", as_int("gradient_accumulation_steps", d.pop("gradient_accumulation_steps")),
              "gradient_accumulation_steps")  # fmt: skip
    # transformers 5.25 renamed gradient_checkpointing* to activation_checkpointing* (the old
    # names are deprecated aliases, and a dump holds both, mirrored)
    for key in ("activation_checkpointing", "gradient_checkpointing"):
        if as_bool(key, d.pop(key, False)):
            r.set("grad-ckpt", True, key, "grad-ckpt")
    for key in ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"):
        gc_kwargs = dict(d.pop(key, None) or {})
        if gc_kwargs.pop("use_reentrant", False):
            r.notes.append(
                "use_reentrant=True checkpointing is read as non-reentrant (same saved activations)"
            )
        for name, value in gc_kwargs.items():
            r.ignore(f"{key}.{name}", value, "not modelled: every block is checkpointed")
    optim_args = d.pop("optim_args", None)
    if "optim" in d:
        read_optimizer(r, "optim", d.pop("optim"), optim_args)
    else:
        default = str(defaults.get("optim", "adamw_torch_fused"))
        r.notes.append(f"optim not given: transformers {default} (its default with this torch)")
        read_optimizer(r, "optim (default)", default, optim_args)
    if as_bool("torch_compile", d.pop("torch_compile", False)):
        r.set("compile", True, "torch_compile", "compile")
        backend = d.pop("torch_compile_backend", None)
        if backend:
            r.values["compile_backend"] = str(backend)
    d.pop("torch_compile_backend", None)
    d.pop("torch_compile_mode", None)
    _rest(d, r, defaults)


def _rest(d: dict[str, Any], r: Reading, defaults: dict[str, Any]) -> None:
    for key, value in d.items():
        if key.startswith(_MULTI_GPU_KEYS) and value not in (None, "", [], {}, False, defaults.get(key)):
            r.ignore(key, value, MULTI_GPU_WHY)
            r.notes.append(MULTI_GPU_NOTE)
        elif key.startswith(_NEUTRAL_PREFIXES) or key.startswith("_"):
            continue  # no effect on one GPU's step memory
        elif key in defaults and _same(value, defaults[key]):
            continue  # left at transformers' default
        else:
            r.ignore(key, value)


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return (a in (None, [], {}, "") and b in (None, [], {}, "")) or str(a) == str(b)


# -- PEFT --------------------------------------------------------------------------------------

# peft 0.22 LoraConfig defaults (peft/tuners/lora/config.py)
PEFT_DEFAULTS = {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0}
# LoraConfig keys that change nothing in one step's memory, or only at their default
_PEFT_NEUTRAL = {
    "peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping",
    "peft_version", "bias", "fan_in_fan_out", "init_lora_weights", "megatron_core", "use_rslora",
    "qalora_group_size", "layers_pattern", "exclude_modules",
}  # fmt: skip
_PEFT_AT_DEFAULT = (None, False, "none", "")


def _targets(key: str, value: Any, r: Reading) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value == "all-linear":
            r.notes.append("target_modules all-linear: read as every linear layer of the repeated blocks")
            return None
        return (value,)
    return tuple(sorted(str(v) for v in value))


def read_peft(data: Mapping[str, Any], r: Reading) -> None:
    """A PEFT LoRA config (``adapter_config.json`` or ``LoraConfig`` keyword arguments)."""
    r.formats.append(ConfigFormat.PEFT)
    d = dict(data)
    kind = str(d.pop("peft_type", "LORA")).split(".")[-1].upper()
    if kind != "LORA":
        raise ConfigError(
            f"peft_type {kind} is not modelled", "the advisor plans LoRA adapters (peft_type LORA)"
        )
    r.set_lora(
        "r/lora_alpha/lora_dropout/target_modules",
        r=as_int("r", d.pop("r", PEFT_DEFAULTS["r"])),
        alpha=_alpha(d.pop("lora_alpha", PEFT_DEFAULTS["lora_alpha"])),
        dropout=float(d.pop("lora_dropout", PEFT_DEFAULTS["lora_dropout"])),
        targets=_targets("target_modules", d.pop("target_modules", None), r),
    )
    base = d.pop("base_model_name_or_path", None)
    if base:
        r.set("model", str(base), "base_model_name_or_path")
    for key, value in d.items():
        if key in _PEFT_NEUTRAL:
            continue
        if (isinstance(value, (dict, list)) and not value) or value in _PEFT_AT_DEFAULT:
            continue
        why = (
            "not modelled"
            if key in ("use_dora", "modules_to_save", "layers_to_transform", "rank_pattern")
            else ""
        )
        r.ignore(key, value, why)


def _alpha(value: Any) -> int:
    number = float(value)
    return int(number) if number == int(number) else number  # type: ignore[return-value]


# -- bitsandbytes -------------------------------------------------------------------------------

# transformers 5.25 BitsAndBytesConfig defaults (utils/quantization_config.py)
BNB_DEFAULTS = {
    "quant_type": "fp4",
    "double_quant": False,
    "compute_dtype": "float32",
    "quant_storage": "uint8",
}
_BNB_NEUTRAL = {"quant_method", "_load_in_4bit", "_load_in_8bit", "llm_int8_has_fp16_weight"}


def _dtype(value: Any) -> str:
    return str(value).replace("torch.", "")


def read_bitsandbytes(data: Mapping[str, Any], r: Reading) -> None:
    """A ``BitsAndBytesConfig`` (``to_dict()`` or keyword arguments)."""
    r.formats.append(ConfigFormat.BITSANDBYTES)
    d = dict(data)
    four = as_bool("load_in_4bit", d.pop("load_in_4bit", d.get("_load_in_4bit", False)))
    eight = as_bool("load_in_8bit", d.pop("load_in_8bit", d.get("_load_in_8bit", False)))
    if four and eight:
        raise ConfigConflictError(
            "contradictory config: load_in_4bit and load_in_8bit are both true",
            "set one of load_in_4bit, load_in_8bit",
        )
    keys4 = (
        "bnb_4bit_quant_type",
        "bnb_4bit_use_double_quant",
        "bnb_4bit_compute_dtype",
        "bnb_4bit_quant_storage",
    )
    if four:
        r.set_quant(
            "load_in_4bit/bnb_4bit_*",
            bits=4,
            quant_type=str(d.pop("bnb_4bit_quant_type", None) or BNB_DEFAULTS["quant_type"]),
            double_quant=as_bool("bnb_4bit_use_double_quant", d.pop("bnb_4bit_use_double_quant", False)),
            compute_dtype=_dtype(d.pop("bnb_4bit_compute_dtype", None) or BNB_DEFAULTS["compute_dtype"]),
            quant_storage=_dtype(d.pop("bnb_4bit_quant_storage", None) or BNB_DEFAULTS["quant_storage"]),
        )
    elif eight:
        r.set_quant("load_in_8bit", bits=8)
        threshold = d.pop("llm_int8_threshold", 6.0)
        if float(threshold) != 0.0:
            r.notes.append(
                f"llm_int8_threshold={threshold}: outlier columns kept in fp16 depend on the data; "
                "the prediction is for threshold 0 (no outliers)"
            )
        for key in keys4:
            d.pop(key, None)
    else:
        r.notes.append("BitsAndBytesConfig loads neither 4-bit nor 8-bit: nothing quantized")
    d.pop("llm_int8_threshold", None)
    for key, value in d.items():
        if key in _BNB_NEUTRAL or key in keys4 or value in (None, False, [], {}):
            continue
        r.ignore(key, value)
