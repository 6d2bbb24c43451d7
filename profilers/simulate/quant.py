"""QLoRA's quantized linears on fake tensors: bitsandbytes' storages and autograd, without it.

bitsandbytes quantizes weights from their values and runs native kernels on data pointers, so
the replay swaps each quantized linear for a stand-in that holds the same storages and runs
the same sequence of tensor allocations in forward and backward. What follows is read from the
installed bitsandbytes 0.50.2 (``nn/modules.py``, ``functional.py``,
``autograd/_functions.py``, ``backends/{cpu,cuda,default}/ops.py``).

4-bit (:class:`Linear4bitStandIn`, as ``bnb.nn.Linear4bit``):

* the weight: ``(N·K + 1) // (2·itemsize)`` elements of ``quant_storage`` (uint8: two 4-bit
  codes per byte), shaped ``(…, 1)`` (``quantize_4bit``'s fake kernel, ``_ops.py``);
* its ``quant_state``: ``absmax``, one per block of 64 elements (float32), the 16-entry code
  (float32, one per layer: ``get_4bit_type`` makes a new tensor each call); with double
  quantization (``compress_statistics=True``, ``Linear4bit``'s default) ``absmax`` is uint8,
  with a float32 ``offset`` (0-dim) and a nested state of one float32 absmax per 256 absmax
  values and its own 256-entry code (a copy per layer);
* forward (``matmul_4bit``): ``gemm_4bit`` returns the output alone; it goes through the
  autograd function ``MatMul4Bit`` only when the input (or bias) requires grad, which saves the
  packed weight (a view: nothing new); backward dequantizes the whole weight
  (``dequantize_4bit``: nested absmax first, float32 per block, then an ``(N, K)`` tensor in
  the dtype the weight had when quantized), casts it to the gradient's dtype and multiplies;
* on CPU ``gemm_4bit`` is the default kernel (dequantize + ``F.linear`` inside one op: the
  temporary weight is not a tensor the step's op sequence holds); on CUDA it dequantizes to an
  ``(N, K)`` compute-dtype buffer (and the nested absmax to float32) and calls ``F.linear``
  when the rows ``M`` exceed 1536 (``_dequant_linear_fallback``), else runs a fused kernel
  with no temporary. A CUDA target replays those buffers as tensors.

8-bit (:class:`Linear8bitStandIn`, as ``bnb.nn.Linear8bitLt(has_fp16_weights=False)``): int8
weights ``(N, K)`` with one float32 row scale per output (``SCB``). Training on CPU runs
``MatMul8bitFp``: forward and backward each dequantize the weight to an ``(N, K)`` tensor in
the input's dtype (with an ``(N, 1)`` scale temporary), and the input is kept for backward. On
CUDA ``MatMul8bitLt``: the input is cast to float16 and quantized row-wise to int8 (plus one
float32 scale per row), ``int8_scaled_mm`` multiplies into an int32 ``(M, N)`` buffer and
dequantizes into the output; the input is kept for backward, which dequantizes the weight.

PEFT 0.21.2's LoRA wrapper of a 4-bit layer clones the base layer's output (``peft/tuners/lora/
bnb.py``: "we need to defensively clone here"); a stand-in wrapped by LoRA does the same
(:attr:`Linear4bitStandIn.peft_clone`).

Which CUDA path a replay takes is set by :func:`quantized_target` (the replay enters it).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes

__all__ = [
    "BLOCKSIZE_4BIT",
    "BNB_VERSION_READ",
    "CUDA_GEMM_4BIT_CUSTOM_MAX_M",
    "NESTED_BLOCKSIZE",
    "Int8Params",
    "Linear4bitStandIn",
    "Linear8bitStandIn",
    "Params4bit",
    "QuantStateStandIn",
    "current_target",
    "packed_4bit_shape",
    "quantized_bytes",
    "quantized_target",
    "stand_in_for",
]

BNB_VERSION_READ = "0.50.2"  # the bitsandbytes this module mirrors
BLOCKSIZE_4BIT = 64  # Params4bit / quantize_4bit: blocksize None → 64
NESTED_BLOCKSIZE = 256  # quantize_4bit(compress_statistics=True): quantize_blockwise(…, blocksize=256)
CODE_4BIT_ENTRIES = 16  # get_4bit_type: the NF4 / FP4 table
DYNAMIC_MAP_ENTRIES = 256  # create_dynamic_map(): the nested absmax code
CUDA_GEMM_4BIT_CUSTOM_MAX_M = 1536  # backends/cuda/ops.py: _gemm_4bit_custom_max_m (CUDA)

_TARGET: contextvars.ContextVar[str] = contextvars.ContextVar("vram_advisor_quant_target", default="cpu")


@contextlib.contextmanager
def quantized_target(target: str) -> Iterator[None]:
    """Run the stand-ins (and the 8-bit optimizer's) as bitsandbytes runs on ``target``
    (``"cpu"`` or ``"cuda"``)."""
    token = _TARGET.set(target)
    try:
        yield
    finally:
        _TARGET.reset(token)


def current_target() -> str:
    """The device bitsandbytes' stand-ins run as now: ``"cpu"`` unless inside
    :func:`quantized_target`."""
    return _TARGET.get()


def packed_4bit_shape(numel: int, quant_storage: torch.dtype = torch.uint8) -> tuple[int, int]:
    """The shape of a packed 4-bit weight of ``numel`` values (``quantize_4bit``'s fake kernel)."""
    return ((numel + 1) // (quant_storage.itemsize * 2), 1)


def _blocks(numel: int, blocksize: int) -> int:
    return -(numel // -blocksize)


@dataclass
class QuantStateStandIn:
    """``bitsandbytes.functional.QuantState``'s tensors and fields, as a 4-bit weight holds them."""

    absmax: torch.Tensor
    shape: tuple[int, ...] = ()
    code: torch.Tensor | None = None
    dtype: torch.dtype = torch.float32
    blocksize: int = BLOCKSIZE_4BIT
    quant_type: str | None = None
    offset: torch.Tensor | None = None
    state2: QuantStateStandIn | None = None

    @property
    def nested(self) -> bool:
        return self.state2 is not None

    def convert(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace every tensor with ``fn(tensor)`` (e.g. meta → fake)."""
        self.absmax = fn(self.absmax)
        if self.code is not None:
            self.code = fn(self.code)
        if self.offset is not None:
            self.offset = fn(self.offset)
        if self.state2 is not None:
            self.state2.convert(fn)


class Params4bit(nn.Parameter):
    """The packed weight; named as bitsandbytes' so that PEFT's
    ``prepare_model_for_kbit_training`` leaves it in its storage dtype, as it leaves the real one."""

    quant_state: QuantStateStandIn


class Int8Params(nn.Parameter):
    """The int8 weight, named as bitsandbytes'."""


def quantized_bytes(
    out_features: int,
    in_features: int,
    bits: int = 4,
    double_quant: bool = True,
    quant_storage: torch.dtype = torch.uint8,
) -> int:
    """Bytes a quantized ``(out, in)`` weight holds with its statistics (no bias).

    Args:
        out_features: N, the rows of the weight.
        in_features: K, its columns.
        bits: 4 (``Linear4bit``) or 8 (``Linear8bitLt``).
        double_quant: for 4 bits, whether the absmax values are quantized again.
        quant_storage: for 4 bits, the dtype the packed codes are stored in.

    Returns:
        The bytes of the weight storage, its absmax/scales, codes and offset.
    """
    n = out_features * in_features
    if bits == 8:
        return n + 4 * out_features
    rows, cols = packed_4bit_shape(n, quant_storage)
    total = rows * cols * quant_storage.itemsize + 4 * CODE_4BIT_ENTRIES
    blocks = _blocks(n, BLOCKSIZE_4BIT)
    if double_quant:
        total += blocks + 4 + 4 * _blocks(blocks, NESTED_BLOCKSIZE) + 4 * DYNAMIC_MAP_ENTRIES
    else:
        total += 4 * blocks
    return total


def _shadow(module: nn.Module, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    """A real, zero-stride ``(rows, cols)`` tensor standing in for a weight's values in a matmul:
    one element, made outside every mode, so that the step sees only the matmul's output."""
    cache: dict[tuple[int, int, torch.dtype], torch.Tensor] = module.__dict__.setdefault("_shadows", {})
    key = (rows, cols, dtype)
    shadow = cache.get(key)
    if shadow is None:
        with _disable_current_modes():
            shadow = torch.zeros((), dtype=dtype).expand(rows, cols)
        cache[key] = shadow
    return shadow


def _linear(module: nn.Linear, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ W.T + bias`` for ``W`` of ``module``'s shape, allocating only the output."""
    out_f, in_f = module.out_features, module.in_features
    out = torch.matmul(x, _shadow(module, in_f, out_f, x.dtype))
    if bias is not None:
        out.add_(bias)
    return out


class Linear4bitStandIn(nn.Linear):
    """``bnb.nn.Linear4bit`` for the replay (see the module doc): same storages, same autograd."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: nn.Parameter | None,
        *,
        weight_dtype: torch.dtype,
        compute_dtype: torch.dtype | None = torch.float32,
        quant_type: str = "nf4",
        double_quant: bool = True,
        quant_storage: torch.dtype = torch.uint8,
        device: torch.device | str = "meta",
    ) -> None:
        super().__init__(in_features, out_features, bias=False, device="meta")
        n = in_features * out_features
        blocks = _blocks(n, BLOCKSIZE_4BIT)
        packed = torch.empty(packed_4bit_shape(n, quant_storage), dtype=quant_storage, device=device)
        self.weight = Params4bit(packed, requires_grad=False)
        code = torch.empty(CODE_4BIT_ENTRIES, dtype=torch.float32, device=device)
        if double_quant:
            state2 = QuantStateStandIn(
                absmax=torch.empty(_blocks(blocks, NESTED_BLOCKSIZE), dtype=torch.float32, device=device),
                code=torch.empty(DYNAMIC_MAP_ENTRIES, dtype=torch.float32, device=device),
                blocksize=NESTED_BLOCKSIZE,
            )
            state = QuantStateStandIn(
                absmax=torch.empty(blocks, dtype=torch.uint8, device=device),
                offset=torch.empty((), dtype=torch.float32, device=device),
                state2=state2,
                code=code,
            )
        else:
            state = QuantStateStandIn(absmax=torch.empty(blocks, dtype=torch.float32, device=device), code=code)
        state.shape = (out_features, in_features)
        state.dtype = weight_dtype
        state.quant_type = quant_type
        self.weight.quant_state = state  # type: ignore[attr-defined]  # fakeify keeps it on the fake
        self.bias = bias  # type: ignore[assignment]  # nn.Linear types it without None
        self.compute_dtype = compute_dtype
        self.quant_type = quant_type
        self.quant_storage = quant_storage
        self.peft_clone = False  # set when PEFT's LoRA wraps this layer (its wrapper clones)

    @property
    def quant_state(self) -> QuantStateStandIn:
        """The weight's quantization statistics (on the weight, as bitsandbytes keeps them)."""
        state: QuantStateStandIn = getattr(self.weight, "quant_state")  # noqa: B009
        return state

    def fakeify_state(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Turn the quantization statistics into fake tensors (called by ``fakeify_module``)."""
        self.quant_state.convert(fn)

    def _gemm(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``gemm_4bit``: the output, and on CUDA past 1536 rows its dequantized buffers."""
        rows = x.numel() // x.shape[-1]
        if _TARGET.get() == "cuda" and rows > CUDA_GEMM_4BIT_CUSTOM_MAX_M:
            state = self.quant_state
            absmax = None
            if state.offset is not None:  # nested: absmax_dq = empty_like(float32); + offset
                absmax_dq = torch.empty(state.absmax.shape, dtype=torch.float32, device=x.device)
                absmax = absmax_dq + state.offset
                del absmax_dq
            weight = torch.empty(state.shape, dtype=x.dtype, device=x.device)
            out = torch.nn.functional.linear(x, weight, bias)
            del weight, absmax
            return out
        return _linear(self, x, bias)

    def dequantize(self) -> torch.Tensor:
        """``F.dequantize_4bit(weight, quant_state)``: the ``(N, K)`` weight in its own dtype."""
        state = self.quant_state
        absmax = None
        if state.offset is not None:  # nested
            absmax = torch.empty(state.absmax.shape, dtype=torch.float32, device=self.weight.device)
            absmax += state.offset
        out = torch.empty(state.shape, dtype=state.dtype, device=self.weight.device)
        del absmax
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compute_dtype is None and x.dtype in (torch.float32, torch.bfloat16):
            self.compute_dtype = x.dtype  # set_compute_type
        inp_dtype = x.dtype
        if self.compute_dtype is not None:
            x = x.to(self.compute_dtype)
        bias: torch.Tensor | None = self.bias
        if bias is not None:
            if bias.dtype != x.dtype:
                bias.data = bias.data.to(x.dtype)
            bias = bias.to(self.compute_dtype)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad))
        if needs_grad:
            out = _MatMul4Bit.apply(x, self, bias)
        else:
            out = self._gemm(x, bias)
        out = out.to(inp_dtype)
        if self.peft_clone:
            out = out.clone()
        return out  # type: ignore[no-any-return]


class _MatMul4Bit(torch.autograd.Function):
    """``bitsandbytes.autograd._functions.MatMul4Bit``: saves nothing new, dequantizes in backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: Linear4bitStandIn, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.layer = layer
        ctx.dtype_bias = None if bias is None else bias.dtype
        return layer._gemm(x, bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        req_grad_a, _, req_grad_bias = ctx.needs_input_grad
        grad_a = grad_bias = None
        if req_grad_bias:
            grad_bias = grad_output.sum(0, dtype=ctx.dtype_bias)
        if req_grad_a:
            grad_a = torch.matmul(grad_output, ctx.layer.dequantize().to(grad_output.dtype))
        return grad_a, None, grad_bias


@dataclass
class _MatmulLtState:
    """The part of ``bnb.MatmulLtState`` that holds tensors: the row scales ``SCB``."""

    SCB: torch.Tensor
    threshold: float = 0.0
    is_training: bool = True


class Linear8bitStandIn(nn.Linear):
    """``bnb.nn.Linear8bitLt(has_fp16_weights=False)`` for the replay (see the module doc)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: nn.Parameter | None,
        *,
        device: torch.device | str = "meta",
    ) -> None:
        super().__init__(in_features, out_features, bias=False, device="meta")
        data = torch.empty((out_features, in_features), dtype=torch.int8, device=device)
        self.weight = Int8Params(data, requires_grad=False)
        self.state = _MatmulLtState(SCB=torch.empty(out_features, dtype=torch.float32, device=device))
        self.bias = bias  # type: ignore[assignment]  # nn.Linear types it without None

    def fakeify_state(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Turn the row scales into a fake tensor (called by ``fakeify_module``)."""
        self.state.SCB = fn(self.state.SCB)

    def dequantize(self, dtype: torch.dtype) -> torch.Tensor:
        """``state.CB.to(dtype, copy=True).mul_(state.SCB.unsqueeze(1).mul(1.0 / 127.0))``."""
        weight = self.weight.to(dtype, copy=True)
        weight.mul_(self.state.SCB.unsqueeze(1).mul(1.0 / 127.0))
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.state.is_training = self.training
        if self.bias is not None and self.bias.dtype != x.dtype:
            self.bias.data = self.bias.data.to(x.dtype)
        if self.training and _TARGET.get() != "cuda":  # bnb.matmul: MatMul8bitFp on cpu/xpu
            return _MatMul8bitFp.apply(x, self, self.bias)  # type: ignore[no-any-return]
        return _MatMul8bitLt.apply(x, self, self.bias)  # type: ignore[no-any-return]


class _MatMul8bitFp(torch.autograd.Function):
    """``MatMul8bitFp`` (CPU training): dequantize, ``F.linear``; the input is kept for backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: Linear8bitStandIn, bias: torch.Tensor | None) -> torch.Tensor:
        weight = layer.weight.to(x.dtype)
        weight.mul_(layer.state.SCB.unsqueeze(1).mul(1.0 / 127.0))
        out = torch.nn.functional.linear(x, weight, bias)
        ctx.layer, ctx.A, ctx.dtype_A, ctx.grad_shape = layer, x, x.dtype, x.shape
        ctx.dtype_bias = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        return _int8_backward(ctx, grad_output)


def _int8_backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
    req_grad_a, _, req_grad_bias = ctx.needs_input_grad
    grad_a = grad_bias = None
    if req_grad_bias:
        grad_bias = grad_output.sum(0, dtype=ctx.dtype_bias)
    if grad_output.dim() == 3:
        grad_output = grad_output.reshape(-1, grad_output.shape[-1]).contiguous()
    if req_grad_a:
        weight = ctx.layer.dequantize(ctx.dtype_A)
        grad_a = torch.matmul(grad_output.to(ctx.dtype_A), weight).view(ctx.grad_shape)
    return grad_a, None, grad_bias


class _MatMul8bitLt(torch.autograd.Function):
    """``MatMul8bitLt`` (CUDA): int8 row-wise quantized input, int32 product, dequantized out."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: Linear8bitStandIn, bias: torch.Tensor | None) -> torch.Tensor:
        input_shape = x.shape
        a = x.reshape(-1, x.shape[-1]) if x.dim() == 3 else x
        rows = a.shape[0]
        a16 = a.to(torch.float16)  # int8_vectorwise_quant(A.to(float16)): CA, SCA
        ca = torch.empty(a.shape, dtype=torch.int8, device=a.device)
        sca = torch.empty(rows, dtype=torch.float32, device=a.device)
        del a16
        acc = torch.empty((rows, layer.out_features), dtype=torch.int32, device=a.device)  # int8_linear_matmul
        # int8_mm_dequant's output, in A's dtype whatever autocast says (custom ops are not
        # autocast); replayed as a matmul so that the step's FLOPs count the product
        with torch.autocast(a.device.type, enabled=False):
            out = torch.matmul(a, _shadow(layer, layer.in_features, layer.out_features, a.dtype))
        del acc, ca, sca
        if bias is not None:
            out.add_(bias)
        ctx.layer, ctx.A, ctx.dtype_A, ctx.grad_shape = layer, a, a.dtype, input_shape
        ctx.dtype_bias = None if bias is None else bias.dtype
        if len(input_shape) == 3:
            return out.reshape(*input_shape[:-1], layer.out_features)
        return out

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        return _int8_backward(ctx, grad_output)


def stand_in_for(
    linear: nn.Module,
    *,
    bits: int,
    transposed: bool = False,
    compute_dtype: torch.dtype | None = torch.float32,
    quant_type: str = "nf4",
    double_quant: bool = True,
    quant_storage: torch.dtype = torch.uint8,
) -> nn.Linear:
    """The stand-in for ``linear`` (an ``nn.Linear``, or a transposed ``Conv1D`` with
    ``transposed=True``), its bias carried over, its weight laid out as bitsandbytes quantizes it."""
    weight = linear.weight
    assert isinstance(weight, torch.Tensor) and weight.dim() == 2
    rows, cols = int(weight.shape[0]), int(weight.shape[1])
    out_f, in_f = (cols, rows) if transposed else (rows, cols)
    old_bias = linear.bias
    bias = nn.Parameter(old_bias.detach(), requires_grad=False) if isinstance(old_bias, torch.Tensor) else None
    if bits == 4:
        return Linear4bitStandIn(
            in_f, out_f, bias, weight_dtype=weight.dtype, compute_dtype=compute_dtype,
            quant_type=quant_type, double_quant=double_quant, quant_storage=quant_storage,
            device=weight.device,
        )  # fmt: skip
    return Linear8bitStandIn(in_f, out_f, bias, device=weight.device)

