"""Users' own training configs read into plans: ``TrainingArguments`` dumps, PEFT
``adapter_config.json``, ``BitsAndBytesConfig``, axolotl and torchtune YAML, and the multi-GPU configs: a DeepSpeed
JSON and an ``accelerate config`` YAML (:mod:`advisor.plans.configs.distributed`).

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
from advisor.plans.configs.distributed import read_accelerate, read_deepspeed, read_deepspeed_reference
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
    "a torchtune YAML, a DeepSpeed JSON or an accelerate config YAML"
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


_WITH_DEEPSPEED = (ConfigFormat.TRAINING_ARGUMENTS, ConfigFormat.AXOLOTL)
_READERS = {
    ConfigFormat.TRAINING_ARGUMENTS: read_training_arguments,
    ConfigFormat.PEFT: read_peft,
    ConfigFormat.BITSANDBYTES: read_bitsandbytes,
    ConfigFormat.AXOLOTL: read_axolotl,
    ConfigFormat.TORCHTUNE: read_torchtune,
    ConfigFormat.DEEPSPEED: read_deepspeed,
    ConfigFormat.ACCELERATE: read_accelerate,
}


def plan_from_config(
    config: str | Path | Mapping[str, Any] | Sequence[str | Path | Mapping[str, Any]],
    *,
    format: ConfigFormat | str | None = None,
) -> ConfigPlan:
    """Read one training config (a path or a dict), or several that describe one run together,
    into a :class:`ConfigPlan`; ``format`` forces the format of a single config (detected from
    its keys otherwise). Unreadable or unknown configs raise :class:`ConfigError`,
    contradictions :class:`ConfigConflictError`. A DeepSpeed or accelerate config adds its
    strategy cut (``zero``, ``fsdp2``, ``hsdp``, ``ddp``) and ``gpus``/``nodes`` where it says."""
    items = list(config) if isinstance(config, (list, tuple)) else [config]
    if not items:
        raise ConfigError("no config given", _FORMATS_HINT)
    reading = Reading()
    for item in items:
        data = load_config(item) if isinstance(item, (str, Path)) else dict(item)  # type: ignore[arg-type]
        fmt = ConfigFormat(format) if format is not None else detect_format(data)
        deepspeed = data.pop("deepspeed", None) if fmt in _WITH_DEEPSPEED else None
        _READERS[fmt](data, reading)
        if deepspeed:  # TrainingArguments' / axolotl's deepspeed: a dict, or a JSON's path
            read_deepspeed_reference(reading, "deepspeed", deepspeed)
    if ConfigFormat.DEEPSPEED in reading.formats:  # the JSON an accelerate config points at was given
        reading.notes = [n for n in reading.notes if not n.startswith("deepspeed_config_file ")]
    model = reading.values.get("model")
    if model is not None:
        name, note = model_from_hub_id(str(model))
        reading.values["model"] = name
        if note:
            reading.notes.append(note)
    return reading.finish()
