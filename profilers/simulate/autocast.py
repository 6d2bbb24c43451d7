"""The target's autocast policy, on the fake CPU device a CPU-only torch requires.

Autocast is a dispatcher key above autograd: each listed op casts its inputs *before* autograd
records it, so what the op saves for backward has the dtypes the policy chose. CPU and CUDA
autocast list different ops: CUDA runs ``layer_norm``, ``softmax``, ``log_softmax``, ``pow``,
``sum``, ``exp``, ``rsqrt``, ``rms_norm``… in float32, while CPU autocast leaves them in the low
dtype. A bf16 plan simulated for a CUDA GPU on fake *CPU* tensors (a fake ``cuda`` device aborts
once autograd runs on a CPU-only build) would otherwise save those activations at half their
real size.

:func:`cuda_autocast_policy` makes CPU autocast follow CUDA's lists for the duration of a
replay: it registers Python kernels on the ``AutocastCPU`` dispatch key (the same place in the
dispatcher as torch's own autocast kernels, so casts happen above autograd and composite ops
decompose as they do on CUDA) that

* apply CUDA's policy to every op CUDA lists (:data:`CUDA_AUTOCAST_POLICY`): ``lower`` (cast
  floating inputs to the autocast dtype), ``fp32``, ``fp32_set_opt_dtype`` (run with
  ``dtype=float32`` when the first input is eligible), ``fp32_append_dtype`` (``norm``),
  ``promote`` (cast to the widest floating input) and ``banned`` (``binary_cross_entropy``);
* let every op that only CPU lists pass through uncast, as CUDA's fallthrough does.

Ops that both devices run in the low dtype (``mm``, ``addmm``, ``bmm``, ``linear``, ``matmul``,
convolutions, SDPA…) keep CPU's own C++ kernels: they cast the same way and keep the same cache
of low-precision weight copies. The few lower-precision ops only CUDA lists (``einsum``,
``addmv``, RNN cells…) cast without that cache.

The lists are data, for torch :data:`CUDA_POLICY_TORCH` (``aten/src/ATen/autocast_mode.h``,
``AT_FORALL_LOWER_PRECISION_FP`` / ``AT_FORALL_FP32`` / ``AT_FORALL_FP32_SET_OPT_DTYPE`` /
``AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE`` / ``AT_FORALL_PROMOTE``, and the CUDA-only entries of
``autocast_mode.cpp``); the set of op names equals the ops with an ``AutocastCUDA`` kernel in the
installed dispatcher (checked by :func:`check_cuda_lists` and the tests), and each policy that
models use is checked against real CUDA autocast on fake ``cuda`` tensors without autograd.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from profilers.kernel_overrides import KernelOverrides

__all__ = [
    "CUDA_AUTOCAST_POLICY",
    "CUDA_POLICY_TORCH",
    "autocast_cpu_ops",
    "autocast_cuda_ops",
    "autocast_policy_label",
    "check_cuda_lists",
    "cuda_autocast_policy",
]

log = logging.getLogger(__name__)

CUDA_POLICY_TORCH = "2.13"  # the torch version whose CUDA autocast lists these are

_LOWER = (
    "_convolution", "_convolution.deprecated", "conv1d", "conv2d", "conv3d", "conv_tbc",
    "conv_transpose1d", "conv_transpose2d.input", "conv_transpose3d.input", "convolution",
    "prelu", "addmm", "addmv", "addr", "matmul", "einsum", "mm", "mv", "linalg_vecdot", "linear",
    "addbmm", "baddbmm", "bmm", "chain_matmul", "linalg_multi_dot", "_thnn_fused_lstm_cell",
    "_thnn_fused_gru_cell", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell",
    "_scaled_dot_product_flash_attention", "scaled_dot_product_attention",
    "cudnn_convolution", "cudnn_convolution_transpose",  # CUDA-only entries of autocast_mode.cpp
)  # fmt: skip
_FP32 = (
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p",
    "reciprocal", "rsqrt", "sinh", "tan", "pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar",
    "softplus", "layer_norm", "native_layer_norm", "group_norm", "frobenius_norm.dim",
    "nuclear_norm", "nuclear_norm.dim", "cosine_similarity", "poisson_nll_loss",
    "cosine_embedding_loss", "nll_loss", "nll_loss2d", "hinge_embedding_loss", "kl_div", "l1_loss",
    "smooth_l1_loss", "huber_loss", "mse_loss", "margin_ranking_loss", "multilabel_margin_loss",
    "soft_margin_loss", "triplet_margin_loss", "multi_margin_loss",
    "binary_cross_entropy_with_logits", "dist", "pdist", "cdist", "renorm", "logsumexp",
    "upsample_nearest1d", "_upsample_nearest_exact1d", "upsample_nearest2d",
    "_upsample_nearest_exact2d", "upsample_nearest3d", "_upsample_nearest_exact3d",
    "upsample_linear1d", "upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_trilinear3d",
    "upsample_bicubic2d", "_upsample_bicubic2d_aa", "rms_norm",
)  # fmt: skip
_FP32_SET_OPT_DTYPE = (
    "prod", "prod.dim_int", "softmax.int", "log_softmax.int", "cumprod", "cumsum",
    "linalg_vector_norm", "linalg_matrix_norm", "linalg_matrix_norm.str_ord", "sum",
    "sum.dim_IntList",
)  # fmt: skip
_FP32_APPEND_DTYPE = ("norm.Scalar", "norm.ScalarOpt_dim")
_PROMOTE = (
    "addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "grid_sampler",
    "index_put", "tensordot", "scatter_add",
)  # fmt: skip
_BANNED = ("binary_cross_entropy",)

# op overload name (as the dispatcher lists it, without "aten::") → CUDA's cast policy
CUDA_AUTOCAST_POLICY: dict[str, str] = {
    **dict.fromkeys(_LOWER, "lower"),
    **dict.fromkeys(_FP32, "fp32"),
    **dict.fromkeys(_FP32_SET_OPT_DTYPE, "fp32_set_opt_dtype"),
    **dict.fromkeys(_FP32_APPEND_DTYPE, "fp32_append_dtype"),
    **dict.fromkeys(_PROMOTE, "promote"),
    **dict.fromkeys(_BANNED, "banned"),
}

# CUDA's message for the banned op (autocast_mode.cpp, torch 2.13)
_BANNED_MESSAGE = (
    "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
    "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast."
)

# norm's overloads that take the appended dtype (AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE)
_APPEND_TARGET = {"norm.Scalar": "norm.ScalarOpt_dtype", "norm.ScalarOpt_dim": "norm.ScalarOpt_dim_dtype"}

_AUTOCAST_CPU = torch._C.DispatchKey.AutocastCPU
_NO_AUTOCAST_CPU = torch._C.DispatchKeySet(_AUTOCAST_CPU)


def _ops_with_kernel(key: str) -> frozenset[str]:
    names = torch._C._dispatch_get_all_op_names()
    return frozenset(
        n.removeprefix("aten::")
        for n in names
        if n.startswith("aten::") and torch._C._dispatch_has_kernel_for_dispatch_key(n, key)
    )


@functools.lru_cache(maxsize=1)
def autocast_cuda_ops() -> frozenset[str]:
    """The aten ops with an ``AutocastCUDA`` kernel in the installed torch."""
    return _ops_with_kernel("AutocastCUDA")


@functools.lru_cache(maxsize=1)
def autocast_cpu_ops() -> frozenset[str]:
    """The aten ops with torch's own ``AutocastCPU`` kernel (read before any shim is in place)."""
    return _ops_with_kernel("AutocastCPU")


def check_cuda_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(listed here but without an ``AutocastCUDA`` kernel, with a kernel but not listed here):
    both empty when :data:`CUDA_AUTOCAST_POLICY` is the installed torch's list."""
    listed = frozenset(CUDA_AUTOCAST_POLICY)
    registered = autocast_cuda_ops()
    return listed - registered, registered - listed


def autocast_policy_label(target: str, fake_device: str) -> str:
    """Which autocast policy a replay on ``fake_device`` for ``target`` follows, for records."""
    if target == "cuda" and fake_device != "cuda":
        return f"cuda policy (torch {CUDA_POLICY_TORCH})"
    version = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    return f"{fake_device} policy (torch {version})"


# -- the kernels ---------------------------------------------------------------------------------


def _op(name: str) -> torch._ops.OpOverload:
    packet, _, overload = name.partition(".")
    return getattr(getattr(torch.ops.aten, packet), overload or "default")  # type: ignore[no-any-return]


def _eligible(x: Any) -> bool:
    # is_autocast_eligible for the device the fake tensors are on (cpu), as CUDA's for cuda tensors
    return (
        isinstance(x, torch.Tensor)
        and x.device.type == "cpu"
        and x.is_floating_point()
        and x.dtype is not torch.float64
    )


def _cast(x: Any, dtype: torch.dtype) -> Any:
    """``cached_cast`` without the weight cache: eligible tensors (also in lists) to ``dtype``."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if _eligible(x) and x.dtype is not dtype else x
    if isinstance(x, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in x):
        return type(x)(_cast(v, dtype) for v in x)
    return x


def _tensors(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[torch.Tensor]:
    for x in (*args, *kwargs.values()):
        if isinstance(x, torch.Tensor):
            yield x
        elif isinstance(x, (list, tuple)):
            yield from (v for v in x if isinstance(v, torch.Tensor))


def _promote_dtype(lower: torch.dtype, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.dtype:
    # at::autocast::promote_type: float32 wins over the low dtype; float64 inputs are ignored
    out = lower
    for t in _tensors(args, kwargs):
        if _eligible(t) and t.dtype is torch.float32:
            out = torch.float32
    return out


def _cast_all(args: tuple[Any, ...], kwargs: dict[str, Any], dtype: torch.dtype) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return tuple(_cast(a, dtype) for a in args), {k: _cast(v, dtype) for k, v in kwargs.items()}


def _dtype_slot(op: torch._ops.OpOverload) -> tuple[int, bool]:
    """(index, keyword-only) of the op's optional ``dtype`` argument."""
    for i, arg in enumerate(op._schema.arguments):
        if arg.name == "dtype":
            return i, arg.kwarg_only
    raise ValueError(f"{op} has no dtype argument")  # pragma: no cover - checked by the lists


def _kernel(name: str, policy: str) -> Any:
    op = _op(name)
    if policy == "pass":  # only CPU lists it: CUDA falls through, nested ops are autocast again

        def passthrough(keyset: Any, *args: Any, **kwargs: Any) -> Any:
            return op.redispatch(keyset.remove(_AUTOCAST_CPU), *args, **kwargs)

        return passthrough
    if policy == "banned":

        def banned(keyset: Any, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(_BANNED_MESSAGE)

        return banned
    if policy == "fp32_set_opt_dtype":
        slot, kwarg_only = _dtype_slot(op)
    target = _op(_APPEND_TARGET[name]) if policy == "fp32_append_dtype" else op

    def kernel(keyset: Any, *args: Any, **kwargs: Any) -> Any:
        with torch._C._ExcludeDispatchKeyGuard(_NO_AUTOCAST_CPU):
            if policy == "lower":
                args, kwargs = _cast_all(args, kwargs, torch.get_autocast_dtype("cpu"))
            elif policy == "fp32":
                args, kwargs = _cast_all(args, kwargs, torch.float32)
            elif policy == "promote":
                dtype = _promote_dtype(torch.get_autocast_dtype("cpu"), args, kwargs)
                args, kwargs = _cast_all(args, kwargs, dtype)
            elif policy == "fp32_set_opt_dtype":
                if args and _eligible(args[0]):
                    if kwarg_only or len(args) <= slot:
                        if kwargs.get("dtype") is None:
                            kwargs = {**kwargs, "dtype": torch.float32}
                    elif args[slot] is None:
                        args = (*args[:slot], torch.float32, *args[slot + 1 :])
            elif policy == "fp32_append_dtype":
                first = args[0]
                dtype = torch.float32 if _eligible(first) else first.dtype
                return target(*args, **kwargs, dtype=dtype)
            return target(*args, **kwargs)

    return kernel


# the ops that both devices run in the low dtype keep CPU's own kernel (same casts, same cache)
def _kept_on_cpu() -> frozenset[str]:
    return frozenset(n for n, p in CUDA_AUTOCAST_POLICY.items() if p == "lower") & autocast_cpu_ops()


def _register() -> torch.library.Library:
    missing, unlisted = check_cuda_lists()
    if missing or unlisted:  # another torch: its CUDA lists moved
        log.warning(
            "CUDA autocast lists are torch %s's; this torch %s differs (not registered here: %s; "
            "not listed: %s): those ops keep CPU autocast's behaviour",
            CUDA_POLICY_TORCH, torch.__version__, sorted(missing), sorted(unlisted),
        )  # fmt: skip
    kept = _kept_on_cpu()
    plan: dict[str, str] = {n: "pass" for n in autocast_cpu_ops() if n not in CUDA_AUTOCAST_POLICY}
    registered = autocast_cuda_ops()
    plan.update({n: p for n, p in CUDA_AUTOCAST_POLICY.items() if n not in kept and n in registered})
    lib = torch.library.Library("aten", "IMPL")  # kernels for an existing key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
        for name, policy in sorted(plan.items()):
            lib.impl(name, _kernel(name, policy), "AutocastCPU", with_keyset=True)
    log.debug("CUDA autocast policy: %d AutocastCPU kernels in place, %d kept", len(plan), len(kept))
    return lib


_OVERRIDES = KernelOverrides(_register)


@contextlib.contextmanager
def cuda_autocast_policy() -> Iterator[None]:
    """Make CPU autocast follow CUDA's op lists while inside (see the module docstring).

    It changes nothing until CPU autocast is entered (``torch.autocast("cpu", dtype=…)``, as a
    plan's bf16/fp16 cut does); the autocast dtype is CPU's (set it to the target's). Nested
    uses share one registration; leaving the outermost restores torch's own CPU kernels.
    """
    autocast_cpu_ops()  # read torch's own set before anything is registered over it
    with _OVERRIDES.active():
        yield
