"""Helpers shared by the cuts: the model's repeated blocks, LoRA targets, token embeddings, an
embedding file, checkpointing blocks, chaining forward contexts."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advisor.core.errors import PlanError
from profilers.trial import StepProgram

__all__ = [
    "bitsandbytes_reason",
    "chain_context",
    "check_targets",
    "checkpoint_blocks",
    "default_lora_targets",
    "find_repeated_blocks",
    "input_embeddings",
    "is_hf",
    "leaf_modules_summary",
    "load_embedding_file",
    "matches_target",
    "tied_elsewhere",
]

log = logging.getLogger(__name__)


def is_hf(model: nn.Module) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(model, PreTrainedModel)


def bitsandbytes_reason() -> str | None:
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


def matches_target(name: str, target: str) -> bool:
    """Whether module ``name`` is what ``target`` names (itself, or its last components)."""
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
    missing = [t for t in targets if not any(matches_target(n, t) for n in names)]
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


def tied_elsewhere(model: nn.Module, weight: torch.Tensor) -> list[str]:
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


_CONTEXTS = {"forward": "forward_context", "step": "step_context"}


def chain_context(
    prog: StepProgram,
    make: Callable[[], AbstractContextManager[Any]],
    *,
    outside: bool = False,
    around: str = "forward",
) -> None:
    """Enter ``make()`` inside the program's existing context (around it: ``outside``): the one
    around each forward, or with ``around="step"`` the one around each micro-batch's forward
    and backward (:attr:`StepProgram.step_context`)."""
    name = _CONTEXTS[around]
    outer = getattr(prog, name)

    def both() -> AbstractContextManager[Any]:
        stack = ExitStack()
        for enter in (make, outer) if outside else (outer, make):
            stack.enter_context(enter())
        return stack

    setattr(prog, name, both)


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

