"""Plans measured for real: one trial per plan on CPU, with the exact tensor-memory tracker.

Sizes are chosen so that each assertion is about a known quantity: at batch 1 × seq 8 the
step's peak falls where every gradient is live (so gradient bytes at the peak are all of
them); at seq 256 activations dominate. Optimizer state exists before the tracked step (the
trial's warm-up step creates it), so it is all counted at any peak.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch

from advisor.api import profile
from advisor.models import resolve_model
from advisor.plans.cuts import parse_plan
from profilers.records import TrialResult, TrialStatus

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_module.py"
TOY_SPEC = f"{TOY}:build"
TOY_TIED_SPEC = f"{TOY}:build_tied"

LLAMA_PARAMS, LLAMA_TENSORS = 3_548_416, 21  # tiny-llama: parameters, parameter tensors
LLAMA_VOCAB_X_HIDDEN = 4096 * 256
TOY_VOCAB_X_HIDDEN = 4096 * 64
TOY_PARAMS = 624_384


@functools.cache
def trial(model: str, plan: str, batch: int = 1, seq: int = 8, steps: int = 0) -> TrialResult:
    """One measured trial (1 warm-up step, ``steps`` timed steps, 1 tracked step), cached
    across tests; memory needs no timed step."""
    result = profile(model, batch_size=batch, seq_len=seq, plan=parse_plan(plan), steps=steps, device="cpu")
    assert result.status is TrialStatus.OK, result.reason
    assert result.tensor_peak is not None and result.params is not None
    return result


def breakdown(model: str, plan: str, batch: int = 1, seq: int = 8):  # type: ignore[no-untyped-def]
    peak = trial(model, plan, batch, seq).tensor_peak
    assert peak is not None
    return peak.breakdown


def param_tensors(model: str) -> list[torch.Tensor]:
    return list(resolve_model(model).build("meta").parameters())


# -- LoRA -------------------------------------------------------------------------------------


def test_lora_trial_trains_the_closed_form_count_under_one_percent() -> None:
    result = trial("tiny-llama", "lora")
    params = result.params
    assert params is not None
    assert params.trainable == 8 * (256 + 256) * 2 + 8 * (256 + 128) * 2 == 14_336
    assert params.total == LLAMA_PARAMS + 14_336
    assert params.trainable_percent < 1.0
    assert result.extra["lora_targets"] == ["q_proj", "v_proj"]
    # only the adapters have gradients and AdamW state (two fp32 moments + a step per tensor)
    b = breakdown("tiny-llama", "lora")
    assert b.optimizer_state_bytes == 8 * 14_336 + 4 * 8  # 8 adapter tensors (A and B × 4)


def test_qlora_trial_runs_on_cpu_with_a_smaller_base() -> None:
    pytest.importorskip("bitsandbytes")
    q = trial("tiny-llama", "qlora")
    lora = trial("tiny-llama", "lora")
    assert q.params is not None and lora.params is not None
    assert q.params.trainable == lora.params.trainable == 14_336
    assert q.params.total == lora.params.total  # 4-bit weights counted as their real elements
    # the 14 block linears' 1,449,984 weights go from 4 bytes to half a byte (two NF4 codes
    # per uint8; the per-block scales live in the quantization state, not in a parameter)
    quantized = 2 * (256 * 256 + 2 * 256 * 128 + 256 * 256 + 3 * 256 * 688)
    assert quantized == 1_449_984
    assert q.params.parameter_bytes == lora.params.parameter_bytes - 4 * quantized + quantized // 2
    assert q.extra["quantized_layers"] == 14 and q.extra["quantized_bits"] == 4


# -- frozen embeddings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "vocab_x_hidden"),
    [
        ("tiny-llama", LLAMA_VOCAB_X_HIDDEN),
        (TOY_SPEC, TOY_VOCAB_X_HIDDEN),
        (TOY_TIED_SPEC, TOY_VOCAB_X_HIDDEN),
    ],
)
def test_frozen_embeddings_cut_gradient_and_optimizer_bytes_at_the_peak(
    model: str, vocab_x_hidden: int
) -> None:
    base, frozen = trial(model, "baseline"), trial(model, "frozen-emb")
    assert base.params is not None and frozen.params is not None
    assert base.params.trainable - frozen.params.trainable == vocab_x_hidden  # tied: counted once
    b, f = breakdown(model, "baseline"), breakdown(model, "frozen-emb")
    assert b.gradient_bytes - f.gradient_bytes == 4 * vocab_x_hidden  # one fp32 gradient
    # two fp32 moments, and AdamW's 4-byte step counter of that one tensor
    assert b.optimizer_state_bytes - f.optimizer_state_bytes == 8 * vocab_x_hidden + 4
    assert b.parameter_bytes == f.parameter_bytes  # frozen, still resident


# -- optimizers --------------------------------------------------------------------------------


def test_sgd_without_momentum_holds_no_optimizer_state() -> None:
    assert breakdown("tiny-llama", "sgd").optimizer_state_bytes == 0
    assert breakdown(TOY_SPEC, "sgd").optimizer_state_bytes == 0
    # with momentum: one fp32 buffer per parameter
    assert breakdown(TOY_SPEC, "sgd(momentum=0.9)").optimizer_state_bytes == 4 * TOY_PARAMS


def test_adamw_holds_two_fp32_moments_per_trainable_parameter() -> None:
    # plus torch's per-tensor ``step`` counter (a 4-byte fp32 scalar tensor on CPU)
    assert breakdown("tiny-llama", "baseline").optimizer_state_bytes == 8 * LLAMA_PARAMS + 4 * LLAMA_TENSORS
    toy = param_tensors(TOY_SPEC)
    toy_params = sum(p.numel() for p in toy)
    assert breakdown(TOY_SPEC, "baseline").optimizer_state_bytes == 8 * toy_params + 4 * len(toy)


def adamw8bit_state_bytes(tensors: list[torch.Tensor], min_8bit_size: int = 4096, block: int = 256) -> int:
    """bitsandbytes' AdamW8bit state: tensors of ≥ ``min_8bit_size`` elements keep two uint8
    moments plus an fp32 absmax per block of 256 for each; smaller ones keep two fp32 moments;
    the two 256-entry fp32 quantization maps are shared by all tensors."""
    total = 2 * 256 * 4
    for t in tensors:
        n = t.numel()
        total += 2 * n + 2 * 4 * math.ceil(n / block) if n >= min_8bit_size else 8 * n
    return total


def test_adamw8bit_holds_about_one_byte_per_moment() -> None:
    pytest.importorskip("bitsandbytes")
    state = breakdown("tiny-llama", "adamw8bit").optimizer_state_bytes
    assert state == adamw8bit_state_bytes(param_tensors("tiny-llama")) == 7_217_408
    # the 5 norm weights (256 elements each) stay 32-bit under bitsandbytes' default
    # min_8bit_size of 4096; everything else is one byte per moment plus 1/64 for the scales
    per_moment = state / (2 * LLAMA_PARAMS)
    assert 1.0 < per_moment < 1.02
    assert state < breakdown("tiny-llama", "baseline").optimizer_state_bytes / 3.9


def test_adafactor_keeps_factored_second_moments_only() -> None:
    expected = 0
    for t in param_tensors(TOY_SPEC):
        factored = 4 * (t.shape[0] + t.shape[1]) if t.dim() == 2 else 4 * t.numel()
        expected += factored + 4  # row + column variances (or the full one for vectors), step
    assert breakdown(TOY_SPEC, "adafactor").optimizer_state_bytes == expected == 49_808
    assert expected < breakdown(TOY_SPEC, "baseline").optimizer_state_bytes / 80


# -- activations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "batch"), [("tiny-llama", 1), (TOY_SPEC, 2)])
def test_grad_ckpt_lowers_the_activation_part_of_the_peak_at_seq_256(model: str, batch: int) -> None:
    base = trial(model, "baseline", batch, 256).tensor_peak
    ckpt = trial(model, "grad-ckpt", batch, 256).tensor_peak
    assert base is not None and ckpt is not None
    assert ckpt.breakdown.activation_bytes < base.breakdown.activation_bytes
    assert ckpt.peak_bytes < base.peak_bytes
    assert ckpt.breakdown.parameter_bytes == base.breakdown.parameter_bytes


# -- precision, accumulation, scratch ------------------------------------------------------------


def test_bf16_weights_halve_parameter_and_state_bytes() -> None:
    b, w = breakdown(TOY_SPEC, "baseline"), breakdown(TOY_SPEC, "bf16-weights")
    tensors = len(param_tensors(TOY_SPEC))
    assert w.parameter_bytes == 2 * TOY_PARAMS == b.parameter_bytes // 2
    assert w.optimizer_state_bytes == 4 * TOY_PARAMS + 4 * tensors  # bf16 moments, fp32 steps


@pytest.mark.parametrize("plan", ["bf16", "fp16"])
def test_autocast_runs_on_cpu(plan: str) -> None:
    result = trial(TOY_SPEC, plan, 2, 16, steps=1)
    assert result.timing is not None
    assert result.extra["autocast"] == {"bf16": "bfloat16", "fp16": "float16"}[plan]


def test_accumulation_runs_micro_batches_of_the_same_total() -> None:
    result = trial(TOY_SPEC, "accum", 4, 16, steps=1)
    assert result.accumulation_steps == 4
    assert result.extra["micro_batch_size"] == 1
    assert result.timing is not None and result.timing.tokens_per_step == 4 * 16


def test_scratch_has_the_same_memory_as_fine_tuning() -> None:
    a, b = trial(TOY_SPEC, "baseline").tensor_peak, trial(TOY_SPEC, "scratch").tensor_peak
    assert a is not None and b is not None
    assert a.peak_bytes == b.peak_bytes


def test_plan_errors_and_unsupported_cuts_become_the_trial_status() -> None:
    bad = profile(
        TOY_SPEC, batch_size=1, seq_len=8, plan=parse_plan("lora(targets=nope)"), steps=0, device="cpu"
    )
    assert bad.status is TrialStatus.ERROR
    assert bad.reason is not None and bad.reason.startswith("PlanError: LoRA target nope match")
    assert "hint:" in bad.reason
    off = profile(TOY_SPEC, batch_size=1, seq_len=8, plan=parse_plan("offload"), steps=0, device="cpu")
    assert off.status is TrialStatus.UNSUPPORTED and "host memory already" in (off.reason or "")


@pytest.mark.gpu
def test_offload_and_bf16_on_cuda() -> None:
    base = profile("tiny-llama", batch_size=2, seq_len=256, steps=1, device="cuda")
    off = profile("tiny-llama", batch_size=2, seq_len=256, plan=parse_plan("offload"), steps=1, device="cuda")
    assert base.ok and off.ok, (base.reason, off.reason)
    assert off.extra["activation_offload"] is True
    assert off.cuda is not None and base.cuda is not None
    assert off.cuda.max_allocated_bytes < base.cuda.max_allocated_bytes
