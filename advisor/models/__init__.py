"""Where a model comes from: built-in tiny models, presets, Hugging Face paths and Hub ids, user
modules.

:mod:`.sources` holds the source types (how to build, batch and score a model), :mod:`.presets`
turns a catalog preset into a source, :mod:`.hub` a Hub id's ``config.json``, and
:mod:`.registry` resolves a name, path, Hub id or module to one. Every public name of the four is
importable from here, as from the old ``advisor.models``.
"""

from advisor.models.hub import (
    HubId,
    fetch_hub_config,
    hub_cache_dir,
    hub_offline,
    hub_source,
    parse_hub_id,
)
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
    "HubId",
    "LossFn",
    "ModelSource",
    "ModuleSource",
    "RegisteredModel",
    "Task",
    "builtin_models",
    "default_loss",
    "default_make_batch",
    "fetch_hub_config",
    "hf_path_source",
    "hub_cache_dir",
    "hub_offline",
    "hub_source",
    "minilm_path",
    "module_factory_source",
    "module_instance_source",
    "parse_hub_id",
    "preset_config",
    "preset_factory",
    "preset_source",
    "quiet_transformers",
    "register_model",
    "resolve_model",
    "task_of_config",
]
