"""What an older torch's autograd kept for backward, emulated on the installed torch.

A training step's activation memory is what autograd saves for backward, and that changed
between torch versions. Comparing the saved fields of every backward node in the generated
``torch/include/torch/csrc/autograd/generated/Functions.h`` of the torch 1.10.2, 1.11.0 and
1.12.1 wheels against torch 2.13.0's shows where an older torch kept more
(:data:`OLDER_SAVES`). The ones a transformer's training step runs into are softmax and
log-softmax: up to torch 1.10, ``_softmax`` and ``_log_softmax`` kept their *input* as well as
their output (``SoftmaxBackward0::self_``; derivatives.yaml passed ``self`` to
``_softmax_backward_data``), so eager attention kept one more ``batch × heads × seq²`` tensor per
layer and the loss kept the logits. torch 1.11 keeps only the input's dtype
(``self_scalar_type``: pytorch/pytorch#65242).

:func:`older_autograd_saves` registers Python kernels on the ``AutogradCPU`` and
``AutogradCUDA`` keys of those ops for the duration of a step: each runs the op as torch does
and records it with a node that saves the input beside the output, through
``ctx.save_for_backward`` — so saved-tensor hooks (activation checkpointing, offload) see both,
and both are released when the node has run, as the C++ node released them. Works for measured
runs and for fake-tensor replays alike.

Not modelled (rarely in a transformer's step): the other rows of :data:`OLDER_SAVES`. A known
difference on a fake-CPU replay for a CUDA target: an fp16 (not bf16) input that autocast runs
through softmax in float32 is kept as its float32 copy, where CUDA's ``half_to_float`` kernel
kept the fp16 tensor itself.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from profilers.kernel_overrides import KernelOverrides

__all__ = ["OLDER_SAVES", "SOFTMAX_KEEPS_INPUT_UNTIL", "older_autograd_saves", "parse_torch_version"]

log = logging.getLogger(__name__)

# backward node → (the last torch version that saved more, what it saved beyond torch 2.13):
# the diff of the generated Functions.h of the torch 1.10.2 / 1.12.1 wheels against 2.13.0's
OLDER_SAVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "SoftmaxBackward0": ("1.10", ("self",)),
    "LogSoftmaxBackward0": ("1.10", ("self",)),
    "SoftplusBackward0": ("1.10", ("result",)),
    "MaxUnpool2DBackward0": ("1.10", ("self",)),
    "MaxUnpool3DBackward0": ("1.10", ("self",)),
    "SlowConv2DBackward0": ("1.10", ("finput",)),
    "SlowConv3DBackward0": ("1.10", ("finput", "fgrad_input")),
    "LinalgEigBackward0": ("1.10", ("self",)),
    "LinalgEighBackward0": ("1.10", ("self",)),
    "LinalgQrBackward0": ("1.10", ("self",)),
    "SparseAddmmBackward0": ("1.10", ("sparse", "dense")),
    "StackBackward0": ("1.12", ("tensors",)),
    "VarMeanBackward0": ("1.12", ("result0", "result1")),
    "StdMeanBackward0": ("1.12", ("result1",)),
    "ThresholdBackward1": ("1.12", ("result",)),
    "LinalgSlogdetBackward0": ("1.12", ("self", "logabsdet")),
    "LuUnpackBackward0": ("1.12", ("LU_data",)),
}
SOFTMAX_KEEPS_INPUT_UNTIL = (1, 10)  # the last torch whose softmax/log-softmax saved their input
_KEYS = ("AutogradCPU", "AutogradCUDA")


def parse_torch_version(text: str) -> tuple[int, int]:
    """``"1.10"`` / ``"1.10.2"`` / ``"2.1.0+cu121"`` → ``(major, minor)``; ValueError otherwise."""
    parts = str(text).strip().split("+")[0].split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"not a torch version: {text!r} (expected e.g. 1.10 or 1.10.2)")
    return int(parts[0]), int(parts[1])


class _KeepInput(torch.autograd.Function):
    """``_softmax`` / ``_log_softmax`` with torch ≤ 1.10's saved tensors: input and output."""

    @staticmethod
    def forward(ctx: Any, op: Any, backward: Any, x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
        with torch._C._AutoDispatchBelowAutograd():
            out = op(x, dim, half_to_float)
        ctx.backward, ctx.dim = backward, dim
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, out = ctx.saved_tensors
        return None, None, ctx.backward(grad, out, ctx.dim, x.dtype), None, None


def _kernel(op: Any, backward: Any) -> Any:
    def kernel(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _KeepInput.apply(op, backward, x, dim, half_to_float)
        with torch._C._AutoDispatchBelowAutograd():
            return op(x, dim, half_to_float)

    return kernel


def _register() -> torch.library.Library:
    aten = torch.ops.aten
    lib = torch.library.Library("aten", "IMPL")  # kernels for existing keys
    pairs = ((aten._softmax.default, aten._softmax_backward_data.default, "_softmax"),
             (aten._log_softmax.default, aten._log_softmax_backward_data.default, "_log_softmax"))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
        for op, backward, name in pairs:
            for key in _KEYS:
                lib.impl(name, _kernel(op, backward), key)
    return lib


_OVERRIDES = KernelOverrides(_register)


@contextlib.contextmanager
def older_autograd_saves(version: str) -> Iterator[tuple[str, ...]]:
    """While inside, autograd saves what torch ``version`` saved (see the module docstring);
    yields the backward nodes changed (none for torch ≥ 1.11). Nested uses share one
    registration; leaving the outermost restores torch's own kernels."""
    if parse_torch_version(version) > SOFTMAX_KEEPS_INPUT_UNTIL:
        yield ()
        return
    with _OVERRIDES.active():
        yield ("SoftmaxBackward0", "LogSoftmaxBackward0")
