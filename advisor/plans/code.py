"""The parts of ready-to-paste training code that a plan's cuts fill in.

Each cut adds its own fragment (:meth:`advisor.plans.Cut.add_code`): keyword arguments of
``TrainingArguments`` and ``from_pretrained``, lines that edit the model, an optimizer, a forward
context. Everything here is Python source text; :mod:`advisor.report.snippets` lays the parts
out as a transformers + peft script or a plain PyTorch loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TRAINABLE_PARAMETERS", "TrainingCode"]

# the optimizer's parameters in generated plain PyTorch code
TRAINABLE_PARAMETERS = "[p for p in model.parameters() if p.requires_grad]"


@dataclass
class TrainingCode:
    """Source-text fragments of a training script, filled in cut by cut (in plan order)."""

    cut_names: frozenset[str] = frozenset()  # the plan's cuts, for a cut that depends on another
    recorded_lora_targets: tuple[str, ...] = ()  # the targets the trial chose (automatic ones)
    # LoRA: ``LoraConfig`` keyword arguments (``None``: no adapters) and explicit targets
    lora_kwargs: dict[str, str] | None = None
    lora_targets: tuple[str, ...] = ()
    # transformers + peft
    peft_imports: list[str] = field(default_factory=list)  # beyond LoraConfig, get_peft_model
    transformers_imports: list[str] = field(default_factory=list)  # beyond the model and args
    before_load: list[str] = field(default_factory=list)  # e.g. a BitsAndBytesConfig
    load_kwargs: dict[str, str] = field(default_factory=dict)  # from_pretrained(...) arguments
    from_config: bool = False  # random init: build from the config, load no weights
    after_load: list[str] = field(default_factory=list)  # e.g. prepare_model_for_kbit_training
    freeze: list[str] = field(default_factory=list)  # freezing, before the adapters are added
    training_arguments: dict[str, str] = field(default_factory=dict)  # TrainingArguments(...)
    after_arguments: list[str] = field(default_factory=list)  # what has no TrainingArguments flag
    # plain PyTorch, in the order the lines run: adapters, dtype, freezing, recompute, compile
    torch_dtype: list[str] = field(default_factory=list)
    torch_freeze: list[str] = field(default_factory=list)
    torch_recompute: list[str] = field(default_factory=list)
    torch_compile: list[str] = field(default_factory=list)
    torch_optimizer: list[str] = field(default_factory=list)  # empty: AdamW
    torch_contexts: list[str] = field(default_factory=list)  # around forward and the loss
    grad_scaler: bool = False  # scale the loss and step through a GradScaler
    zero_grad_set_to_none: bool = True  # the loop's optimizer.zero_grad(set_to_none=...)
    accumulation_steps: int = 1
