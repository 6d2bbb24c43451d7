"""The model registry: built-in names and presets, and :func:`resolve_model` for any source."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from advisor.catalog.presets import PRESETS
from advisor.core.errors import UnknownModelError
from advisor.models.presets import preset_factory
from advisor.models.sources import (
    HFModelSource,
    ModelSource,
    _minilm,
    _tiny_bert,
    _tiny_gpt2,
    _tiny_llama,
    module_factory_source,
    module_instance_source,
    quiet_transformers,
)

# -- the registry and resolution -------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    factory: Callable[[], ModelSource]
    description: str
    kind: str  # "tiny" (runs here), "pretrained", "preset" (simulate only, on meta)


_REGISTRY: dict[str, RegisteredModel] = {}


def register_model(
    name: str, factory: Callable[[], ModelSource], description: str, kind: str = "preset"
) -> None:
    """Make ``name`` resolvable by :func:`resolve_model`."""
    _REGISTRY[name.lower()] = RegisteredModel(name.lower(), factory, description, kind)


register_model("tiny-llama", _tiny_llama, "Llama shape, 3.5M params, random init", "tiny")
register_model("tiny-gpt2", _tiny_gpt2, "GPT-2 shape, tied embeddings, random init", "tiny")
register_model("tiny-bert", _tiny_bert, "BERT shape, masked LM, random init", "tiny")
register_model("minilm", _minilm, "all-MiniLM-L6-v2, real pretrained weights", "pretrained")
for _preset in PRESETS.values():
    register_model(_preset.name, preset_factory(_preset.name), _preset.description, kind="preset")

DEFAULT_MODEL = "tiny-llama"


def builtin_models() -> tuple[RegisteredModel, ...]:
    """Every registered name, built-ins first."""
    return tuple(_REGISTRY.values())


def resolve_model(model: str | nn.Module | ModelSource) -> ModelSource:
    """A :class:`ModelSource` from a built-in name, a path, ``module:factory`` or a module."""
    if isinstance(model, ModelSource):
        return model
    if isinstance(model, nn.Module):
        return module_instance_source(model)
    if not isinstance(model, str) or not model.strip():
        raise UnknownModelError(f"not a model: {model!r}", _names_hint())
    text = model.strip()
    entry = _REGISTRY.get(text.lower())
    if entry is not None:
        return entry.factory()
    path = Path(text)
    if path.is_dir() or (path.is_file() and path.suffix == ".json"):
        return hf_path_source(path)
    if ":" in text:
        return module_factory_source(text)
    close = difflib.get_close_matches(text.lower(), list(_REGISTRY), n=3, cutoff=0.5)
    did_you_mean = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownModelError(f"unknown model '{text}'", did_you_mean + _names_hint())


def _names_hint() -> str:
    names = ", ".join(_REGISTRY)
    return (
        f"built-in names: {names}; or a Hugging Face model directory, a config.json, "
        "or module.path:factory"
    )


def hf_path_source(path: Path) -> HFModelSource:
    """A local Hugging Face model directory (with or without weights) or a ``config.json``."""
    from transformers import AutoConfig

    config_dir = path if path.is_dir() else path.parent
    config_file = config_dir / "config.json" if path.is_dir() else path
    if not config_file.is_file():
        raise UnknownModelError(
            f"{path} has no config.json", "give a Hugging Face model directory or its config.json"
        )
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(str(config_file))
    except Exception as exc:
        raise UnknownModelError(
            f"cannot read {config_file} as a Hugging Face config ({exc})",
            "check that it is a transformers config.json",
        ) from exc
    has_weights = path.is_dir() and any(
        (config_dir / f).exists()
        for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
    )
    return HFModelSource(
        str(path),
        config,
        weights_path=config_dir if has_weights else None,
        description=f"from {path}" + (" (pretrained weights)" if has_weights else " (config only)"),
    )
