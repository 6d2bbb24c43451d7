"""2:4 semi-structured sparsity: the stored layout against torch 2.13's own conversion (which
builds the real ``SparseSemiStructuredTensorCUTLASS`` on this CPU), the simulated model's bytes
against that layout, and ``unsupported`` when measured on the CPU."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from profilers.sparse24 import semi_structured_layout


def _real_cutlass(m: int, k: int, dtype: torch.dtype) -> Any:
    """The real CUTLASS-layout tensor of a 2:4-pruned ``m × k`` weight, built on the CPU from
    torch's conversion (``to_sparse_semi_structured`` itself refuses non-CUDA tensors)."""
    from torch.sparse import SparseSemiStructuredTensorCUTLASS
    from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass

    dense = torch.ones(m, k // 4, 4).to(dtype)
    dense[..., 1:3] = 0  # two kept of every four
    packed, meta = sparse_semi_structured_from_dense_cutlass(dense.reshape(m, k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "prototype stage"
        return SparseSemiStructuredTensorCUTLASS(
            torch.Size((m, k)), packed=packed, meta=meta, packed_t=None, meta_t=None, compressed_swizzled_bitmask=None, requires_grad=False
        )


@pytest.mark.parametrize(
    ("m", "k", "dtype"),
    [(64, 128, torch.float16), (32, 64, torch.bfloat16), (96, 32, torch.float32), (32, 128, torch.int8), (128, 256, torch.bfloat16)],
)
def test_layout_equals_the_real_cutlass_tensor(m: int, k: int, dtype: torch.dtype) -> None:
    real = _real_cutlass(m, k, dtype)
    packed_shape, meta_shape, meta_dtype = semi_structured_layout(m, k, dtype)
    assert real.packed is not None and real.meta is not None
    assert (tuple(real.packed.shape), real.packed.dtype) == (packed_shape, dtype)
    assert (tuple(real.meta.shape), real.meta.dtype) == (meta_shape, meta_dtype)
    # values are half the dense bytes; metadata is 2 bits per kept element (4 per fp32 pair)
    assert real.packed.nbytes == m * k * dtype.itemsize // 2
    assert real.meta.nbytes == (m * k // 4 if dtype == torch.float32 else m * k // 8)


def test_layout_refuses_what_torch_refuses() -> None:
    with pytest.raises(ValueError, match="2:4 tiles"):
        semi_structured_layout(48, 64, torch.float16)  # rows not a multiple of 32
    with pytest.raises(ValueError, match="float16"):
        semi_structured_layout(32, 64, torch.float64)


def test_to_sparse_semi_structured_needs_cuda_here() -> None:
    from torch.sparse import to_sparse_semi_structured

    with pytest.raises(RuntimeError, match="Only CUDA"):
        to_sparse_semi_structured(torch.zeros(64, 128, dtype=torch.float16))


def _fits(linear: nn.Linear) -> bool:
    """Whether torch's own conversion takes this weight's shape."""
    from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass

    try:
        sparse_semi_structured_from_dense_cutlass(torch.zeros_like(linear.weight))
    except RuntimeError:
        return False
    return True


def test_simulated_tiny_llama_stores_the_2_4_layout_and_measuring_on_cpu_is_unsupported() -> None:
    from advisor.engines.simulate import simulate
    from advisor.models import resolve_model
    from advisor.plans import parse_plan, program_builder
    from profilers.records import Provenance, TrialStatus
    from profilers.trial import TrialSpec, run_trial

    source = resolve_model("tiny-llama")
    model: Any = source.build("cpu", pretrained=False)
    head = model.get_output_embeddings()
    fitting = [m for m in model.modules() if type(m) is nn.Linear and m is not head and _fits(m)]
    dense_bytes = sum(m.weight.nbytes for m in fitting)
    assert fitting and dense_bytes > 0

    base = simulate(source, "baseline", 2, 64, target="cuda", count_cost=False)
    sparse = simulate(source, "sparse24", 2, 64, target="cuda", count_cost=False)
    assert sparse.status is TrialStatus.OK, sparse.reason
    assert sparse.tensor_peak and base.tensor_peak and sparse.params and base.params
    assert sparse.tensor_peak.provenance is Provenance.SIMULATED
    assert sparse.extra["sparse24_linears"] == len(fitting)
    assert sparse.extra["sparse24_values_bytes"] == dense_bytes // 2  # fp32: half the values
    assert sparse.extra["sparse24_meta_bytes"] == dense_bytes // 16  # m·k/4 bytes of m·k·4
    assert "SparseSemiStructuredTensorCUTLASS" in sparse.extra["sparse24_layout"]
    # the 2:4 weights are frozen buffers: no longer parameters, no gradients or AdamW state
    assert base.params.parameter_bytes - sparse.params.parameter_bytes == dense_bytes
    assert sparse.tensor_peak.peak_bytes < base.tensor_peak.peak_bytes

    plan = parse_plan("sparse24")
    spec = TrialSpec("tiny-llama", plan.name, plan.cut_names, 2, 64, "cpu", warmup_steps=1, timed_steps=0)
    measured = run_trial(spec, program_builder(plan, source, 2, 64))
    assert measured.status is TrialStatus.UNSUPPORTED
    assert "needs CUDA (to_sparse_semi_structured)" in (measured.reason or "")
