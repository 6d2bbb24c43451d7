"""2:4 semi-structured sparsity by its stored layout, for the fake-tensor replay.

``torch.sparse.to_sparse_semi_structured`` runs on CUDA only (its ``_validate_device_dim_dtype_shape``
refuses any other device). What it stores is known from torch 2.13's
``torch/sparse/semi_structured.py`` and ``_semi_structured_conversions.py``: the CUTLASS layout
(``SparseSemiStructuredTensorCUTLASS``, used when cuSPARSELt is missing or ``_FORCE_CUTLASS`` is
set) keeps

* ``packed``: the kept values, ``m × k/2`` in the weight's dtype;
* ``meta``: the positions, ``m × k / (ksparse · quadbits)`` of ``int16`` (``int32`` for an
  ``int8`` weight), with ``quadbits = 2 × meta itemsize`` and ``ksparse = 4`` (``2`` for float32).

That is the figure here, for both backends: cuSPARSELt packs values and metadata into one buffer
whose size ``cusparseLtSpMMACompressedSize`` decides at run time (the same ``m·k/2`` values; its
metadata size is not computable without the library).

:class:`SemiStructuredLinear` stands in for a ``Linear`` whose weight is such a tensor, frozen (a
semi-structured weight is not trained in place): it holds the two buffers and its matmul
allocates the output in forward and the input gradient in backward, saving nothing. It runs on
fake tensors only: its values are not computed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["SemiStructuredLinear", "semi_structured_layout"]

TORCH_VERSION_FOLLOWED = "2.13.0"


def semi_structured_layout(m: int, k: int, dtype: torch.dtype) -> tuple[tuple[int, int], tuple[int, int], torch.dtype]:
    """(``packed`` shape, ``meta`` shape, ``meta`` dtype) of an ``m × k`` weight, as
    ``sparse_semi_structured_from_dense_cutlass`` lays it out; raises ``ValueError`` where it
    refuses the shape or dtype."""
    if dtype == torch.int8:
        meta_dtype = torch.int32
    elif dtype in (torch.float16, torch.bfloat16, torch.float32):
        meta_dtype = torch.int16
    else:
        raise ValueError(f"2:4 sparsity takes float16/bfloat16/float32/int8 weights, not {dtype}")
    quadbits = meta_dtype.itemsize * 8 // 4
    rows = 16 if meta_dtype == torch.int32 else 32
    if m % rows or k % (4 * quadbits):
        raise ValueError(f"a {m} × {k} weight does not fit 2:4 tiles (rows ÷ {rows}, columns ÷ {4 * quadbits})")
    ksparse = 2 if dtype == torch.float32 else 4
    return (m, k // 2), (m, k // (ksparse * quadbits)), meta_dtype


class _SparseMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, packed: torch.Tensor, out_features: int) -> torch.Tensor:  # type: ignore[override]
        ctx.in_shape = x.shape
        return x.new_empty((*x.shape[:-1], out_features))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        return grad.new_empty(ctx.in_shape), None, None


class SemiStructuredLinear(nn.Module):
    """A frozen 2:4 ``Linear``: ``packed`` + ``meta`` buffers (the stored layout), the bias kept."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        m, k = linear.weight.shape
        packed_shape, meta_shape, meta_dtype = semi_structured_layout(m, k, linear.weight.dtype)
        dev = linear.weight.device
        self.in_features, self.out_features = k, m
        self.register_buffer("packed", torch.empty(packed_shape, dtype=linear.weight.dtype, device=dev))
        self.register_buffer("meta", torch.empty(meta_shape, dtype=meta_dtype, device=dev))
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _SparseMM.apply(x, self.packed, self.out_features)
        return out if self.bias is None else out + self.bias
