"""Simulation: the real training step replayed on fake tensors, for any model on any target.

A model built on the ``meta`` device has shapes but no storage, so any size fits in a laptop's
memory. :func:`fakeify_module` replaces its parameters and buffers with ``FakeTensor``\\ s on a
*fake device* (tied weights stay tied), and :func:`simulate_trial` runs the very same
:func:`~profilers.trial.train_step` as a measured trial under ``FakeTensorMode``: every aten op
runs its meta kernel, producing outputs with the right shapes, dtypes and lifetimes but no data
and no compute. The :class:`~profilers.tracker.TensorMemoryTracker` counts those storages
exactly as it counts real ones, so the tensor peak and its breakdown come out exact (the tests
check them against measured CPU peaks).

Alongside the peak, the tracked step records (in ``TrialResult.extra["simulation"]``):

* the peak of each phase (forward, backward, optimizer, zero_grad), for growth fits;
* the step's cost: FLOPs by dtype (``torch.utils.flop_counter``'s formulas) and the bytes each
  op reads and writes, for an estimated step time on a target GPU;
* the step's allocations replayed through a model of PyTorch's CUDA caching allocator
  (:func:`replay_caching_allocator`), the simulated ``max_memory_allocated`` and
  ``max_memory_reserved`` on a CUDA target.

What keeps the replay on the path a real run takes:

* values read back to Python (``.item()``: transformers' "is there padding?", an optimizer's
  step count, a GradScaler's inf check) are answered from real copies of the small tensors
  whose values are known (:class:`ShadowValues`), else 0 / ``False`` (counted);
* the warm-up creates what a steady-state step finds resident (optimizer state, scaler) with one
  optimizer step on zero gradients, without a forward and backward (:func:`light_warmup`).

The fake device: on a CPU-only torch build a fake ``cuda`` device aborts the process once
autograd runs, so the replay uses a fake ``cpu`` device there; where torch is built with CUDA, a
fake ``cuda`` device is used when a probe in a child process shows it works
(:func:`fake_device_type`). The *target* is separate: targeting CUDA, the optimizer runs the
``foreach`` implementation torch picks by default on CUDA (its temporaries are a whole tensor
list, not one tensor; :func:`use_cuda_optimizer_defaults`), and from a fake CPU device,
attention with dropout runs a fused kernel as on CUDA (:func:`cuda_attention_choice`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import logging
import os
import subprocess
import sys
import time
import traceback
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    FakeTensor,
    FakeTensorMode,
    unset_fake_temporarily,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from profilers.records import (
    BackendStatus,
    ParamCounts,
    Provenance,
    TensorPeak,
    TrialResult,
    TrialStatus,
)
from profilers.tracker import Role, TensorMemoryTracker
from profilers.trial import (
    Progress,
    StepProgram,
    TrialSpec,
    classify_failure,
    count_parameters,
    train_step,
)

log = logging.getLogger(__name__)

__all__ = [
    "AllocatorPeak",
    "CachingAllocatorModel",
    "FakeBuild",
    "FakeWorld",
    "PhaseTracker",
    "ShadowValues",
    "StepCost",
    "StepCostCounter",
    "cuda_attention_choice",
    "fake_batch",
    "fake_device_type",
    "fakeify_module",
    "light_warmup",
    "new_fake_mode",
    "replay_caching_allocator",
    "simulate_trial",
    "use_cuda_optimizer_defaults",
]

# a builder gets the fake world (mode, device, known values) and returns the program built in it
FakeBuild = Callable[["FakeWorld"], StepProgram]

FAKE_DEVICE_ENV = "VRAM_ADVISOR_FAKE_DEVICE"  # "cpu" or "cuda" overrides the runtime probe
TARGETS = ("cpu", "cuda")


def _flat_tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in an op's arguments or outputs (tuples, lists, dicts of them): a fast
    :func:`~profilers.tracker.tensors_in` for what aten ops take and return."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    out: list[torch.Tensor] = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            out.append(x)
        elif isinstance(x, (tuple, list)):
            stack.extend(reversed(x))
        elif isinstance(x, dict):
            stack.extend(reversed(list(x.values())))
    return out


# -- the fake device -------------------------------------------------------------------------

_PROBE = """
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
with FakeTensorMode():
    lin = torch.nn.Linear(8, 8, device="cuda")
    x = torch.randn(4, 8, device="cuda", requires_grad=True)
    lin(x).float().pow(2).mean().backward()
    assert x.grad is not None and x.grad.device.type == "cuda"
print("ok")
"""


@functools.lru_cache(maxsize=1)
def fake_cuda_works() -> tuple[bool, str | None]:
    """Whether a fake ``cuda`` device survives a backward pass here, and if not, why.

    Probed in a child process: on a CPU-only build the attempt aborts the whole process.
    """
    if not torch.backends.cuda.is_built():
        return False, f"this torch build ({torch.__version__}) has no CUDA, so the fake device is cpu"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the fake-cuda probe could not run ({exc})"
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        return True, None
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return False, f"a fake cuda device does not work with this torch ({tail[0][:200]})"


def fake_device_type(prefer: str = "auto") -> str:
    """``"cuda"`` when a fake CUDA device works here (or is asked for), else ``"cpu"``."""
    choice = os.environ.get(FAKE_DEVICE_ENV, prefer).strip().lower() or "auto"
    if choice == "cpu":
        return "cpu"
    if choice == "cuda":
        return "cuda"
    return "cuda" if fake_cuda_works()[0] else "cpu"


def new_fake_mode() -> FakeTensorMode:
    """A fake mode for a replay: real tensors that stray in are converted, not rejected."""
    return FakeTensorMode(allow_non_fake_inputs=True)


def _fake_like(t: torch.Tensor, mode: FakeTensorMode, device: torch.device) -> torch.Tensor:
    with mode:
        return torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device=device)


def fakeify_module(model: nn.Module, mode: FakeTensorMode, device: torch.device) -> nn.Module:
    """Replace every parameter and buffer of ``model`` (on ``meta`` or real) with a fake tensor.

    Shared tensors stay shared: a parameter reached from two modules (GPT-2's ``wte`` and
    ``lm_head``) becomes one fake parameter. ``requires_grad`` and attributes set on parameters
    by libraries (PEFT's markers, ``_is_hf_initialized``…) are carried over.
    """
    memo: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            fake = memo.get(id(param))
            if fake is None:
                fake = nn.Parameter(_fake_like(param, mode, device), requires_grad=param.requires_grad)
                for key, value in vars(param).items():
                    if not key.startswith("_") or key == "_is_hf_initialized":
                        try:
                            setattr(fake, key, value)
                        except (AttributeError, TypeError):
                            pass
                memo[id(param)] = fake
            module._parameters[name] = fake  # type: ignore[assignment]
        for name, buf in list(module._buffers.items()):
            if buf is None:
                continue
            fake = memo.get(id(buf))
            if fake is None:
                fake = _fake_like(buf, mode, device)
                memo[id(buf)] = fake
            module._buffers[name] = fake
    return model


def fake_batch(
    batch: Any, mode: FakeTensorMode, device: torch.device, shadows: ShadowValues | None = None
) -> Any:
    """The same batch as fake tensors on ``device`` (made real first, outside the fake mode)."""

    def convert(x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        with unset_fake_temporarily():
            real = x if x.device.type != "meta" else torch.zeros(x.shape, dtype=x.dtype)
            real = real.to("cpu")
        fake: torch.Tensor = mode.from_tensor(real)
        if device.type != "cpu":
            with mode:
                fake = fake.to(device)
        if shadows is not None:
            shadows.remember(fake, real)
        return fake

    return tree_map(convert, batch)


# allocations whose contents are undefined: their values are never known
_UNDEFINED_VALUES = {
    "empty",
    "empty_like",
    "empty_strided",
    "empty_permuted",
    "new_empty",
    "new_empty_strided",
}


class ShadowValues(TorchDispatchMode):
    """Keeps real values beside small fake tensors whose values are known, so code that reads a
    value back (``.item()``, ``bool(t)``, ``.tolist()``) gets the true answer.

    The input batch is known (it is made for real first); an op whose tensor inputs all have
    known values and whose outputs are small (integer/bool tensors up to ``max_elements``,
    floating-point up to ``max_float_elements`` — masks, positions, step counters, scales) is
    run again for real on the known values. Reads of unknown values (a gradient-derived
    ``found_inf``, a loss) answer 0 / ``False`` — "no overflow, no NaN" — and are counted in
    :attr:`unknown_reads`. Runs between the fake mode and the tracker: the tracked op sequence
    is untouched, and the real copies are never counted.
    """

    def __init__(self, max_elements: int = 1 << 22, max_float_elements: int = 64) -> None:
        super().__init__()
        self.max_elements = max_elements
        self.max_float_elements = max_float_elements
        self._values: dict[int, tuple[weakref.ref[torch.Tensor], torch.Tensor]] = {}
        self.unknown_reads = 0

    def remember(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        key = id(fake)
        values = self._values

        def forget(ref: weakref.ref[torch.Tensor]) -> None:
            entry = values.get(key)
            if entry is not None and entry[0] is ref:
                del values[key]

        self._values[key] = (weakref.ref(fake, forget), real)

    def value(self, t: torch.Tensor) -> torch.Tensor | None:
        """The real value of ``t`` when known (``t`` itself when it is a real tensor)."""
        if not isinstance(t, FakeTensor):
            return t if t.device.type == "cpu" else None
        entry = self._values.get(id(t))
        if entry is None or entry[0]() is not t:
            return None
        return entry[1]

    def _small(self, t: torch.Tensor) -> bool:
        limit = self.max_float_elements if t.is_floating_point() or t.is_complex() else self.max_elements
        return t.numel() <= limit

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            real = self.value(args[0])
            if real is not None:
                with unset_fake_temporarily():
                    return real.item()
            try:  # the fake mode knows the value of some one-element constants itself
                return func(*args, **kwargs)
            except DataDependentOutputException:
                self.unknown_reads += 1
                return False if args[0].dtype is torch.bool else 0
        out = func(*args, **kwargs)
        self._follow(func, args, kwargs, out)
        return out

    def _follow(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        schema = func._schema
        inputs = _flat_tensors((args, kwargs))
        if any(self.value(t) is None for t in inputs):  # the common case: exit fast
            if schema.is_mutable:
                self._forget_written(schema, args, kwargs)
            return
        outputs = _flat_tensors(out)
        written = self._written(schema, args, kwargs) if schema.is_mutable else []
        if (
            (not outputs and not written)
            or torch.Tag.nondeterministic_seeded in func.tags
            or func._overloadpacket.__name__ in _UNDEFINED_VALUES
            or not all(self._small(t) for t in outputs)
            or not all(self._small(t) for t in written)
        ):
            self._forget_written(schema, args, kwargs)
            return

        def to_real(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return self.value(x)
            if isinstance(x, torch.device):
                return torch.device("cpu")
            return x

        real_args, real_kwargs = tree_map(to_real, (args, kwargs))
        try:
            with unset_fake_temporarily():
                real_out = func(*real_args, **real_kwargs)
        except Exception:  # a value we cannot follow is just unknown
            for t in (*outputs, *written):
                self._values.pop(id(t), None)
            return
        for fake, real in zip(outputs, _flat_tensors(real_out), strict=False):
            if isinstance(fake, FakeTensor) and self.value(fake) is None:
                self.remember(fake, real)

    @staticmethod
    def _written(schema: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
        written = [
            a for a, arg in zip(args, schema.arguments, strict=False)
            if arg.alias_info is not None and arg.alias_info.is_write
        ]  # fmt: skip
        written += [v for k, v in kwargs.items() if k == "out"]
        return _flat_tensors(written)

    def _forget_written(self, schema: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for t in self._written(schema, args, kwargs):
            self._values.pop(id(t), None)


@dataclass
class FakeWorld:
    """The fake mode, the fake device and the known values of one simulated trial."""

    mode: FakeTensorMode
    device: torch.device
    shadows: ShadowValues

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The fake mode with the value follower above it: run fake code inside this."""
        with self.mode, self.shadows:
            yield

    def fakeify(self, model: nn.Module) -> nn.Module:
        """:func:`fakeify_module` onto this world's device."""
        return fakeify_module(model, self.mode, self.device)

    def batch(self, batch: Any) -> Any:
        """:func:`fake_batch`, with the batch's real values remembered."""
        return fake_batch(batch, self.mode, self.device, self.shadows)


def use_cuda_optimizer_defaults(optimizer: torch.optim.Optimizer) -> bool:
    """Make ``optimizer`` run the implementation torch picks by default for CUDA tensors.

    On CUDA, torch's AdamW, Adam, SGD… default to ``foreach`` (one kernel over the whole tensor
    list; its intermediates, e.g. AdamW's ``sqrt(exp_avg_sq)``, are as large as all trainable
    parameters together), while on CPU — and for fake tensors — they run one tensor at a time.
    Returns whether anything changed. Groups that set ``foreach`` or ``fused`` are left alone.
    """
    changed = False
    for group in optimizer.param_groups:
        if "foreach" in group and group["foreach"] is None and not group.get("fused"):
            if group.get("differentiable"):
                continue
            group["foreach"] = True
            changed = True
    return changed


_ORIGINAL_SDPA = torch.nn.functional.scaled_dot_product_attention


def _sdpa_as_on_cuda(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    if dropout_p > 0.0 and query.device.type == "cpu":
        if enable_gqa and key.size(-3) != query.size(-3):
            key = key.repeat_interleave(query.size(-3) // key.size(-3), dim=-3)
            value = value.repeat_interleave(query.size(-3) // value.size(-3), dim=-3)
        out, _ = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale
        )
        return out  # type: ignore[no-any-return]
    return _ORIGINAL_SDPA(
        query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
        scale=scale, enable_gqa=enable_gqa,
    )  # fmt: skip


_ORIGINAL_DROPOUT = torch.nn.functional.dropout


def _dropout_as_on_cuda(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> torch.Tensor:
    # CPU dropout keeps a mask in the input's dtype for backward; CUDA's fused kernel
    # (native_dropout) keeps a 1-byte bool mask. native_dropout runs on CPU too.
    if training and 0.0 < p < 1.0 and not inplace and input.device.type == "cpu":
        return torch.native_dropout(input, p, True)[0]
    return _ORIGINAL_DROPOUT(input, p, training, inplace)


@contextlib.contextmanager
def cuda_attention_choice() -> Iterator[None]:
    """Run ``scaled_dot_product_attention`` with dropout as a fused kernel, as CUDA does.

    With ``dropout_p > 0`` the CPU picks the math path (the full ``B·H·S·S`` scores and dropout
    mask saved for backward), while CUDA's flash and memory-efficient kernels take dropout and
    save only the output and the log-sum-exp. Inside this context such calls go to the fused
    CPU kernel, whose saved tensors match CUDA's (GQA is expanded, as the math path does). It
    swaps ``torch.nn.functional.scaled_dot_product_attention`` for the duration, so that
    recomputation under checkpointing takes the same path.

    Plain dropout (``nn.Dropout``, e.g. LoRA's) goes to ``native_dropout`` likewise: CUDA's
    kernel saves a 1-byte mask where the CPU's saves one in the input's dtype.
    """
    functional = torch.nn.functional
    functional.scaled_dot_product_attention = _sdpa_as_on_cuda  # type: ignore[assignment]
    functional.dropout = _dropout_as_on_cuda  # type: ignore[assignment]
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = _ORIGINAL_SDPA
        functional.dropout = _ORIGINAL_DROPOUT


# -- the tracker with per-phase peaks --------------------------------------------------------


class PhaseTracker(TensorMemoryTracker):
    """A :class:`TensorMemoryTracker` that also keeps the peak of each phase of the step."""

    def __init__(self, device_type: str = "meta") -> None:
        super().__init__(device_type)
        self.phase_peaks: dict[str, int] = {}

    def _note(self) -> None:
        if self._live_bytes > self.phase_peaks.get(self.phase, -1):
            self.phase_peaks[self.phase] = self._live_bytes

    def _track(self, storage: torch.UntypedStorage, role: Role) -> int | None:
        serial = super()._track(storage, role)
        self._note()
        return serial

    def set_phase(self, phase: str) -> None:
        super().set_phase(phase)
        self._note()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in _flat_tensors(out):
            try:
                storage = t.untyped_storage()
            except (RuntimeError, NotImplementedError):
                continue
            self._track(storage, Role.ACTIVATION)
        return out

    def event_log(self) -> tuple[list[int], dict[int, int]]:
        """The allocation log (``+serial`` allocated, ``-serial`` freed) and bytes per serial."""
        return list(self._events), dict(self._bytes)

    def resident_count(self) -> int:
        """How many leading events are the storages registered before the step."""
        return self._resident_events

    def register(self, tensors: Iterable[torch.Tensor], role: Role) -> None:
        super().register(tensors, role)
        self._resident_events = len(self._events)

    _resident_events = 0


# -- FLOPs and bytes of the step -------------------------------------------------------------


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


@dataclass(frozen=True)
class StepCost:
    """What one optimizer step costs in arithmetic and memory traffic (counted, not timed).

    ``flops_by_dtype`` uses ``torch.utils.flop_counter``'s formulas (matmuls, convolutions,
    attention; attention counted dense, as torch does, even when causal). Bytes are what each
    op reads and writes (inputs and outputs, views excluded): eager PyTorch runs one kernel per
    op, so this is the traffic to device memory without fusion.
    """

    flops_by_dtype: dict[str, int] = field(default_factory=dict)  # "bfloat16" → FLOPs
    flop_op_bytes: int = 0  # bytes read + written by the ops that have FLOPs (matmul, attention)
    other_op_bytes: int = 0  # bytes read + written by every other op (elementwise, norms, copies)
    ops: int = 0
    attention_ops: dict[str, int] = field(default_factory=dict)  # attention kernel → calls
    max_attention_query_elements: int = 0  # largest query (B·H·S·D) given to a fused kernel
    provenance: Provenance = Provenance.SIMULATED

    @property
    def total_flops(self) -> int:
        return sum(self.flops_by_dtype.values())

    @property
    def total_bytes(self) -> int:
        return self.flop_op_bytes + self.other_op_bytes

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["provenance"] = self.provenance.value
        out["total_flops"] = self.total_flops
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepCost:
        return cls(
            flops_by_dtype={str(k): int(v) for k, v in data.get("flops_by_dtype", {}).items()},
            flop_op_bytes=int(data.get("flop_op_bytes", 0)),
            other_op_bytes=int(data.get("other_op_bytes", 0)),
            ops=int(data.get("ops", 0)),
            attention_ops={str(k): int(v) for k, v in data.get("attention_ops", {}).items()},
            max_attention_query_elements=int(data.get("max_attention_query_elements", 0)),
            provenance=Provenance(data.get("provenance", Provenance.SIMULATED.value)),
        )


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
        outputs = _flat_tensors(out)
        if not outputs and not func._schema.is_mutable:  # a query: device, size, a scalar read
            return out
        self.ops += 1
        seen: set[int] = set()
        nbytes = 0
        for t in (*_flat_tensors(args), *_flat_tensors(kwargs), *outputs):
            if id(t) not in seen:
                seen.add(id(t))
                nbytes += _nbytes(t)
        formula = self._formulas.get(func._overloadpacket)
        if formula is None:
            self.other_op_bytes += nbytes
            return out
        flops = int(formula(*args, **kwargs, out_val=out))
        first = next(iter(_flat_tensors(args)), None)
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


# -- the CUDA caching allocator, replayed ---------------------------------------------------


@dataclass(frozen=True)
class CachingAllocatorModel:
    """The block and segment sizes of PyTorch's CUDA caching allocator (defaults: its own).

    ``c10/cuda/CUDACachingAllocator.cpp`` (constants in ``c10/core/AllocatorConfig.h``): every
    request is rounded up to 512 B; requests ≤ 1 MiB come from 2 MiB "small" segments; larger
    ones from 20 MiB segments below 10 MiB, else from a segment of the request rounded up to
    2 MiB; a free cached block is reused best-fit and split when the rest is ≥ 512 B (small
    pool) or > 1 MiB (large pool); freed neighbours merge. Segments are kept until
    ``empty_cache``. No ``PYTORCH_CUDA_ALLOC_CONF`` options (``expandable_segments``,
    ``max_split_size_mb``, ``roundup_power2_divisions``) are modelled.
    """

    min_block_bytes: int = 512
    small_size_bytes: int = 1 << 20
    small_buffer_bytes: int = 2 << 20
    large_buffer_bytes: int = 20 << 20
    min_large_alloc_bytes: int = 10 << 20
    round_large_bytes: int = 2 << 20

    def round_size(self, size: int) -> int:
        b = self.min_block_bytes
        return b if size < b else b * -(-size // b)

    def segment_size(self, rounded: int) -> int:
        if rounded <= self.small_size_bytes:
            return self.small_buffer_bytes
        if rounded < self.min_large_alloc_bytes:
            return self.large_buffer_bytes
        r = self.round_large_bytes
        return r * -(-rounded // r)


@dataclass(frozen=True)
class AllocatorPeak:
    """What the caching allocator would have held: like ``torch.cuda.max_memory_*``."""

    max_allocated_bytes: int  # blocks handed out (rounded, unsplit remainders included)
    max_reserved_bytes: int  # segments obtained with cudaMalloc
    segments: int
    provenance: Provenance = Provenance.SIMULATED


class _Block:
    __slots__ = ("addr", "next", "prev", "size", "small", "used")

    def __init__(self, addr: int, size: int, small: bool) -> None:
        self.addr = addr
        self.size = size
        self.small = small
        self.used = False
        self.prev: _Block | None = None
        self.next: _Block | None = None


class _Allocator:
    def __init__(self, model: CachingAllocatorModel) -> None:
        self.m = model
        self.free: dict[bool, list[tuple[int, int, _Block]]] = {True: [], False: []}
        self.next_addr = 0
        self.reserved = self.allocated = self.max_allocated = self.segments = 0

    def _insert(self, block: _Block) -> None:
        bisect.insort(self.free[block.small], (block.size, block.addr, block))

    def _remove(self, block: _Block) -> None:
        pool = self.free[block.small]
        i = bisect.bisect_left(pool, (block.size, block.addr))
        if i < len(pool) and pool[i][2] is block:
            del pool[i]

    def malloc(self, size: int) -> _Block:
        m = self.m
        rounded = m.round_size(size)
        small = rounded <= m.small_size_bytes
        pool = self.free[small]
        i = bisect.bisect_left(pool, (rounded, -1))
        if i < len(pool):
            block = pool.pop(i)[2]
        else:
            seg = m.segment_size(rounded)
            block = _Block(self.next_addr, seg, small)
            self.next_addr += seg
            self.reserved += seg
            self.segments += 1
        rest = block.size - rounded
        if (rest >= m.min_block_bytes) if small else (rest > m.small_size_bytes):
            tail = _Block(block.addr + rounded, rest, small)
            tail.prev, tail.next = block, block.next
            if block.next is not None:
                block.next.prev = tail
            block.next = tail
            block.size = rounded
            self._insert(tail)
        block.used = True
        self.allocated += block.size
        self.max_allocated = max(self.max_allocated, self.allocated)
        return block

    def release(self, block: _Block) -> None:
        block.used = False
        self.allocated -= block.size
        for other in (block.prev, block.next):
            if other is None or other.used:
                continue
            self._remove(other)
            if other is block.prev:
                other.size += block.size
                other.next = block.next
                if block.next is not None:
                    block.next.prev = other
                block = other
            else:
                block.size += other.size
                block.next = other.next
                if other.next is not None:
                    other.next.prev = block
        self._insert(block)


def replay_caching_allocator(
    events: list[int],
    sizes: dict[int, int],
    resident: int,
    model: CachingAllocatorModel | None = None,
    steps: int = 2,
) -> AllocatorPeak:
    """Replay a tracked step's allocations through the caching-allocator model.

    ``events[:resident]`` are the storages live before the step (allocated once); the rest of
    the step is replayed ``steps`` times, so that the second pass runs on the cache the first
    left behind, as a steady-state step does after warm-up.
    """
    alloc = _Allocator(model or CachingAllocatorModel())
    live: dict[int, _Block] = {}
    for ev in events[:resident]:
        if ev > 0:
            live[ev] = alloc.malloc(sizes[ev])
    step_events = events[resident:]
    offset = max(sizes, default=0) + 1
    resident_serials = set(live)
    for k in range(steps):
        for ev in step_events:
            serial = abs(ev)
            key = serial if serial in resident_serials else serial + k * offset
            if ev > 0:
                if key not in live:
                    live[key] = alloc.malloc(sizes[serial])
            else:
                block = live.pop(key, None)
                if block is not None:
                    alloc.release(block)
    return AllocatorPeak(alloc.max_allocated, alloc.reserved, alloc.segments)


# -- the simulated trial ---------------------------------------------------------------------


def _backends(device_type: str) -> tuple[BackendStatus, ...]:
    if device_type == "cuda":
        fake_cuda = BackendStatus("fake-cuda", True, None)
    else:
        works, why = fake_cuda_works()
        fake_cuda = BackendStatus("fake-cuda", False, why if not works else "not used: cpu was asked for")
    return (BackendStatus("fake-tensors", True, None), fake_cuda)


def light_warmup(prog: StepProgram, device: torch.device) -> None:
    """Leave behind what a warm-up step leaves, without its forward and backward.

    One optimizer step on zero gradients creates the optimizer state (and a GradScaler's
    scale); ``zero_grad(set_to_none=True)`` then drops the gradients, as after a real step.
    That is all a steady-state step finds resident beyond the model and the batch, and it
    halves the cost of a replay.
    """
    params = [p for p in prog.model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    if prog.scale_loss is not None:
        prog.scale_loss(torch.zeros((), device=device))
    if prog.optimizer_step is not None:
        prog.optimizer_step()
    else:
        prog.optimizer.step()
    prog.optimizer.zero_grad(set_to_none=True)


def simulate_trial(
    spec: TrialSpec,
    build: FakeBuild,
    progress: Progress | None = None,
    *,
    target: str = "cuda",
    fake_device: str = "auto",
    allocator: CachingAllocatorModel | None = None,
    count_cost: bool = True,
    warmup: str = "light",
) -> TrialResult:
    """Replay one trial on fake tensors; never raises for a failing configuration.

    ``build(world)`` returns the program with fake parameters on ``world.device``. The
    warm-up is ``"light"`` (:func:`light_warmup`: the optimizer state, without a forward and
    backward) or ``"full"`` (``spec.warmup_steps`` whole steps, at least one). Then one step
    runs under the memory tracker (and, with ``count_cost``, the FLOP/byte counter). ``target``
    ``"cuda"`` makes the optimizer run as it does on CUDA and replays the allocations through
    the CUDA caching-allocator model; ``"cpu"`` replays exactly what this CPU would run.
    No timing: the result's figures are ``simulated``.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if warmup not in ("light", "full"):
        raise ValueError(f"warmup must be 'light' or 'full', got {warmup!r}")
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    device_type = fake_device_type(fake_device)
    device = torch.device(device_type)
    base: dict[str, Any] = dict(
        model=spec.model,
        plan=spec.plan,
        cuts=spec.cuts,
        device=f"fake-{device_type}",
        batch_size=spec.batch_size,
        seq_len=spec.seq_len,
        backends=_backends(device_type),
    )
    params: ParamCounts | None = None
    peak: TensorPeak | None = None
    extra: dict[str, Any] = {}
    sim: dict[str, Any] = {"fake_device": device_type, "target": target}
    accumulation = 1
    status, reason = TrialStatus.OK, None
    mode = new_fake_mode()
    world = FakeWorld(mode, device, ShadowValues())
    prog: StepProgram | None = None
    try:
        say("building the model on fake tensors")
        prog = build(world)
        accumulation = prog.accumulation_steps
        extra = dict(prog.extra)
        params = count_parameters(prog.model, Provenance.SIMULATED)
        sim["tokens_per_step"] = prog.tokens_per_step
        if target == "cuda":  # fake tensors never get torch's CUDA default by themselves
            sim["optimizer_foreach"] = use_cuda_optimizer_defaults(prog.optimizer)
        prog.model.train()
        kernels: AbstractContextManager[Any] = nullcontext()
        if target == "cuda" and device_type != "cuda":
            kernels = cuda_attention_choice()
        with world.active(), kernels:
            if warmup == "light":
                say("simulated warm-up (optimizer state)")
                light_warmup(prog, device)
            else:
                for i in range(max(1, spec.warmup_steps)):
                    say(f"simulated warm-up step {i + 1}/{max(1, spec.warmup_steps)}")
                    train_step(prog)
            say("simulating the peak of one step")
            gc.collect()
            tracker = PhaseTracker("meta")
            tracker.register_training_state(prog.model, prog.optimizer, prog.batch)
            counter = StepCostCounter() if count_cost else None
            try:
                with tracker:
                    if counter is not None:
                        with counter:
                            train_step(prog, tracker)
                    else:
                        train_step(prog, tracker)
                peak = tracker.result(Provenance.SIMULATED)
                sim["phase_peaks"] = dict(tracker.phase_peaks)
                if counter is not None:
                    sim["step_cost"] = counter.cost().to_dict()
                if target == "cuda":
                    events, sizes = tracker.event_log()
                    replay = replay_caching_allocator(events, sizes, tracker.resident_count(), allocator)
                    sim["cuda_allocator"] = {
                        "max_allocated_bytes": replay.max_allocated_bytes,
                        "max_reserved_bytes": replay.max_reserved_bytes,
                        "segments": replay.segments,
                    }
            finally:
                tracker.close()
    except Exception as exc:
        status, reason = classify_failure(exc)
        log.debug("simulation of %s/%s failed", spec.model, spec.plan, exc_info=True)
        traceback.clear_frames(exc.__traceback__)
    finally:
        del prog  # the next trial's collection frees what is left of this one
    if world.shadows.unknown_reads:
        sim["unknown_value_reads"] = world.shadows.unknown_reads
    extra["simulation"] = sim
    return TrialResult(
        status=status,
        reason=reason,
        accumulation_steps=accumulation,
        params=params,
        tensor_peak=peak,
        wall_time_s=time.perf_counter() - started,
        extra=extra,
        **base,
    )
