"""Where a model comes from: built-in tiny models, presets, Hugging Face paths, user modules.

:mod:`.sources` holds the source types (how to build, batch and score a model), :mod:`.presets`
turns a catalog preset into a source, and :mod:`.registry` resolves a name, path or module to
one. Every public name of the three is importable from here, as from the old ``advisor.models``.
"""

from advisor.models.presets import preset_config, preset_factory, preset_source
from advisor.models.registry import (
    DEFAULT_MODEL,
    MINILM_PACKAGE,
    TRUST,
    RegisteredModel,
    builtin_models,
    hf_path_source,
    minilm_path,
    register_model,
    resolve_model,
)
from advisor.models.sources import (
    Batch,
    BatchFn,
    HFModelSource,
    LossFn,
    ModelSource,
    ModuleSource,
    Task,
    default_loss,
    default_make_batch,
    module_factory_source,
    module_instance_source,
    quiet_transformers,
    task_of_config,
)

__all__ = [
    "DEFAULT_MODEL",
    "MINILM_PACKAGE",
    "TRUST",
    "Batch",
    "BatchFn",
    "HFModelSource",
    "LossFn",
    "ModelSource",
    "ModuleSource",
    "RegisteredModel",
    "Task",
    "builtin_models",
    "default_loss",
    "default_make_batch",
    "hf_path_source",
    "minilm_path",
    "module_factory_source",
    "module_instance_source",
    "preset_config",
    "preset_factory",
    "preset_source",
    "quiet_transformers",
    "register_model",
    "resolve_model",
    "task_of_config",
]
