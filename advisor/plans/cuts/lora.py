"""Cut 2: LoRA (PEFT) on a frozen base, and QLoRA, its variant on a 4-/8-bit quantized base."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.cuts.blocks import (
    bitsandbytes_reason,
    check_targets,
    default_lora_targets,
    find_repeated_blocks,
    leaf_modules_summary,
    matches_target,
)
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut, Recipe
from advisor.plans.view import EstimateView
from profilers.simulate.quant import Linear4bitStandIn, stand_in_for
from profilers.trial import UnsupportedConfiguration

__all__ = ["LoRA", "QLoRA"]


def _lora(model: nn.Module, cut: LoRA | QLoRA, ctx: BuildContext) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    targets = tuple(cut.targets) or default_lora_targets(model)
    check_targets(model, targets)
    config = LoraConfig(
        r=cut.r,
        lora_alpha=cut.alpha,
        lora_dropout=cut.dropout,
        target_modules=list(targets),
        bias="none",
        fan_in_fan_out=_targets_conv1d(model, targets),  # GPT-2 stores its linears transposed
    )
    with warnings.catch_warnings(), _no_bitsandbytes_import():  # peft asks the deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    ctx.recipe.notes["lora_targets"] = list(targets)
    ctx.recipe.notes["lora_r"] = cut.r
    return peft_model  # type: ignore[no-any-return]


@contextlib.contextmanager
def _no_bitsandbytes_import() -> Iterator[None]:
    """While PEFT wraps a model in a process that has not imported bitsandbytes, tell PEFT's
    LoRA dispatch that bitsandbytes is absent, so it does not import it.

    Exact: peft 0.22.0 (``tuners/lora/model.py::_create_new_module``) imports bitsandbytes only
    to add ``dispatch_bnb_8bit``/``dispatch_bnb_4bit``, which wrap a layer only when it is an
    instance of ``bnb.nn.Linear8bitLt``/``bnb.nn.Linear4bit`` — and no object can be one while
    bitsandbytes is not imported (the simulator's stand-ins are ``nn.Linear`` subclasses). The
    import costs about 3.5 s of CPU (bitsandbytes 0.50.2 calls ``torch.compile`` at import,
    which loads dynamo), paid by each worker of a simulated sweep on its first LoRA plan.
    """
    if "bitsandbytes" in sys.modules:
        yield
        return
    import peft.tuners.lora.model as lora_model

    saved = lora_model.is_bnb_available, lora_model.is_bnb_4bit_available
    lora_model.is_bnb_available = lora_model.is_bnb_4bit_available = lambda: False  # type: ignore[assignment]
    try:
        yield
    finally:
        lora_model.is_bnb_available, lora_model.is_bnb_4bit_available = saved


def _targets_conv1d(model: nn.Module, targets: Sequence[str]) -> bool:
    """True when the targeted layers are transformers' ``Conv1D`` (weights stored (in, out))."""
    for name, module in model.named_modules():
        if type(module).__name__ == "Conv1D" and any(matches_target(name, t) for t in targets):
            return True
    return False


def _as_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise PlanError(f"qlora: {name} must be true or false, got {value}", f"for example qlora({name}=false)")
    return text in ("true", "1")


def _check_lora_params(cut: LoRA | QLoRA) -> None:
    if cut.r < 1:
        raise PlanError(f"{cut.name}: r must be ≥ 1, got {cut.r}", f"for example {cut.name}(r=8)")
    if not 0.0 <= cut.dropout < 1.0:
        raise PlanError(
            f"{cut.name}: dropout must be in [0, 1), got {cut.dropout}",
            f"for example {cut.name}(dropout=0.05)",
        )


def _lora_estimate(cut: LoRA | QLoRA, view: EstimateView) -> None:
    view.lora = True
    view.lora_r = int(cut.r)
    view.lora_dropout = float(cut.dropout)
    view.lora_targets = tuple(cut.targets)


def _lora_code(cut: LoRA | QLoRA, code: TrainingCode) -> None:
    code.lora_kwargs = {"r": repr(cut.r), "lora_alpha": repr(cut.alpha), "lora_dropout": repr(cut.dropout)}
    code.lora_targets = tuple(cut.targets)


@register_cut
@dataclass(frozen=True)
class LoRA(Cut):
    """Low-rank adapters through PEFT on a frozen base; ``targets`` empty → automatic."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ()

    name = "lora"
    summary = "freeze the base, train low-rank adapters (PEFT LoRA: r, alpha, dropout, targets)"
    conflicts = frozenset({"qlora"})
    order = 30
    title = "LoRA"
    trains_subset = True

    def __post_init__(self) -> None:
        _check_lora_params(self)

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        return _lora(model, self, ctx)

    def shape_estimate(self, view: EstimateView) -> None:
        _lora_estimate(self, view)

    def add_code(self, code: TrainingCode) -> None:
        _lora_code(self, code)


_COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


_QUANT_TYPES = ("nf4", "fp4")
_STORAGE_DTYPES = {
    "uint8": torch.uint8, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
}  # fmt: skip


def _block_linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module, bool]]:
    """(parent, name, layer, transposed) for every ``nn.Linear`` — and transformers' ``Conv1D``
    (GPT-2: weights stored (in, out), so transposed) — in the repeated blocks, as transformers'
    bitsandbytes integration replaces them."""
    _, blocks = find_repeated_blocks(model)
    found: list[tuple[nn.Module, str, nn.Module, bool]] = []
    for block in blocks or [model]:
        for parent in list(block.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    found.append((parent, child_name, child, False))
                elif type(child).__name__ == "Conv1D" and getattr(child, "weight", None) is not None:
                    found.append((parent, child_name, child, True))
    return found


def _quantize_blocks(model: nn.Module, cut: QLoRA, device: torch.device) -> int:
    """Swap every linear of the repeated blocks for a frozen 4-bit or 8-bit one holding the same
    weights: bitsandbytes' ``Linear4bit`` / ``Linear8bitLt`` on a real device, their stand-ins
    (:mod:`profilers.simulate.quant`, same storages and autograd) on ``meta``, where a replay
    builds. Returns the number of layers swapped."""
    layers = _block_linears(model)
    compute_dtype = _COMPUTE_DTYPES[cut.compute_dtype]
    quant_storage = _STORAGE_DTYPES[cut.quant_storage]
    if device.type == "meta":
        for parent, name, child, transposed in layers:
            stand_in = stand_in_for(
                child, bits=cut.bits, transposed=transposed, compute_dtype=compute_dtype,
                quant_type=cut.quant_type, double_quant=cut.double_quant, quant_storage=quant_storage,
            )  # fmt: skip
            setattr(parent, name, stand_in)
        return len(layers)
    import bitsandbytes as bnb

    for parent, name, child, transposed in layers:
        weight = cast(torch.Tensor, child.weight).data.detach().to("cpu", torch.float32)
        if transposed:
            weight = weight.t().contiguous()
        out_features, in_features = weight.shape
        bias = cast("torch.Tensor | None", child.bias)
        has_bias = bias is not None
        new: nn.Module
        if cut.bits == 4:
            new = bnb.nn.Linear4bit(
                in_features, out_features, bias=has_bias, compute_dtype=compute_dtype,
                compress_statistics=cut.double_quant, quant_type=cut.quant_type, quant_storage=quant_storage,
            )  # fmt: skip
            new.weight = bnb.nn.Params4bit(
                weight, requires_grad=False, compress_statistics=cut.double_quant,
                quant_type=cut.quant_type, quant_storage=quant_storage, module=new,
            )  # fmt: skip
        else:
            new = bnb.nn.Linear8bitLt(in_features, out_features, bias=has_bias, has_fp16_weights=False)
            new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
        if bias is not None:
            new.bias = nn.Parameter(bias.data.detach().to("cpu"), requires_grad=False)
        setattr(parent, name, new.to(device))  # moving quantizes the weights
    return len(layers)


def _prepare_for_kbit_training(model: nn.Module) -> None:
    """PEFT's ``prepare_model_for_kbit_training`` without its checkpointing part (the grad-ckpt
    cut owns that, non-reentrant, so no input-grad hook is needed): every parameter frozen, and
    the fp16/bf16 ones that are not 4-bit weights (norms, embeddings, lm_head, biases) upcast to
    float32 (peft 0.22.0 ``utils/other.py``, read as installed)."""
    from peft import prepare_model_for_kbit_training

    prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


@register_cut
@dataclass(frozen=True)
class QLoRA(Cut):
    """LoRA on a base whose block linears are quantized by bitsandbytes (NF4/FP4 or int8).

    ``quant_type``, ``double_quant`` (absmax quantized again) and ``quant_storage`` are the
    4-bit layout's (``BitsAndBytesConfig``'s ``bnb_4bit_*``); ``compute_dtype`` is the dtype
    the 4-bit layers multiply in. Measured, bitsandbytes quantizes the weights; simulated, the
    replay holds the same storages in stand-ins (:mod:`profilers.simulate.quant`), so no
    bitsandbytes is needed to simulate.
    """

    bits: int = 4
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ()
    compute_dtype: str = "float32"  # the 4-bit layers' matmul dtype: float32, bfloat16, float16
    quant_type: str = "nf4"  # 4-bit: nf4 or fp4
    double_quant: bool = True  # 4-bit: quantize the absmax values too (bitsandbytes' default)
    quant_storage: str = "uint8"  # 4-bit: the dtype the packed codes are stored in
    # True: peft's prepare_model_for_kbit_training upcasts every non-quantized fp16/bf16 weight
    # (embeddings, lm_head, norms) to float32. False: the model is loaded in compute_dtype
    # (``from_pretrained(dtype=…)``) and stays there — no prepare_model_for_kbit_training, the
    # way QLoRA is run when memory is tight (on a 128k-vocab model the upcast costs GiBs)
    upcast: bool = True

    name = "qlora"
    summary = "LoRA on a frozen base quantized to 4-bit NF4 or 8-bit (bitsandbytes)"
    conflicts = frozenset({"lora", "bf16-weights"})
    order = 29
    title = "QLoRA"
    speed_stand_in = "lora"
    needs_bitsandbytes = True
    trains_subset = True

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        compute = str(settings.get("compute_dtype", ""))
        return "bf16" in compute or "bfloat16" in compute

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise PlanError(f"qlora: bits must be 4 or 8, got {self.bits}", "qlora(bits=4) or qlora(bits=8)")
        dtype = _DTYPE_ALIASES.get(self.compute_dtype, self.compute_dtype)
        if dtype not in _COMPUTE_DTYPES:
            raise PlanError(
                f"qlora: compute_dtype must be one of {', '.join(_COMPUTE_DTYPES)}, got {self.compute_dtype}",
                "for example qlora(compute_dtype=bfloat16)",
            )
        object.__setattr__(self, "compute_dtype", dtype)  # one spelling, one plan name
        if self.quant_type not in _QUANT_TYPES:
            raise PlanError(
                f"qlora: quant_type must be nf4 or fp4, got {self.quant_type}", "for example qlora(quant_type=nf4)"
            )
        storage = _DTYPE_ALIASES.get(self.quant_storage, self.quant_storage)
        if storage not in _STORAGE_DTYPES:
            raise PlanError(
                f"qlora: quant_storage must be one of {', '.join(_STORAGE_DTYPES)}, got {self.quant_storage}",
                "for example qlora(quant_storage=uint8)",
            )
        object.__setattr__(self, "quant_storage", storage)
        object.__setattr__(self, "double_quant", _as_bool(self.double_quant, "double_quant"))
        object.__setattr__(self, "upcast", _as_bool(self.upcast, "upcast"))
        if not self.upcast and self.compute_dtype == "float32":
            raise PlanError(
                "qlora(upcast=false) keeps the non-quantized weights in compute_dtype, which is float32 here "
                "(nothing to skip)",
                "for example qlora(compute_dtype=bfloat16,upcast=false)",
            )
        _check_lora_params(self)

    def configure(self, recipe: Recipe) -> None:
        if not self.upcast:  # loaded in the compute dtype: never an fp32 copy of the rest
            recipe.model_dtype = _COMPUTE_DTYPES[self.compute_dtype]

    def check_available(self) -> None:
        reason = bitsandbytes_reason()
        if reason is not None:
            raise UnsupportedConfiguration(reason)

    def check_device(self, device: torch.device) -> None:
        if device.type not in ("cpu", "cuda", "meta"):
            raise UnsupportedConfiguration(f"bitsandbytes quantization does not run on {device.type}")

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(False)
        swapped = _quantize_blocks(model, self, ctx.device)
        if not swapped:
            raise PlanError(
                f"qlora found no nn.Linear layer to quantize in {type(model).__name__}",
                "use lora instead; layers there: " + leaf_modules_summary(model),
            )
        if self.upcast:
            _prepare_for_kbit_training(model)
        # upcast=false: every parameter is already frozen (above), and transformers 5.25's
        # activation_checkpointing_enable adds the input-require-grads hook itself when the
        # grad-ckpt cut enables checkpointing (modeling_utils._activation_checkpointing_enable)
        ctx.recipe.notes["quantized_layers"] = swapped
        ctx.recipe.notes["quantized_bits"] = self.bits
        peft_model = _lora(model, self, ctx)
        for module in peft_model.modules():  # PEFT's 4-bit LoRA wrapper clones the base output
            base = getattr(module, "base_layer", None)
            if isinstance(base, Linear4bitStandIn):
                base.peft_clone = True
        return peft_model

    def shape_estimate(self, view: EstimateView) -> None:
        _lora_estimate(self, view)
        view.qlora_bits = int(self.bits)

    def bnb_config(self, cut_names: frozenset[str] = frozenset()) -> dict[str, Any]:
        """``BitsAndBytesConfig`` keyword arguments for this cut, dtypes as their names; with
        bf16 autocast in the plan (``cut_names``) a float32 compute dtype is written as
        bfloat16. Followed: transformers 5.25 ``utils/quantization_config.py``."""
        if self.bits == 8:
            return {"load_in_8bit": True, "llm_int8_threshold": 0.0}
        compute = "bfloat16" if self.compute_dtype == "float32" and "bf16" in cut_names else self.compute_dtype
        kwargs: dict[str, Any] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": self.quant_type,
            "bnb_4bit_use_double_quant": self.double_quant,
            "bnb_4bit_compute_dtype": compute,
        }
        if self.quant_storage != "uint8":
            kwargs["bnb_4bit_quant_storage"] = self.quant_storage
        return kwargs

    def add_code(self, code: TrainingCode) -> None:
        _lora_code(self, code)
        if self.upcast:
            code.peft_imports.append("prepare_model_for_kbit_training")
        code.transformers_imports.append("BitsAndBytesConfig")
        kwargs = self.bnb_config(code.cut_names)
        if self.bits == 4:
            dtypes = ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage")
            code.before_load.append("bnb = BitsAndBytesConfig(")
            code.before_load += [
                f"    {k}={'torch.' + v if k in dtypes else json.dumps(v) if isinstance(v, str) else v},"
                for k, v in kwargs.items()
            ]
            code.before_load.append(")")
        else:
            # bitsandbytes' Linear8bitLt default, as measured and simulated (transformers' own
            # default, 6.0, keeps outlier columns of the activations in fp16: data-dependent)
            code.before_load.append("bnb = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=0.0)")
        code.load_kwargs["quantization_config"] = "bnb"
        if not self.upcast:
            # no prepare_model_for_kbit_training: it would upcast embeddings, lm_head and norms
            # to float32; TrainingArguments(gradient_checkpointing=True) adds the input-grad hook
            code.load_kwargs["dtype"] = f"torch.{self.compute_dtype}"
            code.after_load.append(
                "# no prepare_model_for_kbit_training: it would upcast embeddings, lm_head and norms to float32"
            )
        elif "grad-ckpt" in code.cut_names:
            code.after_load.append(
                "model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True, "
                'gradient_checkpointing_kwargs={"use_reentrant": False})'
            )
        else:
            code.after_load.append("model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)")
