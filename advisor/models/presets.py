"""Presets as model sources: a catalog preset built into a transformers config (no weights)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from advisor.catalog.presets import PRESETS
from advisor.models.sources import HFModelSource, quiet_transformers

__all__ = ["preset_config", "preset_factory", "preset_source"]


def preset_config(name: str) -> Any:
    """The transformers config of preset ``name`` (a fresh object each call)."""
    from transformers import AutoConfig

    preset = PRESETS[name]
    fields = copy.deepcopy(preset.config)
    model_type = fields.pop("model_type")
    with quiet_transformers():
        config = AutoConfig.for_model(model_type, **fields)
    config.architectures = list(preset.config["architectures"])
    return config


def preset_source(name: str) -> HFModelSource:
    """A config-only model source for preset ``name`` (no weights: simulate it)."""
    preset = PRESETS[name]
    return HFModelSource(
        preset.name,
        preset_config(name),
        description=f"{preset.description} (preset from {preset.hf_id}, no weights)",
    )


def preset_factory(name: str) -> Callable[[], HFModelSource]:
    """A zero-argument factory of :func:`preset_source` (what the registry keeps)."""
    def make() -> HFModelSource:
        return preset_source(name)

    return make

