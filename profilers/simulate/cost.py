"""FLOPs and bytes moved of a step, counted op by op while it runs (on fake tensors or real).

FLOPs by dtype use ``torch.utils.flop_counter``'s formulas; bytes are what each op reads and
writes. The record is :class:`~profilers.records.StepCost`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from profilers.records import StepCost
from profilers.tracker import flat_tensors

__all__ = ["StepCost", "StepCostCounter"]

def _flop_formulas() -> dict[Any, Callable[..., int]]:
    """``torch.utils.flop_counter``'s formulas, plus the CPU flash-attention kernels it lacks."""
    from torch.utils import flop_counter as fc

    formulas: dict[Any, Callable[..., int]] = dict(fc.flop_registry)
    aten = torch.ops.aten

    def cpu_flash(query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
        return int(fc.sdpa_flop_count(query.shape, key.shape, value.shape))

    def cpu_flash_backward(
        grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kw: Any
    ) -> int:
        return int(fc.sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape))

    for name, fn in (
        ("_scaled_dot_product_flash_attention_for_cpu", cpu_flash),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", cpu_flash_backward),
    ):
        packet = getattr(aten, name, None)
        if packet is not None and packet not in formulas:
            formulas[packet] = fn
    return formulas


_ATTENTION_OPS = (
    "scaled_dot_product",
    "flash_attention",
    "efficient_attention",
    "cudnn_attention",
)
# ops that move no data: aliases and reshapes without a copy, and allocations without a fill
_NO_TRAFFIC = {
    "detach", "alias", "lift_fresh", "_unsafe_view", "_reshape_alias", "empty", "empty_strided",
    "empty_like", "new_empty", "new_empty_strided", "set_", "resize_",
}  # fmt: skip


def _nbytes(t: torch.Tensor) -> int:
    """Bytes an op touches in ``t``: its elements, but no more than its storage (broadcasts)."""
    logical = int(t.numel()) * t.element_size()
    try:
        return min(logical, int(t.untyped_storage().nbytes()))
    except (RuntimeError, NotImplementedError):
        return logical


class StepCostCounter(TorchDispatchMode):
    """Counts FLOPs (by input dtype) and bytes moved of every aten op while active.

    Unlike ``FlopCounterMode`` it never decomposes an op, so stacked with the memory tracker it
    leaves the op sequence — and so the measured peak — exactly as it is.
    """

    def __init__(self) -> None:
        super().__init__()
        self._formulas = _flop_formulas()
        self.flops: dict[str, int] = defaultdict(int)
        self.flop_op_bytes = 0
        self.other_op_bytes = 0
        self.ops = 0
        self.attention_ops: dict[str, int] = defaultdict(int)
        self.max_query = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func._overloadpacket.__name__
        if getattr(func, "is_view", False) or name in _NO_TRAFFIC:
            return out
        outputs = flat_tensors(out)
        if not outputs and not func._schema.is_mutable:  # a query: device, size, a scalar read
            return out
        self.ops += 1
        seen: set[int] = set()
        nbytes = 0
        for t in (*flat_tensors(args), *flat_tensors(kwargs), *outputs):
            if id(t) not in seen:
                seen.add(id(t))
                nbytes += _nbytes(t)
        formula = self._formulas.get(func._overloadpacket)
        if formula is None:
            self.other_op_bytes += nbytes
            return out
        flops = int(formula(*args, **kwargs, out_val=out))
        first = next(iter(flat_tensors(args)), None)
        dtype = str(first.dtype).removeprefix("torch.") if first is not None else "unknown"
        self.flops[dtype] += flops
        self.flop_op_bytes += nbytes
        if any(key in name for key in _ATTENTION_OPS):
            self.attention_ops[name] += 1
            if first is not None and "backward" not in name:
                self.max_query = max(self.max_query, int(first.numel()))
        return out

    def cost(self) -> StepCost:
        return StepCost(
            flops_by_dtype=dict(self.flops),
            flop_op_bytes=self.flop_op_bytes,
            other_op_bytes=self.other_op_bytes,
            ops=self.ops,
            attention_ops=dict(self.attention_ops),
            max_attention_query_elements=self.max_query,
        )
