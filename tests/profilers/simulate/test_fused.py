"""Liger-style fused-kernel stand-ins: what they save for backward (counted on a real CPU run
against the figure derived from shapes), their numerics against the eager modules, and the
replay of the fused cuts against the measured CPU step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn

from profilers.fused import (
    FusedRMSNorm,
    FusedSwiGLUMLP,
    fused_linear_ce_chunk_size,
    fused_linear_cross_entropy,
    liger_rotary_pos_emb,
)

pytestmark = pytest.mark.usefixtures("fast_simulations")


@contextmanager
def saved_bytes(exclude: tuple[torch.Tensor, ...] = ()) -> Iterator[list[int]]:
    """Bytes of each distinct storage autograd saves for backward (parameters left out)."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}
    out: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = int(t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield out
    out.append(sum(seen.values()))


def test_chunk_size_follows_liger() -> None:
    # Liger's own comment: BT = 4096*4, V = 32000, H = 4096 → inc_factor 8, chunk 2048
    assert fused_linear_ce_chunk_size(4096 * 4, 32000, 4096) == 2048
    # Llama-3.2-1B at 8192 tokens: ceil(128256 / 2048) = 63, ceil(8192 / 63) = 131 → 256
    assert fused_linear_ce_chunk_size(8192, 128256, 2048) == 256
    assert fused_linear_ce_chunk_size(5, 10, 64) == 5  # one chunk, never above BT


def _ce_inputs(tokens: int = 64, width: int = 8, vocab: int = 100) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, width, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(vocab, width, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, vocab, (tokens,), generator=gen)
    target[::5] = -100  # ignored positions, as the shifted labels have
    return hidden, weight, target


def test_fused_linear_ce_equals_linear_then_cross_entropy() -> None:
    hidden, weight, target = _ce_inputs()
    assert fused_linear_ce_chunk_size(64, 100, 8) == 8  # 8 chunks: the chunking is exercised
    fused = fused_linear_cross_entropy(hidden, weight, target)
    (g_h, g_w) = torch.autograd.grad(fused * 3.0, (hidden, weight))
    eager = nn.functional.cross_entropy(hidden @ weight.t(), target, ignore_index=-100)
    (e_h, e_w) = torch.autograd.grad(eager * 3.0, (hidden, weight))
    torch.testing.assert_close(fused, eager.float())  # Liger returns the float32 loss
    torch.testing.assert_close(g_h, e_h)
    torch.testing.assert_close(g_w, e_w)


def test_fused_linear_ce_saves_only_the_input_and_weight_gradients() -> None:
    tokens, width, vocab = 64, 8, 100
    hidden, weight, target = (t.detach().float() if t.is_floating_point() else t for t in _ce_inputs())
    hidden.requires_grad_(True)
    weight.requires_grad_(True)
    with saved_bytes(exclude=(weight,)) as fused:
        fused_linear_cross_entropy(hidden, weight, target)
    # Liger saves grad_input (BT × H) and grad_weight (V × H), float32 here; no logits
    assert fused[0] == tokens * width * 4 + vocab * width * 4
    with saved_bytes(exclude=(weight,)) as eager:
        nn.functional.cross_entropy(hidden @ weight.t(), target)
    assert eager[0] >= tokens * vocab * 4  # the eager path keeps at least the log-softmax


def test_fused_rmsnorm_saves_x_and_one_float_per_row_and_matches_llama() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    rows, width = 24, 32
    eager = LlamaRMSNorm(width, eps=1e-5)
    with torch.no_grad():
        eager.weight.uniform_(0.5, 1.5)
    fused = FusedRMSNorm(eager.weight, 1e-5)
    x = torch.randn(2, rows // 2, width, requires_grad=True)
    with saved_bytes(exclude=(eager.weight,)) as fused_saved:
        y = fused(x)
    assert fused_saved[0] == rows * width * 4 + rows * 4  # X and rstd (float32 per row)
    (g_x, g_w) = torch.autograd.grad(y.square().sum(), (x, eager.weight))
    with saved_bytes(exclude=(eager.weight,)) as eager_saved:
        y_e = eager(x)
    (e_x, e_w) = torch.autograd.grad(y_e.square().sum(), (x, eager.weight))
    torch.testing.assert_close(y, y_e)
    torch.testing.assert_close(g_x, e_x)
    torch.testing.assert_close(g_w, e_w)
    assert eager_saved[0] > fused_saved[0]  # the eager norm keeps its float32 products too


def test_fused_swiglu_saves_gate_and_up_only_and_matches_llama_mlp() -> None:
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    torch.manual_seed(0)
    eager = LlamaMLP(LlamaConfig(hidden_size=16, intermediate_size=40, num_attention_heads=2, num_key_value_heads=2, hidden_act="silu"))
    fused = FusedSwiGLUMLP(eager.gate_proj, eager.up_proj, eager.down_proj)
    params = tuple(eager.parameters())
    tokens = 2 * 6
    x = torch.randn(2, 6, 16, requires_grad=True)
    with saved_bytes(exclude=params) as fused_saved:
        y = fused(x)
    grads = torch.autograd.grad(y.square().sum(), (x, *params))
    with saved_bytes(exclude=params) as eager_saved:
        y_e = eager(x)
    e_grads = torch.autograd.grad(y_e.square().sum(), (x, *params))
    torch.testing.assert_close(y, y_e)
    for got, want in zip(grads, e_grads, strict=True):
        torch.testing.assert_close(got, want)
    inter = tokens * 40 * 4
    # both keep x (gate/up weight grads) and silu(gate) * up (down_proj's weight grad); the
    # fused MLP keeps gate and up, the eager one also silu(gate): one tokens × intermediate
    # float32 tensor more
    assert fused_saved[0] == tokens * 16 * 4 + 3 * inter
    assert eager_saved[0] == fused_saved[0] + inter


def test_fused_loss_equals_the_model_loss_on_tiny_llama() -> None:
    from advisor.models import resolve_model
    from advisor.plans.cuts.fused import fused_causal_lm_loss

    source = resolve_model("tiny-llama")
    torch.manual_seed(0)
    model = source.build("cpu", pretrained=False)
    batch = source.make_batch(2, 16, "cpu")
    batch["labels"][0, :3] = -100
    torch.testing.assert_close(fused_causal_lm_loss(model, batch), model(**batch).loss)


@pytest.mark.parametrize(
    "plan_name",
    [
        "fused-linear-ce",
        "fused-rmsnorm",
        "fused-swiglu",
        "grad-ckpt+fused-linear-ce+fused-swiglu",
        "bf16+fused-linear-ce",
        "fused-rope",
        "grad-ckpt+fused-rope",
    ],
)
def test_fused_cuts_simulated_as_measured(plan_name: str, cpu_truth: Any, simulated_as_measured: Any) -> None:
    measured, simulated = cpu_truth("tiny-llama", plan_name, batch=2, seq=256)
    simulated_as_measured(measured, simulated)


def test_fused_linear_ce_lowers_the_measured_peak_where_logits_dominate(cpu_truth: Any) -> None:
    base, _ = cpu_truth("tiny-llama", "grad-ckpt", batch=2, seq=256)
    fused, _ = cpu_truth("tiny-llama", "grad-ckpt+fused-linear-ce", batch=2, seq=256)
    assert fused.tensor_peak.peak_bytes < base.tensor_peak.peak_bytes


def _rope_inputs(dtype: torch.dtype = torch.float64) -> tuple[Any, ...]:
    """x, the q/k projection weights and Llama's own cos/sin for a GQA layout."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    gen = torch.Generator().manual_seed(0)
    batch, seq, heads, kv_heads, head_dim, width = 2, 6, 4, 2, 8, 16
    x = torch.randn(batch, seq, width, generator=gen, dtype=dtype, requires_grad=True)
    wq = torch.randn(heads * head_dim, width, generator=gen, dtype=dtype, requires_grad=True)
    wk = torch.randn(kv_heads * head_dim, width, generator=gen, dtype=dtype, requires_grad=True)
    cfg = LlamaConfig(hidden_size=heads * head_dim, num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim)
    cos, sin = LlamaRotaryEmbedding(cfg)(x, torch.arange(seq).expand(batch, seq))
    shape = (batch, seq, heads, kv_heads, head_dim)
    return x, wq, wk, cos, sin, shape


def _project(x: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k as LlamaAttention builds them: ``view(...).transpose(1, 2)`` of the projections."""
    batch, seq, _, _, head_dim = shape
    q = (x @ wq.t()).view(batch, seq, -1, head_dim).transpose(1, 2)
    k = (x @ wk.t()).view(batch, seq, -1, head_dim).transpose(1, 2)
    return q, k


def test_fused_rope_matches_llama_apply_rotary_pos_emb() -> None:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    x, wq, wk, cos, sin, shape = _rope_inputs()

    def run(fn: Any) -> list[torch.Tensor]:
        q_e, k_e = fn(*_project(x, wq, wk, shape), cos, sin)
        out = q_e.square().sum() + k_e.sum() * q_e.sum()  # q and k gradients both non-trivial
        return [q_e, k_e, *torch.autograd.grad(out, (x, wq, wk))]

    for got, want in zip(run(liger_rotary_pos_emb), run(apply_rotary_pos_emb), strict=True):
        torch.testing.assert_close(got, want)


def test_fused_rope_rotates_in_place_and_saves_cos_sin_only() -> None:
    x, wq, wk, cos, sin, shape = _rope_inputs(torch.float32)
    batch, seq, _, _, head_dim = shape
    q, k = _project(x, wq, wk, shape)
    q_ptr, k_ptr = q.data_ptr(), k.data_ptr()
    with saved_bytes(exclude=(x, wq, wk)) as fused:
        q_e, k_e = liger_rotary_pos_emb(q, k, cos, sin)
    # Liger's kernel writes into q/k's own storage: no new tensors
    assert (q_e.data_ptr(), k_e.data_ptr()) == (q_ptr, k_ptr)
    # saved: cos and sin (batch × seq × head_dim, float32), once though q and k both save them
    assert fused[0] == 2 * batch * seq * head_dim * 4
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    q, k = _project(x, wq, wk, shape)
    q_e2, _ = apply_rotary_pos_emb(q, k, cos, sin)
    assert q_e2.data_ptr() != q.data_ptr()  # the eager rotation allocates q_embed / k_embed


@pytest.mark.slow
def test_fused_rope_lowers_the_measured_forward_transients(cpu_truth: Any) -> None:
    """Both rotations save only cos/sin; the eager one also builds q_embed/k_embed and its
    rotate_half temporaries beside q/k, so the fused step's peak is not above the eager one
    and the stand-in ran in every attention layer (tiny-llama has 2)."""
    base, _ = cpu_truth("tiny-llama", "baseline", batch=2, seq=256)
    fused, _ = cpu_truth("tiny-llama", "fused-rope", batch=2, seq=256)
    assert fused.extra["fused_rope_modules"] == 2
    assert fused.tensor_peak.peak_bytes <= base.tensor_peak.peak_bytes
