"""Model sources: how a model is built on a device, how to make a batch for it, and its loss.

A :class:`ModelSource` is one of:

* a :class:`HFModelSource`: a transformers model from its config, with pretrained weights when
  a folder of them is given (the built-in tiny models, ``minilm``, the architecture presets and
  local Hugging Face folders are all of this kind);
* a :class:`ModuleSource`: any ``torch.nn.Module`` from a factory, ``package.module:factory`` or
  ``path/to/file.py:factory``, where the module may also define
  ``make_batch(batch_size, seq_len, device)`` and ``compute_loss(model, batch)``; or an
  ``nn.Module`` instance through the Python API.

Which names resolve to which source is :mod:`advisor.models.registry`'s business.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advisor.core.errors import InvalidInputError, UnknownModelError, whole_number
from profilers.trial import UnsupportedConfiguration

__all__ = [
    "Batch",
    "BatchFn",
    "HFModelSource",
    "LossFn",
    "ModelSource",
    "ModuleSource",
    "Task",
    "default_loss",
    "default_make_batch",
    "module_factory_source",
    "module_instance_source",
    "quiet_transformers",
    "task_of_config",
]

Batch = Any
BatchFn = Callable[[int, int, torch.device], Batch]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


class Task(str, enum.Enum):
    """What the model is trained to do; decides the batch and the loss."""

    CAUSAL_LM = "causal-lm"
    MASKED_LM = "masked-lm"
    SEQUENCE_CLASSIFICATION = "sequence-classification"  # one label per sequence (num_labels)
    TOKEN_CLASSIFICATION = "token-classification"  # one label per token (num_labels)
    SEQ2SEQ_LM = "seq2seq-lm"  # encoder-decoder (T5, BART): source ids in, target ids as labels
    CUSTOM = "custom"


class ModelSource:
    """A model that can be built on any device, with its batch maker and loss."""

    name: str
    task: Task
    description: str = ""
    has_pretrained_weights: bool = False

    def build(
        self,
        device: torch.device | str = "cpu",
        *,
        pretrained: bool = True,
        attn_implementation: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> nn.Module:
        """Build the model on ``device`` (``"meta"`` builds without weights, any size), its
        floating-point weights in ``dtype`` (default: fp32 for HF models, as the factory makes
        them for plain modules)."""
        raise NotImplementedError

    def make_batch(
        self, batch_size: int, seq_len: int, device: torch.device | str = "cpu", seed: int = 0
    ) -> Batch:
        """One deterministic micro-batch of ``batch_size`` samples of ``seq_len`` tokens."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The scalar training loss of ``model`` on ``batch``."""
        raise NotImplementedError

    def make_packed_batch(
        self, documents: tuple[int, ...], device: torch.device | str = "cpu", seed: int = 0
    ) -> Batch:
        """One row of ``documents`` (their token counts) packed without padding, as
        transformers' ``DataCollatorWithFlattening`` makes it; only causal language models."""
        raise UnsupportedConfiguration(
            f"{self.name} is not a causal language model: packing without padding "
            "(DataCollatorWithFlattening) is for decoder models"
        )

    def tokens_per_sample(self, seq_len: int) -> int:
        return seq_len

    def check_sizes(self, batch_size: int, seq_len: int) -> None:
        """Raise :class:`InvalidInputError` for sizes this model cannot take."""
        whole_number("batch_size", batch_size, 1, "micro-batch")
        whole_number("seq_len", seq_len, 1, "sequence length")


# -- Hugging Face models ---------------------------------------------------------------------


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars for the duration."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


_CAUSAL_TYPES = {
    "llama", "gpt2", "mistral", "qwen2", "qwen3", "phi3", "phi", "gemma", "gemma2", "gemma3_text",
    "gpt_neox", "opt", "falcon", "mixtral", "gptj", "bloom", "olmo", "olmo2", "starcoder2",
}  # fmt: skip
_SEQ2SEQ_TYPES = {"t5", "mt5", "bart", "mbart"}
_MASKED_TYPES = {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2"}


def task_of_config(config: Any) -> Task:
    """The head to train, from ``config.architectures`` (causal or masked LM, sequence or
    token classification with ``num_labels``) or else the model type's language-model head."""
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    for arch in getattr(config, "architectures", None) or []:
        # ForConditionalGeneration also names vision-language decoders (Llava, Gemma 3): only an
        # encoder-decoder config (T5, BART) is a sequence-to-sequence model
        if encoder_decoder and arch.endswith("ForConditionalGeneration"):
            return Task.SEQ2SEQ_LM
        if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
            return Task.CAUSAL_LM
        if arch.endswith("ForMaskedLM") or arch.endswith("ForPreTraining"):
            return Task.MASKED_LM
        if arch.endswith("ForSequenceClassification"):
            return Task.SEQUENCE_CLASSIFICATION
        if arch.endswith("ForTokenClassification"):
            return Task.TOKEN_CLASSIFICATION
    model_type = getattr(config, "model_type", "")
    if model_type in _MASKED_TYPES:
        return Task.MASKED_LM
    if model_type in _SEQ2SEQ_TYPES and encoder_decoder:
        return Task.SEQ2SEQ_LM
    if model_type in _CAUSAL_TYPES:
        return Task.CAUSAL_LM
    raise UnknownModelError(
        f"cannot tell how to train a '{model_type}' model (architectures: "
        f"{getattr(config, 'architectures', None)})",
        "use a config whose architectures name a causal-LM, masked-LM, seq2seq-LM, sequence- or "
        "token-classification head, or wrap the model in a module:factory with make_batch "
        "and compute_loss",
    )


class HFModelSource(ModelSource):
    """A transformers model from a config, optionally with pretrained weights on disk."""

    def __init__(
        self,
        name: str,
        config: Any,
        *,
        weights_path: str | Path | None = None,
        description: str = "",
        task: Task | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.weights_path = Path(weights_path) if weights_path is not None else None
        self.has_pretrained_weights = weights_path is not None
        self.description = description
        self.task = task or task_of_config(config)

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    @property
    def max_positions(self) -> int | None:
        if getattr(self.config, "relative_attention_num_buckets", None) is not None:
            return None  # T5's relative position buckets: no table to run out of
        for attr in ("max_position_embeddings", "n_positions"):
            value = getattr(self.config, attr, None)
            if isinstance(value, int):
                return value
        return None

    def _auto_class(self) -> Any:
        import transformers

        return {
            Task.MASKED_LM: transformers.AutoModelForMaskedLM,
            Task.SEQUENCE_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
            Task.TOKEN_CLASSIFICATION: transformers.AutoModelForTokenClassification,
            Task.SEQ2SEQ_LM: transformers.AutoModelForSeq2SeqLM,
        }.get(self.task, transformers.AutoModelForCausalLM)

    def build(
        self,
        device: torch.device | str = "cpu",
        *,
        pretrained: bool = True,
        attn_implementation: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> nn.Module:
        auto = self._auto_class()
        # built in it directly: no fp32 copy of a big model on the way to bf16
        # never code from a model folder (TRUST in advisor.catalog.models): False, not None,
        # which in transformers 5.25 (dynamic_module_utils.resolve_trust_remote_code) asks y/N
        kwargs: dict[str, Any] = {"dtype": dtype or torch.float32, "trust_remote_code": False}
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        device = torch.device(device)
        with quiet_transformers():
            if pretrained and self.weights_path is not None and device.type != "meta":
                model = auto.from_pretrained(str(self.weights_path), **kwargs)
                model = model.to(device)
            else:
                with device:
                    model = auto.from_config(copy.deepcopy(self.config), **kwargs)
        return model  # type: ignore[no-any-return]

    def check_sizes(self, batch_size: int, seq_len: int) -> None:
        super().check_sizes(batch_size, seq_len)
        limit = self.max_positions
        if limit is not None and seq_len > limit:
            raise InvalidInputError(
                f"{self.name} takes at most {limit} positions, got seq_len={seq_len}",
                f"pass seq_len={limit} or less",
                argument="seq_len",
            )

    def make_batch(
        self, batch_size: int, seq_len: int, device: torch.device | str = "cpu", seed: int = 0
    ) -> Batch:
        gen = torch.Generator().manual_seed(seed)
        # ids from 5 up keep clear of special tokens in real vocabularies
        low = min(5, self.vocab_size - 1)
        ids = torch.randint(low, self.vocab_size, (batch_size, seq_len), generator=gen)
        mask = torch.ones(batch_size, seq_len, dtype=torch.long)
        labels_n = int(getattr(self.config, "num_labels", 2))
        if self.task is Task.CAUSAL_LM:
            batch = {"input_ids": ids, "attention_mask": mask, "labels": ids.clone()}
        elif self.task is Task.SEQUENCE_CLASSIFICATION:
            classes = torch.randint(0, labels_n, (batch_size,), generator=gen)
            batch = {"input_ids": ids, "attention_mask": mask, "labels": classes}
        elif self.task is Task.TOKEN_CLASSIFICATION:
            classes = torch.randint(0, labels_n, (batch_size, seq_len), generator=gen)
            batch = {"input_ids": ids, "attention_mask": mask, "labels": classes}
        elif self.task is Task.SEQ2SEQ_LM:
            # a target of seq_len tokens too; the model makes its decoder inputs from the labels
            # (transformers 5.25: T5's _shift_right, BART's shift_tokens_right, both on
            # decoder_start_token_id), as a Trainer batch without decoder_input_ids has it
            target = torch.randint(low, self.vocab_size, (batch_size, seq_len), generator=gen)
            batch = {"input_ids": ids, "attention_mask": mask, "labels": target}
        else:
            labels = torch.full_like(ids, -100)
            chosen = torch.rand(batch_size, seq_len, generator=gen) < 0.15
            chosen[:, 0] = True  # at least one masked position per row
            labels[chosen] = ids[chosen]
            mask_id = getattr(self.config, "mask_token_id", None) or min(4, self.vocab_size - 1)
            inputs = ids.clone()
            inputs[chosen] = mask_id
            batch = {"input_ids": inputs, "attention_mask": mask, "labels": labels}
        return {k: v.to(device) for k, v in batch.items()}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(**batch).loss  # type: ignore[no-any-return]

    def make_packed_batch(
        self, documents: tuple[int, ...], device: torch.device | str = "cpu", seed: int = 0
    ) -> Batch:
        if self.task is not Task.CAUSAL_LM:
            return super().make_packed_batch(documents, device, seed)
        # transformers 5.25 DataCollatorWithFlattening: input_ids concatenated, labels with
        # -100 at each document's first token, position_ids restarting at 0 per document, no
        # attention_mask; the model finds the documents from position_ids
        # (masking_utils.find_packed_sequence_indices) and masks across them
        from transformers import DataCollatorWithFlattening

        gen = torch.Generator().manual_seed(seed)
        low = min(5, self.vocab_size - 1)
        features = [
            {"input_ids": torch.randint(low, self.vocab_size, (n,), generator=gen).tolist()} for n in documents
        ]
        batch = DataCollatorWithFlattening(return_tensors="pt")(features)
        return {k: v.to(device) for k, v in batch.items()}


# -- plain nn.Modules ------------------------------------------------------------------------


def default_make_batch(model: nn.Module) -> BatchFn:
    """A batch for a plain module, from its first layer: token ids for an Embedding,
    ``(batch, seq, in_features)`` floats for a Linear."""
    first = next((m for m in model.modules() if not list(m.children())), None)
    if isinstance(first, nn.Embedding):
        vocab = first.num_embeddings

        def ids(batch_size: int, seq_len: int, device: torch.device) -> Batch:
            gen = torch.Generator().manual_seed(0)
            return torch.randint(0, vocab, (batch_size, seq_len), generator=gen).to(device)

        return ids
    if isinstance(first, nn.Linear):
        width = first.in_features

        def feats(batch_size: int, seq_len: int, device: torch.device) -> Batch:
            gen = torch.Generator().manual_seed(0)
            return torch.randn(batch_size, seq_len, width, generator=gen).to(device)

        return feats
    raise UnknownModelError(
        f"cannot guess a batch for a model whose first layer is {type(first).__name__}",
        "define make_batch(batch_size, seq_len, device) next to your factory "
        "(or pass make_batch= in the Python API)",
    )


def default_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The model's own loss when it returns one; else mean of squares of its output.

    The stand-in loss keeps the memory behaviour of a real loss (one scalar reduction over the
    output) when a module has no loss of its own.
    """
    out = model(**batch) if isinstance(batch, dict) else model(batch)
    loss = getattr(out, "loss", None)
    if loss is None and isinstance(out, dict):
        loss = out.get("loss")
    if isinstance(loss, torch.Tensor):
        return loss
    if isinstance(out, torch.Tensor):
        return out if out.dim() == 0 else out.float().pow(2).mean()
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0].float().pow(2).mean()
    raise UnknownModelError(
        f"cannot make a loss from a model output of type {type(out).__name__}",
        "define compute_loss(model, batch) next to your factory",
    )


class ModuleSource(ModelSource):
    """Any ``nn.Module`` made by a factory, with optional batch and loss functions."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], nn.Module],
        *,
        make_batch: BatchFn | None = None,
        loss_fn: LossFn | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.task = Task.CUSTOM
        self.factory = factory
        self._make_batch = make_batch
        self._loss_fn = loss_fn
        self.description = description or f"user module from {name}"
        self.has_pretrained_weights = True  # whatever the factory loads is the starting point

    def build(
        self,
        device: torch.device | str = "cpu",
        *,
        pretrained: bool = True,
        attn_implementation: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> nn.Module:
        device = torch.device(device)
        with device:
            model = self.factory()
        if not isinstance(model, nn.Module):
            raise UnknownModelError(
                f"{self.name} returned {type(model).__name__}, not a torch.nn.Module",
                "make the factory return the model",
            )
        model = model.to(device) if dtype is None else model.to(device=device, dtype=dtype)
        if not pretrained and device.type != "meta":
            for module in model.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
        return model

    def make_batch(
        self, batch_size: int, seq_len: int, device: torch.device | str = "cpu", seed: int = 0
    ) -> Batch:
        device = torch.device(device)
        if self._make_batch is None:
            self._make_batch = default_make_batch(self.build("meta"))
        return self._make_batch(batch_size, seq_len, device)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return (self._loss_fn or default_loss)(model, batch)


def module_instance_source(model: nn.Module, **kwargs: Any) -> ModuleSource:
    """A source for an ``nn.Module`` instance: every build is a fresh deep copy."""
    template = model

    def factory() -> nn.Module:
        return copy.deepcopy(template)

    return ModuleSource(kwargs.pop("name", type(model).__name__), factory, **kwargs)


def _load_python_module(target: str) -> Any:
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise UnknownModelError(
                f"no Python file at {path}", "give module.path:factory or path/to/file.py:factory"
            )
        name = f"_vram_advisor_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise UnknownModelError(
            f"cannot import module '{target}' ({exc})",
            "check the module path and that it is importable (PYTHONPATH), or give "
            "path/to/file.py:factory",
        ) from exc


def module_factory_source(spec: str) -> ModuleSource:
    """Resolve ``package.module:factory`` or ``file.py:factory`` into a :class:`ModuleSource`."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise UnknownModelError(
            f"'{spec}' is not of the form module.path:factory", "for example mypkg.models:build"
        )
    module = _load_python_module(target)
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise UnknownModelError(
            f"module '{target}' has no callable '{attr}'",
            f"callables there: {', '.join(names[:15]) or 'none'}",
        )
    return ModuleSource(
        spec,
        factory,
        make_batch=getattr(module, "make_batch", None),
        loss_fn=getattr(module, "compute_loss", None),
    )
