"""Where a model comes from: built-in tiny models, presets, Hugging Face paths, user modules."""

from advisor.models.presets import preset_config, preset_source
from advisor.models.registry import (
    DEFAULT_MODEL,
    RegisteredModel,
    builtin_models,
    hf_path_source,
    register_model,
    resolve_model,
)
from advisor.models.sources import (
    MINILM_PACKAGE,
    Batch,
    HFModelSource,
    ModelSource,
    ModuleSource,
    Task,
    minilm_path,
    quiet_transformers,
)

__all__ = [
    "DEFAULT_MODEL",
    "MINILM_PACKAGE",
    "Batch",
    "HFModelSource",
    "ModelSource",
    "ModuleSource",
    "RegisteredModel",
    "Task",
    "builtin_models",
    "hf_path_source",
    "minilm_path",
    "preset_config",
    "preset_source",
    "quiet_transformers",
    "register_model",
    "resolve_model",
]
