"""The CUDA autocast policy on fake CPU tensors matches real CUDA autocast, op by op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from profilers.simulate.autocast import (
    CUDA_AUTOCAST_POLICY,
    autocast_cpu_ops,
    autocast_policy_label,
    check_cuda_lists,
    cuda_autocast_policy,
)

Make = Callable[..., torch.Tensor]  # make(*shape, dtype=…) → a tensor on the device under test

BF, FP = torch.bfloat16, torch.float32

# op → (what it computes from ``make``); each is run with the inputs in fp32 and in bf16 (and
# mixed, for two-input ops), as a model meets them under autocast
CASES: dict[str, Callable[[Make, torch.dtype, torch.dtype], Any]] = {
    "mm": lambda m, a, b: torch.mm(m(4, 8, dtype=a), m(8, 6, dtype=b)),
    "addmm": lambda m, a, b: torch.addmm(m(6, dtype=a), m(4, 8, dtype=a), m(8, 6, dtype=b)),
    "bmm": lambda m, a, b: torch.bmm(m(2, 4, 8, dtype=a), m(2, 8, 6, dtype=b)),
    "baddbmm": lambda m, a, b: torch.baddbmm(m(2, 4, 6, dtype=a), m(2, 4, 8, dtype=a), m(2, 8, 6, dtype=b)),
    "linear": lambda m, a, b: F.linear(m(4, 8, dtype=a), m(6, 8, dtype=b), m(6, dtype=b)),
    "matmul": lambda m, a, b: torch.matmul(m(2, 4, 8, dtype=a), m(8, 6, dtype=b)),
    "einsum": lambda m, a, b: torch.einsum("bij,jk->bik", m(2, 4, 8, dtype=a), m(8, 6, dtype=b)),
    "sdpa": lambda m, a, b: F.scaled_dot_product_attention(
        m(1, 2, 4, 8, dtype=a), m(1, 2, 4, 8, dtype=b), m(1, 2, 4, 8, dtype=b), is_causal=True
    ),
    "softmax": lambda m, a, b: torch.softmax(m(4, 8, dtype=a), -1),
    "log_softmax": lambda m, a, b: F.log_softmax(m(4, 8, dtype=a), -1),
    "layer_norm": lambda m, a, b: F.layer_norm(m(4, 8, dtype=a), (8,), m(8, dtype=b), m(8, dtype=b)),
    "rms_norm": lambda m, a, b: F.rms_norm(m(4, 8, dtype=a), (8,), m(8, dtype=b)),
    "group_norm": lambda m, a, b: F.group_norm(m(2, 4, 3, dtype=a), 2),
    "cross_entropy": lambda m, a, b: F.cross_entropy(m(4, 8, dtype=a), m(4, dtype=torch.long)),
    "nll_loss": lambda m, a, b: F.nll_loss(m(4, 8, dtype=a), m(4, dtype=torch.long)),
    "mse_loss": lambda m, a, b: F.mse_loss(m(4, 8, dtype=a), m(4, 8, dtype=b)),
    "bce_with_logits": lambda m, a, b: F.binary_cross_entropy_with_logits(m(4, dtype=a), m(4, dtype=b)),
    "pow": lambda m, a, b: m(4, 8, dtype=a).pow(2),
    "pow_tensor": lambda m, a, b: torch.pow(m(4, 8, dtype=a), m(4, 8, dtype=b)),
    "sum": lambda m, a, b: m(4, 8, dtype=a).sum(),
    "sum_dim": lambda m, a, b: m(4, 8, dtype=a).sum(-1, keepdim=True),
    "sum_dtype": lambda m, a, b: m(4, 8, dtype=a).sum(-1, dtype=torch.bfloat16),
    "mean": lambda m, a, b: m(4, 8, dtype=a).mean(-1),
    "cumsum": lambda m, a, b: m(4, 8, dtype=a).cumsum(-1),
    "prod": lambda m, a, b: m(4, 8, dtype=a).prod(-1),
    "exp": lambda m, a, b: m(4, 8, dtype=a).exp(),
    "log": lambda m, a, b: m(4, 8, dtype=a).log(),
    "rsqrt": lambda m, a, b: m(4, 8, dtype=a).rsqrt(),
    "reciprocal": lambda m, a, b: m(4, 8, dtype=a).reciprocal(),
    "logsumexp": lambda m, a, b: m(4, 8, dtype=a).logsumexp(-1),
    "softplus": lambda m, a, b: F.softplus(m(4, 8, dtype=a)),
    "norm": lambda m, a, b: m(4, 8, dtype=a).norm(),
    "norm_dim": lambda m, a, b: m(4, 8, dtype=a).norm(dim=-1),
    "vector_norm": lambda m, a, b: torch.linalg.vector_norm(m(4, 8, dtype=a), dim=-1),
    "addcmul": lambda m, a, b: torch.addcmul(m(4, 8, dtype=a), m(4, 8, dtype=b), m(4, 8, dtype=a)),
    "addcdiv": lambda m, a, b: torch.addcdiv(m(4, 8, dtype=a), m(4, 8, dtype=b), m(4, 8, dtype=a)),
    "dot": lambda m, a, b: torch.dot(m(8, dtype=a), m(8, dtype=b)),
    "cat": lambda m, a, b: torch.cat([m(4, 8, dtype=a), m(4, 8, dtype=b)]),
    "stack": lambda m, a, b: torch.stack([m(4, 8, dtype=a), m(4, 8, dtype=b)]),
    "mul": lambda m, a, b: m(4, 8, dtype=a) * m(4, 8, dtype=b),
    "add": lambda m, a, b: m(4, 8, dtype=a) + m(4, 8, dtype=b),
    "embedding": lambda m, a, b: F.embedding(m(4, dtype=torch.long), m(10, 8, dtype=b)),
    "gelu": lambda m, a, b: F.gelu(m(4, 8, dtype=a)),
    "gelu_tanh": lambda m, a, b: F.gelu(m(4, 8, dtype=a), approximate="tanh"),
    "silu": lambda m, a, b: F.silu(m(4, 8, dtype=a)),
    "tanh": lambda m, a, b: torch.tanh(m(4, 8, dtype=a)),
    "dropout": lambda m, a, b: F.dropout(m(4, 8, dtype=a), 0.1, training=True),
    "conv1d": lambda m, a, b: F.conv1d(m(1, 4, 8, dtype=a), m(6, 4, 3, dtype=b)),
    "conv2d": lambda m, a, b: F.conv2d(m(1, 3, 8, 8, dtype=a), m(4, 3, 3, 3, dtype=b)),
    "mv": lambda m, a, b: torch.mv(m(4, 8, dtype=a), m(8, dtype=b)),
}
DTYPES = [(FP, FP), (BF, BF), (BF, FP), (FP, BF)]


def _dtypes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.dtype
    return tuple(_dtypes(o) for o in out)


def _maker(device: str, grad: bool) -> Make:
    def make(*shape: int, dtype: torch.dtype) -> torch.Tensor:
        if dtype is torch.long:
            return torch.zeros(shape, dtype=dtype, device=device)
        t = torch.rand(shape, dtype=dtype, device=device) + 0.5
        return t.requires_grad_(grad)

    return make


def _on_fake_cuda(case: Callable[..., Any], a: torch.dtype, b: torch.dtype, low: torch.dtype) -> Any:
    """Real CUDA autocast, on fake cuda tensors, without autograd (which works on a CPU build)."""
    prev_dtype, prev_on = torch.get_autocast_dtype("cuda"), torch.is_autocast_enabled("cuda")
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
        torch.set_autocast_dtype("cuda", low)
        torch.set_autocast_enabled("cuda", True)
        try:
            return _dtypes(case(_maker("cuda", False), a, b))
        finally:
            torch.set_autocast_enabled("cuda", prev_on)
            torch.set_autocast_dtype("cuda", prev_dtype)


def _under_shim(case: Callable[..., Any], a: torch.dtype, b: torch.dtype, low: torch.dtype) -> Any:
    """CPU autocast following CUDA's lists, on fake cpu tensors, with autograd recording."""
    with FakeTensorMode(allow_non_fake_inputs=True), cuda_autocast_policy():
        with torch.autocast("cpu", dtype=low):
            return _dtypes(case(_maker("cpu", True), a, b))


def _under_cpu_autocast(case: Callable[..., Any], a: torch.dtype, b: torch.dtype, low: torch.dtype) -> Any:
    with FakeTensorMode(allow_non_fake_inputs=True), torch.autocast("cpu", dtype=low):
        return _dtypes(case(_maker("cpu", True), a, b))


@pytest.mark.parametrize("low", [BF, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_shim_output_dtypes_equal_real_cuda_autocast(name: str, low: torch.dtype) -> None:
    case = CASES[name]
    for a, b in DTYPES:
        if low is torch.float16:
            a = torch.float16 if a is BF else a
            b = torch.float16 if b is BF else b
        expected = _on_fake_cuda(case, a, b, low)
        assert _under_shim(case, a, b, low) == expected, (name, a, b)


class _OpTrace(TorchDispatchMode):
    """The aten ops that ran below autocast and autograd, with their output dtypes."""

    SKIP = ("aten::rand", "aten::add.Tensor", "aten::zeros", "aten::empty_strided", "aten::detach")

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, Any]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.name()
        if not name.startswith("prim::") and name not in self.SKIP:
            self.ops.append((name, _dtypes(out) if isinstance(out, (torch.Tensor, tuple)) else None))
        return out


# CUDA picks its own kernels for these (fused dropout; SDPA's math path for fake cuda tensors)
_OWN_KERNELS = ("dropout", "sdpa")


@pytest.mark.parametrize("name", sorted(set(CASES) - set(_OWN_KERNELS)))
def test_shim_runs_the_same_ops_in_the_same_dtypes_as_cuda_autocast(name: str) -> None:
    """Every cast and every inner op of a composite (cross_entropy → log_softmax in the logits'
    dtype, then nll_loss in fp32) happens as under real CUDA autocast."""
    case = CASES[name]
    for a, b in DTYPES:
        prev = torch.is_autocast_enabled("cuda")
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
            torch.set_autocast_dtype("cuda", BF)
            torch.set_autocast_enabled("cuda", True)
            try:
                make = _maker("cuda", False)
                with _OpTrace() as cuda:
                    case(make, a, b)
            finally:
                torch.set_autocast_enabled("cuda", prev)
        with FakeTensorMode(allow_non_fake_inputs=True), cuda_autocast_policy():
            with torch.autocast("cpu", dtype=BF), _OpTrace() as shim:
                case(_maker("cpu", True), a, b)
        assert shim.ops == cuda.ops, (name, a, b)


def test_cpu_autocast_differs_from_cuda_where_the_issue_says() -> None:
    # the reason for the shim: CPU autocast keeps these in bf16, CUDA runs them in fp32
    for name in ("softmax", "layer_norm", "pow", "sum", "exp"):
        assert _under_cpu_autocast(CASES[name], BF, BF, BF) == BF
        assert _on_fake_cuda(CASES[name], BF, BF, BF) == FP


def test_shim_is_gone_after_the_context() -> None:
    with cuda_autocast_policy():
        pass
    assert _under_cpu_autocast(CASES["softmax"], BF, BF, BF) == BF


def test_shim_bans_binary_cross_entropy_as_cuda_does() -> None:
    def bce(m: Make, a: torch.dtype, b: torch.dtype) -> torch.Tensor:
        return F.binary_cross_entropy(m(4, dtype=a).sigmoid(), m(4, dtype=a).sigmoid().detach())

    with pytest.raises(RuntimeError, match="unsafe to autocast"):
        _on_fake_cuda(bce, FP, FP, BF)
    with pytest.raises(RuntimeError, match="unsafe to autocast"):
        _under_shim(bce, FP, FP, BF)


def test_policy_lists_are_the_installed_torchs() -> None:
    # every op with an AutocastCUDA kernel is listed, and nothing else
    assert check_cuda_lists() == (frozenset(), frozenset())
    # the lower-precision ops kept on CPU's own kernels really run in bf16 there
    kept = {n for n, p in CUDA_AUTOCAST_POLICY.items() if p == "lower"} & autocast_cpu_ops()
    assert {"mm", "addmm", "bmm", "baddbmm", "linear", "matmul", "scaled_dot_product_attention"} <= kept
    for name in ("mm", "addmm", "bmm", "baddbmm", "linear", "matmul", "sdpa"):
        assert _under_cpu_autocast(CASES[name], FP, FP, BF) == BF


def test_policy_label_names_the_policy_and_the_torch_version() -> None:
    assert autocast_policy_label("cuda", "cpu") == "cuda policy (torch 2.13)"
    assert autocast_policy_label("cpu", "cpu").startswith("cpu policy (torch ")
    assert autocast_policy_label("cuda", "cuda").startswith("cuda policy (torch ")


def _bert_without_dropout(layers: int, hidden: int, heads: int, vocab: int) -> Any:
    from transformers import BertConfig

    from advisor.models.sources import HFModelSource

    cfg = BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    cfg.architectures = ["BertForMaskedLM"]
    return HFModelSource("bert-no-dropout", cfg)


@pytest.mark.parametrize("layers,hidden,heads,vocab,batch,seq", [(2, 64, 4, 512, 2, 16), (3, 64, 2, 256, 2, 32)])
def test_bert_bf16_for_a_cuda_target_saves_softmax_and_layer_norm_in_fp32(
    layers: int, hidden: int, heads: int, vocab: int, batch: int, seq: int
) -> None:
    from advisor.engines.simulate import simulate
    from profilers.records import SimulationRecord

    source = _bert_without_dropout(layers, hidden, heads, vocab)
    cpu = simulate(source, "eager-attn+bf16", batch, seq, target="cpu", count_cost=False)
    cuda = simulate(source, "eager-attn+bf16", batch, seq, target="cuda", count_cost=False)
    assert cpu.ok and cuda.ok
    assert cuda.simulation is not None and cpu.simulation is not None
    assert cuda.simulation.autocast_policy == "cuda policy (torch 2.13)"
    assert cpu.simulation.autocast_policy is not None and cpu.simulation.autocast_policy.startswith("cpu policy")
    again = SimulationRecord.from_dict(cuda.simulation.to_dict())
    assert again.autocast_policy == cuda.simulation.autocast_policy
    assert again.phase_start_bytes == cuda.simulation.phase_start_bytes
    # what the forward leaves for backward (live bytes when backward begins), from the shapes:
    tokens = batch * seq
    scores = batch * heads * seq * seq
    expected = (
        # each eager softmax keeps its result in fp32 (4 B) beside the bf16 copy the next
        # matmul saves; on CPU one bf16 result serves both
        layers * 4 * scores
        # the MLM head's LayerNorm (after GELU, no residual: its input is bf16) saves an fp32
        # copy of its input (+2 B per element) and fp32 mean and rstd (+2 B each per token)
        + 2 * tokens * hidden
        + 2 * 2 * tokens
        # cross_entropy passes the logits' dtype to log_softmax, so CUDA keeps a bf16 result
        # and nll_loss its fp32 copy; CPU autocast casts once, up front, to one fp32 result
        + 2 * tokens * vocab
    )
    start = "backward"
    diff = cuda.simulation.phase_start_bytes[start] - cpu.simulation.phase_start_bytes[start]
    assert diff == expected
