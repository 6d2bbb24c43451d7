"""The cuts: each memory- or compute-saving technique as a small :class:`~advisor.plans.Cut`.

Every cut is a frozen dataclass whose fields are its parameters. The CLI spelling of a cut is
its name with optional parameters in parentheses, lists separated by ``|``::

    lora                       lora(r=16,alpha=16,targets=q_proj|k_proj|v_proj)
    qlora(bits=8)              frozen-emb(path=emb.safetensors)      freeze-layers(k=2)
    grad-ckpt  bf16  fp16  bf16-weights  sgd(momentum=0.9)  adafactor  adamw8bit
    accum(steps=4)  eager-attn  sdpa-attn  offload  scratch  compile(backend=inductor)

A cut list is comma-separated (``lora(r=16),grad-ckpt``); a plan joins cuts with ``+`` and a
plan list separates plans with ``;`` (``lora+grad-ckpt;sgd;baseline``).

This module also enumerates plans: singles, every compatible combination up to a size, or a
user list, pruning conflicting and redundant sets with the reason recorded.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from advisor.core.errors import PlanError
from advisor.plans import BASELINE, BuildContext, Cut, Plan, Recipe
from profilers.trial import StepProgram, UnsupportedConfiguration

log = logging.getLogger(__name__)

CUTS: dict[str, type[Cut]] = {}
_CutClass = TypeVar("_CutClass", bound=type[Cut])


def register_cut(cls: _CutClass) -> _CutClass:
    """Make a cut class reachable by its name (a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    CUTS[cls.name] = cls
    return cls


# -- helpers shared by the cuts ----------------------------------------------------------------


def _is_hf(model: nn.Module) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(model, PreTrainedModel)


def _bitsandbytes_reason() -> str | None:
    """Why bitsandbytes cannot be used here, or ``None`` when it can."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # ImportError, or a broken native library
        return f"bitsandbytes is not importable ({type(exc).__name__}: {exc}); pip install bitsandbytes"
    return None


def find_repeated_blocks(model: nn.Module) -> tuple[str, list[nn.Module]]:
    """The model's repeated blocks (its transformer layers): the ``ModuleList``/``Sequential``
    of same-class children holding the most parameters. ``("", [])`` when there is none."""
    best: tuple[int, str, list[nn.Module]] = (-1, "", [])
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)):
            continue
        children = list(module.children())
        minimum = 1 if isinstance(module, nn.ModuleList) else 2
        if len(children) < minimum or len({type(c) for c in children}) != 1:
            continue
        if not any(True for _ in children[0].parameters()):
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best[0]:
            best = (size, name, children)
    return best[1], best[2]


def leaf_modules_summary(model: nn.Module, limit: int = 40) -> str:
    """The names a target can match, grouped by last name component: ``q_proj (Linear ×2), …``."""
    groups: dict[str, tuple[str, int]] = {}
    for name, module in model.named_modules():
        if not name or list(module.children()):
            continue
        short = name.rsplit(".", 1)[-1]
        kind, count = groups.get(short, (type(module).__name__, 0))
        groups[short] = (kind, count + 1)
    parts = [f"{n} ({k}{f' ×{c}' if c > 1 else ''})" for n, (k, c) in groups.items()]
    more = f", … ({len(parts) - limit} more)" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def default_lora_targets(model: nn.Module) -> tuple[str, ...]:
    """LoRA targets when the user gives none.

    Known transformers architectures use PEFT's own table (``q_proj, v_proj`` for Llama,
    ``query, value`` for BERT, ``c_attn`` for GPT-2). Any other module: the names of the
    ``nn.Linear`` layers inside its repeated blocks, or of all its ``nn.Linear`` layers when it
    has no repeated blocks (the output layer excluded when there are others).
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
        if known:
            return tuple(known)
    _, blocks = find_repeated_blocks(model)
    if blocks:
        scope: list[tuple[str, nn.Module]] = []
        for block in blocks:
            scope.extend(block.named_modules())
    else:
        scope = list(model.named_modules())
        linears = [n for n, m in scope if isinstance(m, nn.Linear)]
        if len(linears) > 1:  # leave the output layer (the last linear) as it is
            scope = [(n, m) for n, m in scope if n != linears[-1]]
    names: list[str] = []
    for name, module in scope:
        short = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Linear) and short and short not in names:
            names.append(short)
    if not names:
        raise PlanError(
            f"found no linear layer to put LoRA adapters on in {type(model).__name__}",
            "give targets explicitly, e.g. lora(targets=fc1|fc2); layers there: "
            + leaf_modules_summary(model),
        )
    return tuple(names)


def check_targets(model: nn.Module, targets: Sequence[str]) -> None:
    """Raise :class:`PlanError` naming the module names that exist when a target matches none."""
    names = [n for n, _ in model.named_modules() if n]
    missing = [t for t in targets if not any(_matches(n, t) for n in names)]
    if missing:
        raise PlanError(
            f"LoRA target{'s' if len(missing) > 1 else ''} {', '.join(missing)} match no module of "
            f"{type(model).__name__}",
            "name layers that exist, e.g. lora(targets=NAME|NAME); layers there: "
            + leaf_modules_summary(model),
        )


def input_embeddings(model: nn.Module) -> nn.Embedding:
    """The token embedding: ``get_input_embeddings()`` where defined, else the first
    ``nn.Embedding`` of the module."""
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            emb = getter()
        except NotImplementedError:
            emb = None
        if isinstance(emb, nn.Embedding):
            return emb
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return module
    raise PlanError(
        f"{type(model).__name__} has no nn.Embedding to freeze",
        "drop frozen-emb for this model, or freeze layers with freeze-layers(k=N)",
    )


def _tied_elsewhere(model: nn.Module, weight: torch.Tensor) -> list[str]:
    """Names of other parameters sharing ``weight``'s tensor (tied input/output embeddings)."""
    tied = []
    for name, module in model.named_modules(remove_duplicate=False):
        for pname, p in module.named_parameters(recurse=False, remove_duplicate=False):
            if p is weight and not isinstance(module, nn.Embedding):
                tied.append(f"{name}.{pname}" if name else pname)
    return tied


def load_embedding_file(path: str | Path) -> torch.Tensor:
    """One 2-D tensor from a ``.pt``/``.bin``, ``.safetensors`` or ``.npy`` file."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"no embedding file at {path}", "give the path of a .pt, .safetensors or .npy file")
    suffix = path.suffix.lower()
    data: Any
    try:
        if suffix in (".pt", ".pth", ".bin"):
            data = torch.load(path, map_location="cpu", weights_only=True)
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        elif suffix == ".npy":
            import numpy as np

            data = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            raise PlanError(
                f"cannot read embeddings from a '{suffix}' file ({path})",
                "save the matrix as .pt (torch.save), .safetensors or .npy",
            )
    except PlanError:
        raise
    except Exception as exc:
        raise PlanError(
            f"cannot read {path} ({type(exc).__name__}: {exc})",
            "save the matrix with torch.save, safetensors.torch.save_file or numpy.save",
        ) from exc
    if isinstance(data, dict):
        tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
        pick = [k for k in tensors if k == "weight" or k.endswith("embed_tokens.weight")] or (
            list(tensors) if len(tensors) == 1 else []
        )
        if len(pick) != 1:
            raise PlanError(
                f"{path} holds {len(tensors)} tensors ({', '.join(list(tensors)[:8])}); cannot tell "
                "which is the embedding matrix",
                "save the matrix alone, or under the key 'weight'",
            )
        data = tensors[pick[0]]
    if not isinstance(data, torch.Tensor) or data.dim() != 2:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise PlanError(
            f"{path} does not hold a 2-D embedding matrix (found {shape})",
            "save a vocab × hidden tensor",
        )
    return data


def _chain_context(prog: StepProgram, make: Callable[[], AbstractContextManager[Any]]) -> None:
    """Enter ``make()`` inside the program's existing forward context."""
    outer = prog.forward_context

    def both() -> AbstractContextManager[Any]:
        stack = ExitStack()
        stack.enter_context(outer())
        stack.enter_context(make())
        return stack

    prog.forward_context = both


def _checkpoint_forward(forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)
    from torch.utils.checkpoint import checkpoint

    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def checkpoint_blocks(model: nn.Module) -> int:
    """Wrap each repeated block's forward in ``torch.utils.checkpoint`` (non-reentrant);
    parameter names stay as they are. Returns the number of blocks wrapped."""
    path, blocks = find_repeated_blocks(model)
    if not blocks:
        raise PlanError(
            f"grad-ckpt found no repeated blocks (a ModuleList or Sequential of same-class layers) "
            f"in {type(model).__name__}",
            "keep the model's layers in an nn.ModuleList, or drop grad-ckpt for this model",
        )
    for block in blocks:
        if getattr(block, "_vram_advisor_checkpointed", False):
            continue
        block.forward = functools.partial(_checkpoint_forward, block.forward)  # type: ignore[method-assign]
        block._vram_advisor_checkpointed = True  # type: ignore[assignment]
    log.debug("checkpointing %d blocks of %s", len(blocks), path)
    return len(blocks)


# -- 1. fine-tune vs train from scratch ------------------------------------------------------


@register_cut
@dataclass(frozen=True)
class Scratch(Cut):
    name = "scratch"
    title = "random init"
    candidate = False
    summary = "train from random init instead of pretrained weights (same memory; see `convergence`)"
    order = 0

    def configure(self, recipe: Recipe) -> None:
        recipe.pretrained = False
        recipe.notes["start"] = "random-init"


# -- 2. LoRA and QLoRA -------------------------------------------------------------------------


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
    with warnings.catch_warnings():  # peft asks the deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    ctx.recipe.notes["lora_targets"] = list(targets)
    ctx.recipe.notes["lora_r"] = cut.r
    return peft_model  # type: ignore[no-any-return]


def _targets_conv1d(model: nn.Module, targets: Sequence[str]) -> bool:
    """True when the targeted layers are transformers' ``Conv1D`` (weights stored (in, out))."""
    for name, module in model.named_modules():
        if type(module).__name__ == "Conv1D" and any(_matches(name, t) for t in targets):
            return True
    return False


def _check_lora_params(cut: LoRA | QLoRA) -> None:
    if cut.r < 1:
        raise PlanError(f"{cut.name}: r must be ≥ 1, got {cut.r}", f"for example {cut.name}(r=8)")
    if not 0.0 <= cut.dropout < 1.0:
        raise PlanError(
            f"{cut.name}: dropout must be in [0, 1), got {cut.dropout}",
            f"for example {cut.name}(dropout=0.05)",
        )


@register_cut
@dataclass(frozen=True)
class LoRA(Cut):
    """Low-rank adapters through PEFT on a frozen base; ``targets`` empty → automatic."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ()

    name = "lora"
    title = "LoRA"
    trains_subset = True
    summary = "freeze the base, train low-rank adapters (PEFT LoRA: r, alpha, dropout, targets)"
    conflicts = frozenset({"qlora"})
    order = 30

    def __post_init__(self) -> None:
        _check_lora_params(self)

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        return _lora(model, self, ctx)


_COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _quantize_blocks(
    model: nn.Module, bits: int, device: torch.device, compute_dtype: torch.dtype = torch.float32
) -> int:
    """Swap every ``nn.Linear`` in the repeated blocks for a frozen bitsandbytes 4-bit (NF4) or
    8-bit layer holding the same weights. Returns the number of layers swapped."""
    import bitsandbytes as bnb

    _, blocks = find_repeated_blocks(model)
    scope = blocks or [model]
    swapped = 0
    for block in scope:
        for parent in list(block.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not nn.Linear:
                    continue
                has_bias = child.bias is not None
                weight = child.weight.data.detach().to("cpu", torch.float32)
                new: nn.Module
                if bits == 4:
                    new = bnb.nn.Linear4bit(
                        child.in_features, child.out_features, bias=has_bias,
                        compute_dtype=compute_dtype, quant_type="nf4",
                    )  # fmt: skip
                    new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
                else:
                    new = bnb.nn.Linear8bitLt(
                        child.in_features, child.out_features, bias=has_bias, has_fp16_weights=False
                    )
                    new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
                if has_bias:
                    new.bias = nn.Parameter(child.bias.data.detach().to("cpu"), requires_grad=False)
                setattr(parent, child_name, new.to(device))  # moving quantizes the weights
                swapped += 1
    return swapped


@register_cut
@dataclass(frozen=True)
class QLoRA(Cut):
    """LoRA on a base whose block linears are quantized by bitsandbytes (NF4 or int8)."""

    bits: int = 4
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ()
    compute_dtype: str = "float32"  # the 4-bit layers' matmul dtype: float32, bfloat16, float16

    name = "qlora"
    title = "QLoRA"

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        compute = str(settings.get("compute_dtype", ""))
        return "bf16" in compute or "bfloat16" in compute

    trains_subset = True
    needs_bitsandbytes = True
    speed_stand_in = "lora"
    simulation_unsupported = (
        "bitsandbytes quantizes from the real weight values, which a meta/fake model does "
        "not have; measure it, or estimate it"
    )
    summary = "LoRA on a frozen base quantized to 4-bit NF4 or 8-bit (bitsandbytes)"
    conflicts = frozenset({"lora", "bf16-weights"})
    order = 29

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
        _check_lora_params(self)

    def check_available(self) -> None:
        reason = _bitsandbytes_reason()
        if reason is not None:
            raise UnsupportedConfiguration(reason)

    def check_device(self, device: torch.device) -> None:
        if device.type not in ("cpu", "cuda"):
            raise UnsupportedConfiguration(f"bitsandbytes quantization does not run on {device.type}")

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(False)
        swapped = _quantize_blocks(model, self.bits, ctx.device, _COMPUTE_DTYPES[self.compute_dtype])
        if not swapped:
            raise PlanError(
                f"qlora found no nn.Linear layer to quantize in {type(model).__name__}",
                "use lora instead; layers there: " + leaf_modules_summary(model),
            )
        ctx.recipe.notes["quantized_layers"] = swapped
        ctx.recipe.notes["quantized_bits"] = self.bits
        return _lora(model, self, ctx)


# -- 3. warm-start embeddings and layers -------------------------------------------------------

_UNDER_LORA = "LoRA freezes every base weight already"


@register_cut
@dataclass(frozen=True)
class FrozenEmbeddings(Cut):
    """Freeze the token embeddings, after copying a user matrix into them when ``path`` is set."""

    path: str | None = None

    name = "frozen-emb"
    title = "frozen embeddings"
    trains_subset = True
    summary = "freeze the token embeddings (optionally copied from a .pt/.safetensors/.npy first)"
    redundant_with = frozenset({"lora", "qlora"})
    redundancy_reason = _UNDER_LORA
    order = 40

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        emb = input_embeddings(model)
        weight = emb.weight
        if self.path is not None:
            matrix = load_embedding_file(self.path)
            if tuple(matrix.shape) != tuple(weight.shape):
                raise PlanError(
                    f"embedding file {self.path} has shape {tuple(matrix.shape)} but the model's "
                    f"input embeddings are {tuple(weight.shape)} (vocab × hidden)",
                    f"give a {weight.shape[0]} × {weight.shape[1]} matrix, or use a model with "
                    f"vocab {matrix.shape[0]} and hidden size {matrix.shape[1]}",
                )
            if weight.device.type != "meta":
                with torch.no_grad():
                    weight.copy_(matrix.to(weight.dtype))
            ctx.recipe.notes["embedding_file"] = str(self.path)
        weight.requires_grad_(False)
        tied = _tied_elsewhere(model, weight)
        ctx.recipe.notes["frozen_embedding_params"] = weight.numel()
        ctx.recipe.notes["embeddings_tied_to"] = tied
        return model


@register_cut
@dataclass(frozen=True)
class FreezeLayers(Cut):
    """Freeze the first ``k`` repeated blocks (transformer layers)."""

    k: int = 1

    name = "freeze-layers"
    title = "freezing layers"
    trains_subset = True
    summary = "freeze the first k transformer layers (k=1 by default)"
    redundant_with = frozenset({"lora", "qlora"})
    redundancy_reason = _UNDER_LORA
    order = 41

    def __post_init__(self) -> None:
        if self.k < 1:
            raise PlanError(f"freeze-layers: k must be ≥ 1, got {self.k}", "for example freeze-layers(k=2)")

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        path, blocks = find_repeated_blocks(model)
        if not blocks:
            raise PlanError(
                f"freeze-layers found no repeated blocks in {type(model).__name__}",
                "keep the model's layers in an nn.ModuleList, or use frozen-emb",
            )
        if self.k > len(blocks):
            raise PlanError(
                f"freeze-layers(k={self.k}) but {path} has {len(blocks)} layers",
                f"choose k from 1 to {len(blocks)}",
            )
        frozen = 0
        for block in blocks[: self.k]:
            for p in block.parameters():
                if p.requires_grad:
                    frozen += p.numel()
                p.requires_grad_(False)
        ctx.recipe.notes["frozen_layer_params"] = frozen
        return model


# -- 4. gradient checkpointing -----------------------------------------------------------------


@register_cut
@dataclass(frozen=True)
class GradCheckpointing(Cut):
    """Recompute activations in backward: the HF API for HF models, else wrap repeated blocks."""

    name = "grad-ckpt"
    title = "checkpointing"
    summary = "gradient (activation) checkpointing: recompute each layer's activations in backward"
    order = 25

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        if _is_hf(model) and getattr(model, "supports_gradient_checkpointing", False):
            kwargs = {"use_reentrant": False}
            config: Any = getattr(model, "config", None)
            if getattr(config, "use_cache", None):
                config.use_cache = False  # a KV cache is pointless in training
            enable = getattr(model, "activation_checkpointing_enable", None)
            if enable is not None:  # transformers ≥ 5.x: the non-deprecated name
                enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)  # type: ignore[operator]
            ctx.recipe.notes["checkpointing"] = "transformers"
        else:
            ctx.recipe.notes["checkpointed_blocks"] = checkpoint_blocks(model)
            ctx.recipe.notes["checkpointing"] = "torch.utils.checkpoint"
        return model


# -- precision ---------------------------------------------------------------------------------


def _autocast_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why autocast to ``dtype`` cannot run on this machine's ``device``, or ``None``. A device
    that is not here (a CUDA target simulated on a CPU machine) is not checked."""
    if device.type == "meta" or (device.type == "cuda" and not torch.cuda.is_available()):
        return None
    try:
        with torch.autocast(device.type, dtype=dtype):
            pass
    except Exception as exc:
        return f"{dtype} autocast is not supported on {device.type}: {exc}"
    return None


@register_cut
@dataclass(frozen=True)
class Bf16Autocast(Cut):
    name = "bf16"
    title = "bf16 autocast"

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        return True

    summary = "bf16 mixed precision (autocast; fp32 weights and optimizer)"
    group = "precision"
    order = 80

    def check_device(self, device: torch.device) -> None:
        if device.type == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise UnsupportedConfiguration("this GPU has no bf16 support (needs compute capability ≥ 8.0)")
        reason = _autocast_reason(device, torch.bfloat16)
        if reason:
            raise UnsupportedConfiguration(reason)

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        device_type = ctx.device.type
        _chain_context(prog, lambda: torch.autocast(device_type, dtype=torch.bfloat16))
        prog.extra["autocast"] = "bfloat16"
        return prog


@register_cut
@dataclass(frozen=True)
class Fp16Autocast(Cut):
    name = "fp16"
    title = "fp16 autocast"
    summary = "fp16 mixed precision (autocast + GradScaler; fp32 weights and optimizer)"
    group = "precision"
    order = 80

    def check_device(self, device: torch.device) -> None:
        reason = _autocast_reason(device, torch.float16)
        if reason:
            raise UnsupportedConfiguration(reason)

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        device_type = ctx.device.type
        try:
            scaler = torch.amp.GradScaler(device_type)
        except Exception as exc:
            raise UnsupportedConfiguration(f"no GradScaler for {device_type}: {exc}") from exc
        optimizer = prog.optimizer
        _chain_context(prog, lambda: torch.autocast(device_type, dtype=torch.float16))

        def step() -> None:
            scaler.step(optimizer)
            scaler.update()

        prog.scale_loss = scaler.scale
        prog.optimizer_step = step
        prog.extra["autocast"] = "float16"
        return prog


@register_cut
@dataclass(frozen=True)
class Bf16Weights(Cut):
    name = "bf16-weights"
    title = "bf16 weights"

    @classmethod
    def needs_bf16(cls, settings: dict[str, Any]) -> bool:
        return True

    summary = "pure bf16: weights, gradients and optimizer state in bfloat16"
    group = "precision"
    order = 70

    def configure(self, recipe: Recipe) -> None:
        recipe.model_dtype = torch.bfloat16  # built in bf16: never a full fp32 copy in memory

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        return model.to(torch.bfloat16)  # what was added since (LoRA adapters) follows

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        def cast(x: Any) -> Any:
            if isinstance(x, torch.Tensor) and x.is_floating_point():
                return x.to(torch.bfloat16)
            if isinstance(x, dict):
                return {k: cast(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return type(x)(cast(v) for v in x)
            return x

        prog.batch = cast(prog.batch)
        return prog


# -- optimizers --------------------------------------------------------------------------------


@register_cut
@dataclass(frozen=True)
class Sgd(Cut):
    """Plain SGD: no optimizer state when ``momentum`` is 0 (one buffer per parameter else)."""

    momentum: float = 0.0

    name = "sgd"
    title = "SGD"
    summary = "SGD instead of AdamW (momentum 0: no optimizer state)"
    group = "optimizer"

    def configure(self, recipe: Recipe) -> None:
        recipe.optimizer = "sgd"
        recipe.optimizer_kwargs["momentum"] = self.momentum


@register_cut
@dataclass(frozen=True)
class AdafactorCut(Cut):
    name = "adafactor"
    title = "Adafactor"
    summary = "Adafactor instead of AdamW (factored second moment, no first moment)"
    group = "optimizer"

    def configure(self, recipe: Recipe) -> None:
        recipe.optimizer = "adafactor"


@register_cut
@dataclass(frozen=True)
class AdamW8bit(Cut):
    """bitsandbytes' 8-bit AdamW; its default keeps tensors under 4096 elements in 32-bit state."""

    name = "adamw8bit"
    title = "8-bit AdamW"
    needs_bitsandbytes = True
    simulation_unsupported = (
        "bitsandbytes' 8-bit optimizer runs native kernels on raw data pointers, which "
        "fake tensors do not have; measure it, or estimate it"
    )
    summary = "8-bit AdamW (bitsandbytes): about one byte per moment"
    group = "optimizer"

    def check_available(self) -> None:
        reason = _bitsandbytes_reason()
        if reason is not None:
            raise UnsupportedConfiguration(reason)

    def configure(self, recipe: Recipe) -> None:
        recipe.optimizer = "adamw8bit"


# -- batch, attention, offload, compile ---------------------------------------------------------


@register_cut
@dataclass(frozen=True)
class Accumulation(Cut):
    """Micro-batches of ``batch / steps`` with gradient accumulation over ``steps``."""

    steps: int = 4

    name = "accum"
    title = "accumulation"
    candidate = False
    summary = "gradient accumulation: micro-batch = batch / steps (steps=4 by default)"

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise PlanError(f"accum: steps must be ≥ 2, got {self.steps}", "for example accum(steps=4)")

    def configure(self, recipe: Recipe) -> None:
        if recipe.batch_size % self.steps:
            raise PlanError(
                f"accum(steps={self.steps}) needs a batch divisible by {self.steps}, got "
                f"--batch {recipe.batch_size}",
                f"pass a batch that is a multiple of {self.steps}, or accum(steps=N) with N dividing it",
            )
        recipe.micro_batch_size = recipe.batch_size // self.steps
        recipe.notes["micro_batch_size"] = recipe.micro_batch_size


class _Attention(Cut):
    implementation: ClassVar[str] = ""
    group = "attention"
    order = 5

    def configure(self, recipe: Recipe) -> None:
        recipe.attn_implementation = self.implementation

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        config = getattr(model, "config", None)
        if not _is_hf(model) or config is None:
            raise UnsupportedConfiguration(
                f"{self.name} chooses a transformers attention implementation; "
                f"{type(model).__name__} runs its own attention code"
            )
        actual = getattr(config, "_attn_implementation", None)
        if actual != self.implementation:
            raise UnsupportedConfiguration(
                f"{type(model).__name__} runs attention '{actual}', not '{self.implementation}'"
            )
        ctx.recipe.notes["attn_implementation"] = actual
        return model


@register_cut
@dataclass(frozen=True)
class EagerAttention(_Attention):
    name = "eager-attn"
    title = "eager attention"
    summary = "eager (materialized) attention in transformers models"
    implementation = "eager"


@register_cut
@dataclass(frozen=True)
class SdpaAttention(_Attention):
    name = "sdpa-attn"
    title = "SDPA attention"
    summary = "scaled_dot_product_attention (fused kernels) in transformers models"
    implementation = "sdpa"


@register_cut
@dataclass(frozen=True)
class ActivationOffload(Cut):
    """Keep activations saved for backward in pinned host memory (``save_on_cpu``)."""

    name = "offload"
    title = "activation offload"
    simulation_unsupported = (
        "the replay counts host and device storages alike, so offloaded activations "
        "would still be counted; measure it on a CUDA GPU"
    )
    summary = "offload activations saved for backward to host memory (CUDA only)"
    order = 85

    def check_device(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise UnsupportedConfiguration(
                f"activation offload moves saved activations from the GPU to host memory; on "
                f"{device.type} they are in host memory already, so there is nothing to save"
            )

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        from torch.autograd.graph import save_on_cpu

        _chain_context(prog, lambda: save_on_cpu(pin_memory=True))
        prog.extra["activation_offload"] = True
        return prog


@register_cut
@dataclass(frozen=True)
class Compile(Cut):
    """``torch.compile`` on the model (opt-in: compiling is slow, above all on CPU)."""

    backend: str = "inductor"

    name = "compile"
    title = "torch.compile"
    candidate = False
    simulation_unsupported = (
        "torch.compile fuses and reorders ops, so the eager replay would not be what runs; "
        "simulate without compile (an upper bound) or measure it"
    )
    summary = "torch.compile the model (opt-in; compiling is slow on CPU)"
    order = 90
    opt_in = True

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        prog.model = torch.compile(prog.model, backend=self.backend)  # type: ignore[assignment]
        prog.extra["compiled_backend"] = self.backend
        return prog


# -- parsing -----------------------------------------------------------------------------------

CUT_SYNTAX_HINT = (
    "write cuts as name or name(key=value,key=value), lists with '|', e.g. "
    "lora(r=16,targets=q_proj|v_proj),grad-ckpt"
)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise PlanError(f"unbalanced ')' in '{text}'", CUT_SYNTAX_HINT)
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PlanError(f"unbalanced '(' in '{text}'", CUT_SYNTAX_HINT)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _convert(cls: type[Cut], field: dataclasses.Field[Any], raw: str) -> Any:
    default = field.default
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            if raw.lower() in ("", "auto"):
                return ()
            return tuple(x.strip() for x in raw.split("|") if x.strip())
    except ValueError:
        kind = type(default).__name__
        raise PlanError(
            f"{cls.name}: {field.name}={raw} is not a valid {kind}",
            f"for example {cls.name}({field.name}={default})",
        ) from None
    if default is None and raw.lower() in ("", "none"):
        return None
    return raw


_ALIASES = {"lora_alpha": "alpha", "target_modules": "targets", "lora_dropout": "dropout"}


def parse_cut(text: str) -> Cut:
    """One cut from ``name`` or ``name(key=value,…)``; :class:`PlanError` for unknown names or
    bad parameters, with the allowed ones."""
    text = text.strip()
    if not text:
        raise PlanError("empty cut name", CUT_SYNTAX_HINT)
    name, paren, rest = text.partition("(")
    name = name.strip().lower()
    cls = CUTS.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(CUTS), n=3, cutoff=0.5)
        did_you_mean = f"did you mean {', '.join(close)}? " if close else ""
        raise PlanError(f"unknown cut '{name}'", did_you_mean + f"cuts: {', '.join(CUTS)}")
    kwargs: dict[str, Any] = {}
    if paren:
        if not rest.endswith(")"):
            raise PlanError(f"'{text}' does not end with ')'", CUT_SYNTAX_HINT)
        fields: dict[str, dataclasses.Field[Any]] = (
            {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        )
        inner = rest[:-1].strip()
        for item in _split_top(inner, ",") if inner else []:
            key, eq, value = item.partition("=")
            key = _ALIASES.get(key.strip(), key.strip())
            if not eq or key not in fields:
                allowed = ", ".join(fields) or "none"
                raise PlanError(
                    f"{name}: '{item}' is not a parameter of this cut", f"parameters of {name}: {allowed}"
                )
            kwargs[key] = _convert(cls, fields[key], value)
    return cls(**kwargs)


def parse_cuts(text: str | Iterable[str]) -> list[Cut]:
    """Cuts from ``"lora(r=16),grad-ckpt"`` (or a list of such strings)."""
    items = _split_top(text, ",") if isinstance(text, str) else list(text)
    return [parse_cut(item) for item in items if item.strip()]


def parse_plan(text: str) -> Plan:
    """One plan from ``"lora+grad-ckpt"``; ``baseline`` (or empty) is the baseline."""
    text = text.strip()
    if text.lower() in ("", BASELINE):
        return Plan()
    return Plan.of(parse_cut(part) for part in _split_top(text, "+") if part.strip())


def parse_plans(text: str | Iterable[str]) -> list[Plan]:
    """Plans from ``"lora+grad-ckpt;sgd;baseline"`` (or a list of plan strings)."""
    items = _split_top(text, ";") if isinstance(text, str) else list(text)
    return [parse_plan(item) for item in items if item.strip()]


def default_cuts() -> list[Cut]:
    """Every registered cut at its default parameters, opt-in cuts (compile) left out."""
    return [cls() for cls in CUTS.values() if not cls.opt_in]


def describe_cuts() -> list[tuple[str, str, str]]:
    """(name, parameters with defaults, summary) for every registered cut."""
    rows = []
    for cls in CUTS.values():
        fields: tuple[dataclasses.Field[Any], ...] = (
            dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
        )
        params = ", ".join(f"{f.name}={'auto' if f.default == () else f.default}" for f in fields)
        summary = cls.summary + (" [opt-in]" if cls.opt_in else "")
        rows.append((cls.name, params, summary))
    return rows


# -- plan enumeration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunedPlan:
    """A plan left out of a sweep, and why."""

    plan: str
    reason: str
    kind: str  # "conflict", "redundant" or "duplicate"


@dataclass(frozen=True)
class PlanSpace:
    """The plans a sweep will run, baseline first, and the ones pruned with their reasons."""

    plans: tuple[Plan, ...]
    pruned: tuple[PrunedPlan, ...] = ()

    def __iter__(self) -> Iterator[Plan]:
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)


def _prune(candidates: Iterable[Plan], baseline: bool) -> PlanSpace:
    plans: list[Plan] = [Plan()] if baseline else []
    seen = {p.name for p in plans}
    pruned: list[PrunedPlan] = []
    for plan in candidates:
        plan = Plan.of(plan.cuts)  # canonical order: the same set always has the same name
        if plan.name in seen:
            continue
        conflict = plan.conflict()
        if conflict is not None:
            pruned.append(PrunedPlan(plan.name, conflict, "conflict"))
            seen.add(plan.name)
            continue
        redundant = plan.redundancy()
        if redundant is not None:
            pruned.append(PrunedPlan(plan.name, redundant, "redundant"))
            seen.add(plan.name)
            continue
        plans.append(plan)
        seen.add(plan.name)
    return PlanSpace(tuple(plans), tuple(pruned))


def combinations(cuts: Sequence[Cut], max_size: int = 1, *, baseline: bool = True) -> PlanSpace:
    """Every compatible combination of ``cuts`` of 1 to ``max_size`` cuts (plus the baseline);
    combinations with conflicting or redundant cuts are pruned with the reason."""
    if max_size < 1:
        raise PlanError(f"max combination size must be ≥ 1, got {max_size}", "pass --max-combo 1 or more")

    def candidates() -> Iterator[Plan]:
        for size in range(1, min(max_size, len(cuts)) + 1):
            for combo in itertools.combinations(cuts, size):
                yield Plan.of(combo)

    return _prune(candidates(), baseline)


def singles(cuts: Sequence[Cut], *, baseline: bool = True) -> PlanSpace:
    """The baseline and each cut on its own."""
    return combinations(cuts, 1, baseline=baseline)


def user_plans(plans: str | Iterable[Plan | str], *, baseline: bool = True) -> PlanSpace:
    """A user's list of plans (``Plan`` objects or strings, or one ``"lora+sgd;bf16"`` text),
    baseline first unless told not to."""
    if isinstance(plans, str):  # not an iterable of one-letter plans
        plans = parse_plans(plans)
    parsed = [parse_plan(p) if isinstance(p, str) else p for p in plans]
    return _prune(parsed, baseline)
