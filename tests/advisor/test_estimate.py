"""Closed-form estimates: exact arithmetic for parameters and optimizer state, and close to the
measured CPU peak of the tiny models."""

from __future__ import annotations

import time

import pytest
import torch

from advisor.core.errors import AdvisorError, InvalidInputError
from advisor.engines.estimate import EstimatedPeak, estimate_peak
from advisor.models import resolve_model
from advisor.plans import Plan
from profilers.records import Provenance

# tiny-llama: vocab 4096, hidden 256, intermediate 688, 2 layers, 4 heads, 2 kv heads, untied
LLAMA_PARAMS = 3_548_416
LLAMA_TENSORS = 21


def test_parameters_gradients_and_adamw_state_are_exact() -> None:
    e = estimate_peak("tiny-llama", "baseline", batch_size=1, seq_len=16, target="cpu")
    assert e.params.total == LLAMA_PARAMS == e.params.trainable
    assert e.params.provenance is Provenance.ESTIMATED
    assert e.breakdown.parameter_bytes == 4 * LLAMA_PARAMS
    # AdamW: two fp32 moments per element and a 4-byte step per tensor
    assert e.breakdown.optimizer_state_bytes == 8 * LLAMA_PARAMS + 4 * LLAMA_TENSORS


def test_optimizers_state() -> None:
    sgd = estimate_peak("tiny-llama", "sgd", batch_size=1, seq_len=16, target="cpu")
    momentum = estimate_peak("tiny-llama", "sgd(momentum=0.9)", batch_size=1, seq_len=16, target="cpu")
    ada = estimate_peak("tiny-llama", "adafactor", batch_size=1, seq_len=16, target="cpu")
    eight = estimate_peak("tiny-llama", "adamw8bit", batch_size=1, seq_len=16, target="cpu")
    assert sgd.breakdown.optimizer_state_bytes == 0
    assert momentum.breakdown.optimizer_state_bytes == 4 * LLAMA_PARAMS
    assert 0 < ada.breakdown.optimizer_state_bytes < LLAMA_PARAMS  # factored: rows + cols
    assert 2 * LLAMA_PARAMS < eight.breakdown.optimizer_state_bytes < 3 * LLAMA_PARAMS


def test_lora_counts_adapters_and_freezes_the_base() -> None:
    e = estimate_peak("tiny-llama", "lora", batch_size=2, seq_len=32, target="cpu")
    # q_proj 256→256 and v_proj 256→128 in 2 layers, r=8: r × (in + out) each
    adapters = 2 * (8 * (256 + 256) + 8 * (256 + 128))
    assert e.params.trainable == adapters
    assert e.params.total == LLAMA_PARAMS + adapters
    assert e.breakdown.optimizer_state_bytes == 8 * adapters + 4 * 8


def test_bf16_weights_and_qlora_shrink_parameters() -> None:
    base = estimate_peak("tiny-llama", None, batch_size=1, seq_len=16, target="cpu").breakdown.parameter_bytes
    half = estimate_peak("tiny-llama", "bf16-weights", batch_size=1, seq_len=16, target="cpu").breakdown.parameter_bytes
    q4 = estimate_peak("tiny-llama", "qlora", batch_size=1, seq_len=16, target="cuda").breakdown.parameter_bytes
    assert half == base // 2
    block_linears = 2 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 688)  # quantized; embeddings stay fp32
    assert 0.8 * 4 * block_linears < base - q4 < 4 * block_linears


def test_the_parts_add_up_and_convert_to_a_tensor_peak() -> None:
    e = estimate_peak("tiny-gpt2", "lora+grad-ckpt", batch_size=2, seq_len=64)
    assert isinstance(e, EstimatedPeak)
    assert e.breakdown.total_bytes == e.peak_bytes
    assert e.provenance is Provenance.ESTIMATED
    peak = e.tensor_peak()
    assert peak.peak_bytes == e.peak_bytes and peak.provenance is Provenance.ESTIMATED
    assert e.to_dict()["breakdown"]["total_bytes"] == e.peak_bytes
    assert e.plan == "grad-ckpt+lora" and e.target == "cuda"  # the plan's canonical name


@pytest.mark.parametrize(
    ("model", "plan"),
    [("tiny-llama", "baseline"), ("tiny-gpt2", "lora"), ("tiny-bert", "grad-ckpt")],
)
def test_close_to_the_measured_cpu_peak(model: str, plan: str) -> None:
    import advisor
    from advisor.plans.cuts import parse_plan

    measured = advisor.profile(model, batch_size=2, seq_len=32, plan=parse_plan(plan), device="cpu", steps=0)
    assert measured.ok and measured.tensor_peak is not None, measured.reason
    truth = measured.tensor_peak.peak_bytes
    e = estimate_peak(model, plan, batch_size=2, seq_len=32, target="cpu")
    assert abs(e.peak_bytes - truth) / truth < 0.03, (e.peak_bytes, truth)


def test_memory_savers_save_memory_on_a_big_preset_quickly() -> None:
    estimate_peak("llama-3.1-8b", None, batch_size=1, seq_len=2048)  # build once (imports, config)
    started = time.perf_counter()
    base = estimate_peak("llama-3.1-8b", None, batch_size=4, seq_len=2048)
    lora = estimate_peak("llama-3.1-8b", "lora", batch_size=4, seq_len=2048)
    ckpt = estimate_peak("llama-3.1-8b", "grad-ckpt", batch_size=4, seq_len=2048)
    both = estimate_peak("llama-3.1-8b", "lora+grad-ckpt+bf16", batch_size=4, seq_len=2048)
    assert time.perf_counter() - started < 5.0
    assert base.params.total == 8_030_261_248
    assert base.peak_bytes > ckpt.peak_bytes > both.peak_bytes
    assert base.peak_bytes > lora.peak_bytes > both.peak_bytes
    assert base.breakdown.optimizer_state_bytes >= 8 * base.params.total  # two fp32 moments


def test_accumulation_divides_activations_but_keeps_gradients() -> None:
    full = estimate_peak("tiny-llama", None, batch_size=8, seq_len=128, target="cpu")
    accum = estimate_peak("tiny-llama", "accum(steps=4)", batch_size=8, seq_len=128, target="cpu")
    assert accum.accumulation_steps == 4 and accum.batch_size == 8
    assert accum.breakdown.activation_bytes < full.breakdown.activation_bytes / 2
    assert accum.breakdown.gradient_bytes == accum.params.trainable_bytes


def test_configs_and_plain_modules() -> None:
    source = resolve_model("tiny-llama")
    from_config = estimate_peak(source.config, None, batch_size=2, seq_len=32, target="cpu")  # type: ignore[attr-defined]
    from_dict = estimate_peak(source.config.to_dict(), None, batch_size=2, seq_len=32, target="cpu")  # type: ignore[attr-defined]
    from_name = estimate_peak("tiny-llama", None, batch_size=2, seq_len=32, target="cpu")
    assert from_config.peak_bytes == from_dict.peak_bytes == from_name.peak_bytes

    plain = estimate_peak("tests/fixtures/plain_model.py:build", None, batch_size=2, seq_len=32, target="cpu")
    assert plain.breakdown.activation_bytes > 0
    assert any("rough" in note for note in plain.notes)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    e = estimate_peak(module, Plan(), batch_size=2, seq_len=3, target="cpu")
    assert e.params.total == 8 * 16 + 16 + 16 * 4 + 4


def test_bad_input_raises_advisor_errors() -> None:
    with pytest.raises(InvalidInputError):
        estimate_peak("tiny-llama", None, batch_size=1, seq_len=16, target="tpu")
    with pytest.raises(InvalidInputError):
        estimate_peak("tiny-llama", None, batch_size=0, seq_len=16)
    with pytest.raises(InvalidInputError):
        estimate_peak("tiny-llama", "accum(steps=4)", batch_size=6, seq_len=16)
    with pytest.raises(AdvisorError):
        estimate_peak("tiny-llama", "lora(targets=nothing_here)", batch_size=1, seq_len=16)
    with pytest.raises(AdvisorError):
        estimate_peak("no-such-model", None, batch_size=1, seq_len=16)
