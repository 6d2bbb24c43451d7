"""The built-in model names as data: name, kind and a one-line description of each.

:mod:`advisor.models.registry` registers a builder for each of these; listing them
(``vram-advisor models``) needs only this table and the presets, so it imports neither torch
nor transformers. Pure data, like :mod:`.presets`.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.catalog.presets import PRESETS

__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "TRUST", "ModelEntry", "model_entries"]


@dataclass(frozen=True)
class ModelEntry:
    """One built-in model name."""

    name: str
    kind: str  # "tiny" (runs here), "pretrained", "preset" (simulate only, on meta)
    description: str


DEFAULT_MODEL = "tiny-llama"

# what `--help` of every command taking --model says about running code (advisor.models.registry)
TRUST = (
    "Code runs only when you name it: module.path:factory or file.py:factory is imported and "
    "called; a Hugging Face folder or config.json is read as data (trust_remote_code is never "
    "set, so a model that needs its own code is refused)."
)


# the models built from code (advisor.models.registry); the presets follow them
BUILTIN_MODELS: tuple[ModelEntry, ...] = (
    ModelEntry("tiny-llama", "tiny", "Llama shape, 3.5M params, random init"),
    ModelEntry("tiny-gpt2", "tiny", "GPT-2 shape, tied embeddings, random init"),
    ModelEntry("tiny-bert", "tiny", "BERT shape, masked LM, random init"),
    ModelEntry("minilm", "pretrained", "all-MiniLM-L6-v2, real pretrained weights"),
)


def model_entries() -> tuple[ModelEntry, ...]:
    """Every built-in name, the models built from code first, then the presets."""
    return BUILTIN_MODELS + tuple(ModelEntry(p.name, "preset", p.description) for p in PRESETS.values())
