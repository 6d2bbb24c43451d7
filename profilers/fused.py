"""CPU stand-ins of Liger-Kernel's fused training kernels, with the kernels' memory behaviour.

``liger-kernel`` runs Triton kernels on GPUs only; these autograd Functions compute the same
numbers with plain torch ops and keep exactly what the kernels keep for backward, so a CPU run
(and a fake-tensor replay) shows the kernels' memory. Followed: linkedin/Liger-Kernel
``src/liger_kernel/ops/`` at commit 00eba634c2e9 (``fused_linear_cross_entropy.py``,
``rms_norm.py``, ``swiglu.py``), the 0.6.x line.

* :func:`fused_linear_cross_entropy` — ``LigerFusedLinearCrossEntropyFunction``: the tokens are
  cut into chunks of ``chunk_size = min(next_power_of_2(ceil(BT / ceil(V / H))), BT)`` rows;
  each chunk's logits (``chunk × V`` in the input's dtype) are built, turned into their own
  gradient in place (the CE kernel writes ``softmax − one_hot`` over the logits), and
  projected at once into ``grad_input`` (``BT × H``) and ``grad_weight`` (``V × H``, the
  weight's dtype). Only those two gradients are saved for backward, which scales them by the
  upstream gradient: the full ``BT × V`` logits never exist.
* :class:`RMSNormFunction` — ``LigerRMSNormFunction`` (casting mode ``llama``): saves the
  input ``X``, the weight and ``rstd`` (one float32 per row); backward writes ``dX``.
* :class:`SiLUMulFunction` — ``LigerSiLUMulFunction``: ``silu(a) * b`` saving only ``a`` and
  ``b``; backward recomputes ``silu(a)``.
* :class:`RopeFunction` — ``LigerRopeFunction`` (``rope.py``): q and k are rotated in place in
  their ``(batch, seq, heads, head_dim)`` storage (``.contiguous()`` first: a no-op for the
  ``view(...).transpose(1, 2)`` projections of Llama's attention), so no new q/k tensors are
  allocated; only ``cos`` and ``sin`` are saved (the same storages in every layer); backward
  rotates the incoming ``dq``/``dk`` in place the other way. (``rope.py`` was read at commit
  00fb8bf2b576, the version to hand; ``LigerRopeFunction`` saves ``(cos, sin)`` there.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "LIGER_COMMIT",
    "FusedRMSNorm",
    "FusedSwiGLUMLP",
    "RMSNormFunction",
    "RopeFunction",
    "SiLUMulFunction",
    "fused_linear_ce_chunk_size",
    "fused_linear_cross_entropy",
    "liger_rotary_pos_emb",
]

LIGER_COMMIT = "00eba634c2e9"  # linkedin/Liger-Kernel, the source these stand-ins follow


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def fused_linear_ce_chunk_size(tokens: int, vocab: int, hidden: int) -> int:
    """Rows per chunk as Liger computes it (``chunk_mem_const=1``): transient logits of about
    ``tokens × hidden`` elements."""
    inc_factor = _cdiv(vocab, hidden)
    return min(_next_power_of_2(_cdiv(tokens, inc_factor)), tokens)


class _FusedLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, ignore_index: int
    ) -> torch.Tensor:
        tokens, width = hidden.shape
        vocab = weight.shape[0]
        chunk = fused_linear_ce_chunk_size(tokens, vocab, width)
        grad_input = torch.zeros_like(hidden)
        grad_weight = torch.zeros_like(weight) if weight.requires_grad else None
        loss_1d = torch.zeros(tokens, dtype=torch.float32, device=hidden.device)
        keep = target != ignore_index
        # Liger reads the count with .item(); a replay has no value, so it stays a 0-d tensor
        n_keep = keep.sum().clamp(min=1)
        for start in range(0, tokens, chunk):
            end = min(start + chunk, tokens)
            x = hidden[start:end]
            logits = x @ weight.t()  # chunk × V: the only logits that ever exist
            t = target[start:end]
            k = keep[start:end]
            safe_t = torch.where(k, t, torch.zeros_like(t))
            picked = logits.gather(1, safe_t.unsqueeze(1)).squeeze(1).float()
            # the kernel's online softmax keeps no second chunk: here, in place over the logits
            top = logits.max(dim=1).values
            logits.sub_(top.unsqueeze(1)).exp_()
            total = logits.sum(dim=1)
            lse = top.float() + total.float().log()
            loss_1d[start:end] = torch.where(k, lse - picked, torch.zeros_like(lse))
            # the kernel's in-place gradient: softmax − one_hot, / n_non_ignore, 0 on ignored rows
            logits.div_(total.unsqueeze(1))
            logits.scatter_add_(1, safe_t.unsqueeze(1), -torch.ones_like(picked, dtype=logits.dtype).unsqueeze(1))
            logits.mul_((k.to(logits.dtype) / n_keep.to(logits.dtype)).unsqueeze(1))
            # Liger writes with mm(out=) / addmm_ where the dtypes agree and autocast does not
            # recast; else through a chunk-sized product, as here
            same = not torch.is_autocast_enabled(hidden.device.type) and logits.dtype == hidden.dtype == weight.dtype
            if same:
                torch.mm(logits, weight, out=grad_input[start:end])
            else:
                grad_input[start:end] = logits @ weight
            if grad_weight is not None:
                if same:
                    grad_weight.addmm_(logits.t(), x)
                else:
                    grad_weight.add_(torch.mm(logits.t(), x).to(grad_weight.dtype))
            del logits
        loss = loss_1d.sum() / n_keep
        ctx.save_for_backward(grad_input, grad_weight)
        ctx.has_weight_grad = grad_weight is not None
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Any:  # type: ignore[override]
        grad_input, grad_weight = ctx.saved_tensors
        # Liger scales the saved gradients in place (element_mul_kernel) unless grad_output is 1
        grad_input = grad_input.mul_(grad_output.to(grad_input.dtype))
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(grad_output.to(grad_weight.dtype))
        return grad_input, grad_weight, None, None


def fused_linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``target`` over the non-ignored
    tokens, without building the logits (``hidden``: ``BT × H``; ``target``: ``BT``)."""
    return _FusedLinearCE.apply(hidden, weight, target, ignore_index)  # type: ignore[no-any-return]


class RMSNormFunction(torch.autograd.Function):
    """``weight * (x * rstd)`` with ``rstd = rsqrt(mean(x²) + eps)`` computed in float32."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        x32 = x.to(torch.float32)
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)  # one float32 per row
        y = weight * (x32 * rstd).to(x.dtype)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> Any:  # type: ignore[override]
        x, weight, rstd = ctx.saved_tensors
        x32 = x.to(torch.float32)
        xhat = x32 * rstd
        dyw = dy.to(torch.float32) * weight.to(torch.float32)
        width = x.shape[-1]
        dx = rstd * (dyw - xhat * (dyw * xhat).sum(-1, keepdim=True) / width)
        dw = (dy.to(torch.float32) * xhat).reshape(-1, width).sum(0)
        return dx.to(x.dtype), dw.to(weight.dtype), None


class SiLUMulFunction(torch.autograd.Function):
    """``silu(a) * b``, saving ``a`` and ``b`` only and recomputing ``silu(a)`` in backward."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, b)
        return torch.nn.functional.silu(a) * b

    @staticmethod
    def backward(ctx: Any, dc: torch.Tensor) -> Any:  # type: ignore[override]
        a, b = ctx.saved_tensors
        sig = torch.sigmoid(a)
        silu = a * sig
        db = dc * silu
        da = dc * b * (sig * (1 + a * (1 - sig)))
        return da, db


class FusedRMSNorm(nn.Module):
    """Drop-in for ``LlamaRMSNorm`` (same ``weight``, ``variance_epsilon``) running
    :class:`RMSNormFunction`, as ``LigerRMSNorm`` replaces it."""

    def __init__(self, weight: nn.Parameter, eps: float) -> None:
        super().__init__()
        self.weight = weight
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return RMSNormFunction.apply(hidden_states, self.weight, self.variance_epsilon)  # type: ignore[no-any-return]


class FusedSwiGLUMLP(nn.Module):
    """Drop-in for ``LlamaMLP`` (the same three projections) running :class:`SiLUMulFunction`,
    as ``LigerSwiGLUMLP`` replaces it."""

    def __init__(self, gate_proj: nn.Module, up_proj: nn.Module, down_proj: nn.Module) -> None:
        super().__init__()
        self.gate_proj = gate_proj
        self.up_proj = up_proj
        self.down_proj = down_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(SiLUMulFunction.apply(self.gate_proj(x), self.up_proj(x)))  # type: ignore[no-any-return]


def _rotate_in_place(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> None:
    """``[x1, x2] ← [x1·cos − sign·x2·sin, x2·cos + sign·x1·sin]`` over ``x``'s own storage
    (``x``: ``batch × seq × heads × head_dim``; ``cos``/``sin``: ``batch|1 × seq × head_dim``,
    of which only the left half is read, as the kernel reads it). The kernel works in
    registers; here two half-width temporaries live until they are copied back."""
    half = x.shape[-1] // 2
    c = cos[..., :half].unsqueeze(2)
    s = sin[..., :half].unsqueeze(2)
    x1, x2 = x[..., :half], x[..., half:]
    new1 = x1 * c
    new1.addcmul_(x2, s, value=-sign)
    new2 = x2 * c
    new2.addcmul_(x1, s, value=sign)
    x1.copy_(new1)
    x2.copy_(new2)
    del new1, new2


class RopeFunction(torch.autograd.Function):
    """HF-Llama rotary embedding of one of ``q``/``k`` (``batch × heads × seq × head_dim``), in
    place, saving ``cos`` and ``sin`` only. (Liger's one Function takes q and k together;
    autograd allows a Function that rotates a view in place to return one tensor only, so the
    stand-in is applied to each: the same saved storages, the same in-place rotation.)"""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        cos = cos.contiguous()
        sin = sin.contiguous()
        phys = x.transpose(1, 2)
        if phys.is_contiguous():  # Liger's .contiguous() is a no-op: x itself is rotated
            _rotate_in_place(phys, cos, sin, 1.0)
            ctx.mark_dirty(x)
            out = x
        else:  # Liger rotates a contiguous copy
            phys = phys.contiguous()
            _rotate_in_place(phys, cos, sin, 1.0)
            out = phys.transpose(1, 2)
        ctx.save_for_backward(cos, sin)
        return out

    @staticmethod
    def backward(ctx: Any, dx: torch.Tensor) -> Any:  # type: ignore[override]
        cos, sin = ctx.saved_tensors
        phys = dx.transpose(1, 2).contiguous()  # Liger: dq.transpose(1, 2).contiguous()
        _rotate_in_place(phys, cos, sin, -1.0)
        return phys.transpose(1, 2), None, None


def liger_rotary_pos_emb(
    q: torch.Tensor,
    k: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    unsqueeze_dim: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for transformers' ``apply_rotary_pos_emb`` (Llama family), as Liger's
    ``liger_rotary_pos_emb`` is: ``q``/``k`` in ``batch × heads × seq × head_dim``."""
    if unsqueeze_dim != 1:
        raise ValueError("the fused RoPE stand-in takes q/k as batch × heads × seq × head_dim")
    return RopeFunction.apply(q, cos, sin), RopeFunction.apply(k, cos, sin)
