"""2:4 semi-structured sparsity (``torch.sparse.to_sparse_semi_structured``), simulated by its
stored layout.

Every ``Linear`` but the LM head becomes a frozen 2:4 weight: the kept half of the values plus
the metadata, as torch 2.13 lays out ``SparseSemiStructuredTensorCUTLASS`` (see
:mod:`profilers.sparse24`). The kernels need CUDA (``to_sparse_semi_structured`` refuses any other
device), so on the CPU the cut is ``unsupported`` and only the simulation — for a CUDA target —
has a figure, marked as the stored layout of the 2:4 weights (their matmul speed not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advisor.plans.code import TrainingCode
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut
from profilers.sparse24 import TORCH_VERSION_FOLLOWED, SemiStructuredLinear, semi_structured_layout
from profilers.trial import UnsupportedConfiguration

__all__ = ["Sparse24"]

NEEDS_CUDA = "needs CUDA (to_sparse_semi_structured)"


@register_cut
@dataclass(frozen=True)
class Sparse24(Cut):
    """2:4 semi-structured sparsity: half the values of each projection kept, plus metadata."""

    name = "sparse24"
    summary = (
        "2:4 semi-structured sparsity (to_sparse_semi_structured): projections stored as half their "
        "values + metadata, frozen; CUDA only, simulated by the stored layout"
    )
    title = "2:4 sparsity"
    order = 7  # after pruning's shapes would be settled, before LoRA/precision see the weights
    opt_in = True
    candidate = False
    trains_subset = True  # the 2:4 weights are frozen
    # PEFT wraps nn.Linear only, not the stand-in; LoRA over 2:4 bases is not modelled yet
    conflicts = frozenset({"lora", "qlora"})
    checked_on_target = True  # the target GPU runs the kernels; the replay only lays them out

    def check_device(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise UnsupportedConfiguration(f"2:4 semi-structured sparsity {NEEDS_CUDA}; {device.type} has no kernels")

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        get_head: Any = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        swapped = 0
        values = meta = 0
        for parent in list(model.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not nn.Linear or child is head:
                    continue
                w = child.weight
                try:
                    semi_structured_layout(w.shape[0], w.shape[1], w.dtype)
                except ValueError:
                    continue  # left dense, as to_sparse_semi_structured would refuse it
                if w.device.type == "cuda" and not _is_fake(w):  # a real GPU: the real layout
                    from torch.sparse import to_sparse_semi_structured

                    child.weight = nn.Parameter(to_sparse_semi_structured(w.detach()), requires_grad=False)
                    new: nn.Module = child
                else:
                    new = SemiStructuredLinear(child)
                    buffers = dict(new.named_buffers())
                    values += buffers["packed"].nelement() * buffers["packed"].element_size()
                    meta += buffers["meta"].nelement() * buffers["meta"].element_size()
                setattr(parent, child_name, new)
                swapped += 1
        if not swapped:
            raise UnsupportedConfiguration(
                f"no Linear of {type(model).__name__} fits 2:4 tiles (rows ÷ 32, columns ÷ 16 or 8)"
            )
        ctx.recipe.notes.update(
            {
                "sparse24_linears": swapped,
                "sparse24_values_bytes": values,
                "sparse24_meta_bytes": meta,
                "sparse24_layout": f"torch {TORCH_VERSION_FOLLOWED} SparseSemiStructuredTensorCUTLASS layout (simulated)",
            }
        )
        return model

    def add_code(self, code: TrainingCode) -> None:
        code.after_arguments += [
            "# 2:4 semi-structured sparsity (CUDA, compute capability >= 8.0): prune each weight 2:4, then",
            "from torch.sparse import to_sparse_semi_structured",
            "for m in model.modules():",
            "    if isinstance(m, torch.nn.Linear) and m is not model.get_output_embeddings():",
            "        m.weight = torch.nn.Parameter(to_sparse_semi_structured(m.weight.detach()), requires_grad=False)",
        ]


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import is_fake

    return bool(is_fake(t))
