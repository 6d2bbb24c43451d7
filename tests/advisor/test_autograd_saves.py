"""autograd-saves(version=1.10): the step saves what torch 1.10's autograd saved.

Up to torch 1.10 softmax and log-softmax kept their input for backward beside their output; the
emulation must keep exactly those bytes, release them when the node has run, give the same
gradients, and leave torch's own kernels in place afterwards.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import advisor
from advisor.core.errors import PlanError
from advisor.models.sources import ModuleSource
from advisor.plans import parse_plan
from profilers.autograd_saves import older_autograd_saves, parse_torch_version

pytestmark = pytest.mark.usefixtures("fast_simulations")

B, H, S, D = 2, 4, 64, 16  # the probe's batch, heads, sequence, head size


class SoftmaxProbe(nn.Module):
    """One attention-shaped softmax: ``softmax(q @ kᵀ) @ v`` on parameters, so nothing but the
    scores and the softmax distinguishes the two torch versions."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Parameter(torch.randn(B, H, S, D))
        self.k = nn.Parameter(torch.randn(B, H, D, S))
        self.v = nn.Parameter(torch.randn(B, H, S, D))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.q @ self.k, dim=-1)
        return (probs @ self.v).sum() + 0 * batch.sum()


def _probe() -> ModuleSource:
    return ModuleSource(
        "softmax-probe",
        SoftmaxProbe,
        make_batch=lambda batch_size, seq_len, device: torch.zeros(batch_size, seq_len, device=device),
        loss_fn=lambda model, batch: model(batch),
    )


def _saved(fn):  # type: ignore[no-untyped-def]
    shapes: list[tuple[int, ...]] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return shapes, out


def test_softmax_and_log_softmax_keep_their_input_and_the_gradients_stay_equal() -> None:
    x = torch.randn(3, 5, requires_grad=True)
    now, y_now = _saved(lambda: torch.softmax(2 * x, -1))
    with older_autograd_saves("1.10") as changed:
        then, y_then = _saved(lambda: torch.softmax(2 * x, -1))
        ce_then, _ = _saved(lambda: nn.functional.cross_entropy(2 * x, torch.tensor([0, 1, 2])))
    assert changed == ("SoftmaxBackward0", "LogSoftmaxBackward0")
    assert now == [(3, 5)] and then == [(3, 5), (3, 5)]  # the output; then the input too
    assert ce_then[:2] == [(3, 5), (3, 5)]  # log-softmax: input and output
    (g_now,) = torch.autograd.grad(y_now[:, 0].sum(), x)
    (g_then,) = torch.autograd.grad(y_then[:, 0].sum(), x)
    torch.testing.assert_close(g_then, g_now)
    after, y_after = _saved(lambda: torch.softmax(2 * x, -1))
    assert after == [(3, 5)] and type(y_after.grad_fn).__name__ == "SoftmaxBackward0"


def test_later_torch_versions_change_nothing_and_bad_versions_are_refused() -> None:
    with older_autograd_saves("1.11.0") as changed:
        assert changed == ()
        x = torch.randn(2, 2, requires_grad=True)
        assert type(torch.softmax(x, -1).grad_fn).__name__ == "SoftmaxBackward0"
    assert parse_torch_version("2.1.0+cu121") == (2, 1)
    with pytest.raises(ValueError, match="not a torch version"):
        parse_torch_version("ten")
    with pytest.raises(PlanError, match="autograd-saves"):
        parse_plan("autograd-saves(version=latest)")


def test_the_replayed_peak_rises_by_the_scores_softmax_kept() -> None:
    """Without the cut the scores die once softmax has run; with it they live until softmax's
    backward, through the peak: exactly one B × H × S × S float32 tensor more."""
    kwargs = dict(batch_size=1, seq_len=8, target="cpu")
    now = advisor.simulate(_probe(), "sgd", **kwargs)
    then = advisor.simulate(_probe(), "sgd+autograd-saves(version=1.10)", **kwargs)
    same = advisor.simulate(_probe(), "sgd+autograd-saves(version=1.12)", **kwargs)
    assert now.tensor_peak is not None and then.tensor_peak is not None and same.tensor_peak is not None
    assert then.tensor_peak.peak_bytes - now.tensor_peak.peak_bytes == B * H * S * S * 4
    assert same.tensor_peak.peak_bytes == now.tensor_peak.peak_bytes
    measured = advisor.profile(_probe(), plan=parse_plan("sgd+autograd-saves(version=1.10)"), device="cpu",
                               steps=0, **{k: v for k, v in kwargs.items() if k != "target"})  # fmt: skip
    assert measured.tensor_peak is not None
    assert measured.tensor_peak.peak_bytes == then.tensor_peak.peak_bytes


def test_the_estimate_counts_the_kept_scores_of_eager_attention() -> None:
    plan = "eager-attn+sgd"
    now = advisor.estimate_peak("tiny-llama", parse_plan(plan), batch_size=2, seq_len=64, target="cpu")
    then = advisor.estimate_peak(
        "tiny-llama", parse_plan(plan + "+autograd-saves(version=1.10)"), batch_size=2, seq_len=64, target="cpu"
    )
    assert then.peak_bytes > now.peak_bytes


@pytest.mark.slow  # ~5 s: two replays of an 8-layer model
def test_the_repeat_extrapolation_stays_exact() -> None:
    from advisor.engines.simulate import simulate
    from tests.small_models import bert

    source = bert(8, "BertForSequenceClassification")
    plan = "eager-attn+autograd-saves(version=1.10)"
    fast = simulate(source, plan, 2, 32, target="cuda")
    full = simulate(source, plan, 2, 32, target="cuda", extrapolate=False)
    now = simulate(source, "eager-attn", 2, 32, target="cuda", extrapolate=False)
    assert fast.ok and full.ok and now.ok, (fast.reason, full.reason, now.reason)
    assert fast.simulation is not None and fast.simulation.repeats is not None
    assert fast.simulation.repeats.extrapolated
    assert fast.tensor_peak == full.tensor_peak
    assert full.tensor_peak is not None and now.tensor_peak is not None
    assert full.tensor_peak.peak_bytes > now.tensor_peak.peak_bytes


def test_label_and_code() -> None:
    plan = parse_plan("autograd-saves(version=1.10)")
    assert plan.cuts[0].params() == {}  # 1.10 is the default: the version that differs
    assert parse_plan("autograd-saves(version=1.9)").name == "autograd-saves(version=1.9)"
