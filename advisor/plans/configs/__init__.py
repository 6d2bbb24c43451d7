"""Users' own training configs read into plans: ``TrainingArguments`` dumps, PEFT
``adapter_config.json``, ``BitsAndBytesConfig``, axolotl and torchtune YAML; DeepSpeed and
accelerate configs are recognised and refused (multi-GPU plans are not yet supported).

:func:`plan_from_config` takes a path, a dict, or several of them (a ``TrainingArguments`` dump
with an ``adapter_config.json`` and a ``BitsAndBytesConfig``) and returns one
:class:`ConfigPlan`. Every key that changes memory becomes part of the plan; every key not
understood is listed in ``ignored``; a contradiction is one :class:`ConfigConflictError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advisor.catalog.presets import PRESETS
from advisor.plans.configs.hf import read_bitsandbytes, read_peft, read_training_arguments
from advisor.plans.configs.types import (
    ConfigConflictError,
    ConfigError,
    ConfigFormat,
    ConfigNotSupportedError,
    ConfigPlan,
    Reading,
)
from advisor.plans.configs.yamls import model_from_builder, read_axolotl, read_torchtune

__all__ = [
    "ConfigConflictError",
    "ConfigError",
    "ConfigFormat",
    "ConfigNotSupportedError",
    "ConfigPlan",
    "detect_format",
    "load_config",
    "model_from_builder",
    "model_from_hub_id",
    "plan_from_config",
]

_FORMATS_HINT = (
    "give a TrainingArguments JSON, a PEFT adapter_config.json, a BitsAndBytesConfig, an axolotl or "
    "a torchtune YAML"
)


def load_config(path: str | Path) -> dict[str, Any]:
    """A config file's mapping: JSON (``.json``) or YAML (anything else)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no config file at {p}", "give the path of a .json or .yml training config")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json/yaml parse errors: one line with the place
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{p} is not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {first}",
                          "fix the file's syntax") from None  # fmt: skip
    if not isinstance(data, dict):
        raise ConfigError(f"{p} holds a {type(data).__name__}, not a mapping of keys", _FORMATS_HINT)
    return data


def detect_format(data: Mapping[str, Any]) -> ConfigFormat:
    """Which format ``data`` is, from the keys only that format has."""
    keys = set(data)
    if "peft_type" in keys or {"r", "lora_alpha"} <= keys or "target_modules" in keys:
        return ConfigFormat.PEFT
    if str(data.get("quant_method", "")).endswith("bitsandbytes") or any(k.startswith("bnb_4bit") for k in keys) or (
        keys and keys <= {"load_in_4bit", "load_in_8bit", "llm_int8_threshold", "llm_int8_skip_modules",
                          "llm_int8_has_fp16_weight", "llm_int8_enable_fp32_cpu_offload", "_load_in_4bit", "_load_in_8bit"}
    ):  # fmt: skip
        return ConfigFormat.BITSANDBYTES
    if "zero_optimization" in keys or "train_micro_batch_size_per_gpu" in keys or "train_batch_size" in keys:
        return ConfigFormat.DEEPSPEED
    if "distributed_type" in keys or "compute_environment" in keys:
        return ConfigFormat.ACCELERATE
    if isinstance(data.get("model"), Mapping) and "_component_" in data["model"]:
        return ConfigFormat.TORCHTUNE
    if keys & {"base_model", "micro_batch_size", "adapter", "sequence_len", "lora_r"}:
        return ConfigFormat.AXOLOTL
    if keys & {"per_device_train_batch_size", "output_dir", "gradient_accumulation_steps", "optim"}:
        return ConfigFormat.TRAINING_ARGUMENTS
    raise ConfigError(
        f"not a training config the advisor knows (keys: {', '.join(sorted(keys)[:8])})", _FORMATS_HINT
    )


def model_from_hub_id(name: str) -> tuple[str, str | None]:
    """(model name to resolve, a note): a Hub id whose architecture is a built-in preset
    (``meta-llama/Llama-3.1-8B`` and its ``-Instruct`` variant → ``llama-3.1-8b``) becomes the
    preset, which needs no network; any other name is kept as it is."""
    lowered = name.strip().lower()
    for preset in PRESETS.values():
        hub = preset.hf_id.lower()
        if lowered in (hub, preset.name) or lowered in (f"{hub}-instruct", f"{hub}-chat"):
            if lowered == preset.name:
                return preset.name, None
            return preset.name, f"{name}: the built-in preset {preset.name} (same architecture, no download)"
    return name, None


def _not_supported(fmt: ConfigFormat, data: Mapping[str, Any]) -> ConfigNotSupportedError:
    read = []
    if fmt is ConfigFormat.DEEPSPEED:
        zero = data.get("zero_optimization") or {}
        if isinstance(zero, Mapping) and "stage" in zero:
            read.append(f"ZeRO stage {zero['stage']}")
            for part in ("offload_optimizer", "offload_param"):
                if isinstance(zero.get(part), Mapping) and zero[part].get("device") not in (None, "none"):
                    read.append(f"{part} to {zero[part]['device']}")
        for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
            if key in data:
                read.append(f"{key} {data[key]}")
        for key in ("bf16", "fp16"):
            if isinstance(data.get(key), Mapping) and str(data[key].get("enabled")).lower() == "true":
                read.append(key)
        what = "a DeepSpeed config"
    else:
        for key in ("distributed_type", "num_processes", "mixed_precision", "num_machines"):
            if key in data:
                read.append(f"{key} {data[key]}")
        what = "an accelerate config"
    return ConfigNotSupportedError(
        f"{what} ({', '.join(read) or 'no settings'}): multi-GPU plans are not yet supported",
        "check the single-GPU config (TrainingArguments, axolotl or torchtune) without it",
    )


_READERS = {
    ConfigFormat.TRAINING_ARGUMENTS: read_training_arguments,
    ConfigFormat.PEFT: read_peft,
    ConfigFormat.BITSANDBYTES: read_bitsandbytes,
    ConfigFormat.AXOLOTL: read_axolotl,
    ConfigFormat.TORCHTUNE: read_torchtune,
}


def plan_from_config(
    config: str | Path | Mapping[str, Any] | Sequence[str | Path | Mapping[str, Any]],
    *,
    format: ConfigFormat | str | None = None,
) -> ConfigPlan:
    """Read one training config (a path or a dict), or several that describe one run together,
    into a :class:`ConfigPlan`; ``format`` forces the format of a single config (detected from
    its keys otherwise). Unreadable or unknown configs raise :class:`ConfigError`,
    contradictions :class:`ConfigConflictError`, DeepSpeed and accelerate configs
    :class:`ConfigNotSupportedError` (with what was read)."""
    items = list(config) if isinstance(config, (list, tuple)) else [config]
    if not items:
        raise ConfigError("no config given", _FORMATS_HINT)
    reading = Reading()
    for item in items:
        data = load_config(item) if isinstance(item, (str, Path)) else dict(item)  # type: ignore[arg-type]
        fmt = ConfigFormat(format) if format is not None else detect_format(data)
        if fmt in (ConfigFormat.DEEPSPEED, ConfigFormat.ACCELERATE):
            raise _not_supported(fmt, data)
        _READERS[fmt](data, reading)
    model = reading.values.get("model")
    if model is not None:
        name, note = model_from_hub_id(str(model))
        reading.values["model"] = name
        if note:
            reading.notes.append(note)
    return reading.finish()
