"""Why a compiled plan's measured peak is its eager step's: under the exact tracker (a
``TorchDispatchMode``) torch.compile runs its eager fallback, on the installed torch."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from profilers.records import Provenance
from profilers.tracker import TensorMemoryTracker


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.add(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.slow
def test_compiled_step_runs_eager_under_a_dispatch_mode() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 16))
    x = torch.randn(8, 16, requires_grad=True)
    compiled = torch.compile(model, backend="inductor")
    compiled(x).sum().backward()  # compiled outside any mode (inductor's C++ kernels)
    seen = _Ops()
    with seen:
        compiled(x).sum().backward()
    assert "aten.gelu.default" in seen.ops  # the eager op, not the fused kernel
    peaks = []
    for fn in (model, compiled):
        tracker = TensorMemoryTracker("cpu")
        try:
            with tracker:
                fn(x).sum().backward()
            peaks.append(tracker.result(Provenance.MEASURED).peak_bytes)
        finally:
            tracker.close()
    assert peaks[0] == peaks[1]
