"""QLoRA on fake tensors: bitsandbytes' layout and autograd, and the replay against measured CPU."""

from __future__ import annotations

import sys
from typing import Any, cast

import pytest
import torch
from torch import nn

from profilers.records import Provenance, TrialStatus
from profilers.simulate import FakeWorld, PhaseTracker, ShadowValues, new_fake_mode
from profilers.simulate.quant import (
    Linear4bitStandIn,
    Linear8bitStandIn,
    quantized_bytes,
    quantized_target,
    stand_in_for,
)
from profilers.tracker import quantization_state_tensors

pytestmark = pytest.mark.usefixtures("fast_simulations")

BATCH, SEQ = 4, 64
N, K = 80, 96  # out, in


def _layout(layer: nn.Module) -> list[tuple[tuple[int, ...], torch.dtype]]:
    tensors = [layer.weight, *quantization_state_tensors(layer)]
    return [(tuple(t.shape), t.dtype) for t in tensors]


def _bytes(layer: nn.Module) -> int:
    tensors = [layer.weight, *quantization_state_tensors(layer)]
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize(
    ("quant_type", "double_quant", "storage"),
    [("nf4", True, torch.uint8), ("fp4", False, torch.uint8), ("nf4", True, torch.bfloat16)],
)
def test_4bit_stand_in_holds_what_bitsandbytes_holds(quant_type: str, double_quant: bool, storage: torch.dtype) -> None:
    bnb = pytest.importorskip("bitsandbytes")
    linear = nn.Linear(K, N, bias=True)
    real = bnb.nn.Linear4bit(
        K, N, bias=True, compute_dtype=torch.float32, compress_statistics=double_quant,
        quant_type=quant_type, quant_storage=storage,
    )  # fmt: skip
    real.weight = bnb.nn.Params4bit(
        linear.weight.data.clone(), requires_grad=False, compress_statistics=double_quant,
        quant_type=quant_type, quant_storage=storage, module=real,
    )  # fmt: skip
    real = real.to("cpu")
    stand_in = stand_in_for(
        linear.to("meta"), bits=4, quant_type=quant_type, double_quant=double_quant, quant_storage=storage
    )
    assert _layout(stand_in) == _layout(real)
    assert _bytes(stand_in) == _bytes(real) == quantized_bytes(N, K, 4, double_quant, storage)
    assert stand_in.weight.quant_state.shape == tuple(real.weight.quant_state.shape) == (N, K)


def test_4bit_double_quant_bytes_by_hand() -> None:
    # 7680 values: 3840 packed bytes, 120 absmax (uint8), offset 4 B, 1 nested absmax (4 B),
    # the nested code (256 × 4 B) and the NF4 code (16 × 4 B)
    assert quantized_bytes(N, K, 4, True) == 3840 + 120 + 4 + 4 + 1024 + 64 == 5056
    assert quantized_bytes(N, K, 4, False) == 3840 + 120 * 4 + 64  # float32 absmax
    assert quantized_bytes(N, K, 8) == N * K + 4 * N  # int8 weight + float32 row scales


def test_8bit_stand_in_holds_what_bitsandbytes_holds() -> None:
    bnb = pytest.importorskip("bitsandbytes")
    linear = nn.Linear(K, N, bias=False)
    real = bnb.nn.Linear8bitLt(K, N, bias=False, has_fp16_weights=False)
    real.weight = bnb.nn.Int8Params(linear.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
    real = real.to("cpu")
    stand_in = stand_in_for(linear.to("meta"), bits=8)
    assert _layout(stand_in) == _layout(real) == [((N, K), torch.int8), ((N,), torch.float32)]


def test_a_transposed_conv1d_weight_gives_an_out_by_in_layer() -> None:
    conv_like = nn.Linear(N, K, device="meta")  # weight (K, N): as a Conv1D of K in, N out stores it
    layer = stand_in_for(conv_like, bits=4, transposed=True)
    assert (layer.in_features, layer.out_features) == (K, N)
    assert layer.weight.quant_state.shape == (N, K)


def _forward_peak(layer: nn.Module, rows: int, target: str, grad: bool = False) -> tuple[int, int]:
    """Peak of one forward (and backward when ``grad``) of ``layer`` on ``rows`` fake rows,
    and the bytes resident before it (parameters and statistics)."""
    world = FakeWorld(new_fake_mode(), torch.device("cpu"), ShadowValues())
    world.fakeify(layer)
    with world.active(), quantized_target(target):
        x = torch.empty(rows, layer.in_features, requires_grad=grad)
        tracker = PhaseTracker("meta")
        tracker.register_training_state(layer, None, x)
        with tracker:
            out = layer(x)
            if grad:
                tracker.set_phase("backward")
                out.sum().backward()
            del out
        tracker.close()
    return tracker.peak_bytes, tracker._resident_bytes


def test_cpu_forward_holds_only_the_output_and_cuda_past_1536_rows_dequantizes() -> None:
    def layer() -> nn.Module:
        return stand_in_for(nn.Linear(K, N, bias=False, device="meta"), bits=4)

    for rows in (1024, 2048):
        peak, resident = _forward_peak(layer(), rows, "cpu")
        assert peak - resident == rows * N * 4  # gemm_4bit's output alone
    peak, resident = _forward_peak(layer(), 1024, "cuda")
    assert peak - resident == 1024 * N * 4  # the fused kernel
    peak, resident = _forward_peak(layer(), 2048, "cuda")
    # _dequant_linear_fallback: absmax (120 float32) + its offset sum, then the (N, K) weight
    # in float32 while F.linear writes the output; the first absmax is freed before the weight
    assert peak - resident == 120 * 4 + N * K * 4 + 2048 * N * 4


def test_4bit_backward_dequantizes_the_weight_in_its_own_dtype() -> None:
    layer = stand_in_for(nn.Linear(K, N, bias=False, device="meta"), bits=4)
    rows = 16
    peak, resident = _forward_peak(layer, rows, "cpu", grad=True)
    # the output (kept), the loss and its one-element gradient (expanded), then in backward the
    # (N, K) float32 weight, dequantized, while grad_A (rows × K) is written; the absmax
    # (120 float32) is freed before that
    assert peak - resident == rows * N * 4 + 4 + 4 + N * K * 4 + rows * K * 4


def test_8bit_cuda_forward_quantizes_the_input_to_int8() -> None:
    def layer() -> nn.Module:
        return stand_in_for(nn.Linear(K, N, bias=False, device="meta"), bits=8)

    rows = 64
    peak, resident = _forward_peak(layer(), rows, "cpu")
    # MatMul8bitFp: the weight dequantized to float32 (N × K) (its N × 1 scale is freed at
    # once), then F.linear's output beside it
    assert peak - resident == N * K * 4 + rows * N * 4
    peak, resident = _forward_peak(layer(), rows, "cuda")
    # MatMul8bitLt: int8 input + float32 row scales, int32 product, then the output
    assert peak - resident == max(rows * K * 2 + rows * K + rows * 4, rows * K + rows * 4 + rows * N * 4 * 2)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-llama", "tiny-gpt2", "tiny-bert"])
@pytest.mark.parametrize(
    "plan_name",
    [
        "qlora", "qlora(bits=8)", "qlora+grad-ckpt", "qlora(double_quant=false,quant_type=fp4)",
        "qlora(compute_dtype=bf16,upcast=false)", "qlora(compute_dtype=bf16,upcast=false)+grad-ckpt",
    ],
)  # fmt: skip
def test_simulated_qlora_peak_equals_the_measured_cpu_peak(
    model: str, plan_name: str, cpu_truth: Any, simulated_as_measured: Any
) -> None:
    pytest.importorskip("bitsandbytes")
    measured, simulated = cpu_truth(model, plan_name)
    simulated_as_measured(measured, simulated)
    meas, sim = measured.tensor_peak, simulated.tensor_peak  # type: ignore[attr-defined]
    assert sim.resident_before_step_bytes == meas.resident_before_step_bytes


def test_peft_wrapped_4bit_layers_clone_their_output_and_the_others_do_not() -> None:
    from advisor.engines.simulate import fake_builder
    from advisor.models import resolve_model
    from advisor.plans import parse_plan

    world = FakeWorld(new_fake_mode(), torch.device("cpu"), ShadowValues())
    prog = fake_builder(parse_plan("qlora"), resolve_model("tiny-llama"), 1, 8, "cpu")(world)
    quantized = [m for m in prog.model.modules() if isinstance(m, Linear4bitStandIn)]
    wrapped = {id(m.base_layer) for m in prog.model.modules() if hasattr(m, "base_layer")}
    assert quantized and any(id(m) in wrapped for m in quantized) and any(id(m) not in wrapped for m in quantized)
    for m in quantized:
        assert m.peft_clone is (id(m) in wrapped)
    assert not any(isinstance(m, Linear8bitStandIn) for m in prog.model.modules())


def test_without_bitsandbytes_qlora_simulates_and_measuring_asks_for_it(monkeypatch: pytest.MonkeyPatch, cpu_truth: Any) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes → ImportError
    measured, simulated = cpu_truth("tiny-llama", "qlora")
    assert measured.status is TrialStatus.UNSUPPORTED  # type: ignore[attr-defined]
    assert "pip install bitsandbytes" in (measured.reason or "")  # type: ignore[attr-defined]
    assert simulated.status is TrialStatus.OK, simulated.reason  # type: ignore[attr-defined]
    # what real bitsandbytes 0.50.2 holds for tiny-llama's NF4 double-quantized base, measured
    # on CPU by the test above (weights, statistics, norms, embeddings, LoRA adapters)
    assert simulated.tensor_peak.breakdown.parameter_bytes == 9_214_368  # type: ignore[attr-defined]


def _upcast_params(model: str) -> int:
    """Parameters of the real model outside its repeated blocks' linears (embeddings, head,
    norms), counted on the model built from its config, not by the cut. (Models with biases
    in the quantized layers are left to the measured tests: bitsandbytes 0.50.2's
    ``Linear4bit.forward`` casts its bias to the compute dtype in place, layer by layer, so
    what the peak holds depends on when it falls.)"""
    from advisor.models import resolve_model
    from advisor.plans.cuts.lora import _block_linears

    built = resolve_model(model).build(torch.device("cpu"), pretrained=False)
    total = sum(p.numel() for p in built.parameters())
    linears = [child for _, _, child, _ in _block_linears(built)]
    assert all(getattr(c, "bias", None) is None for c in linears)
    return total - sum(cast(torch.Tensor, c.weight).numel() for c in linears)


@pytest.mark.parametrize("model", ["tiny-llama"])
def test_qlora_without_upcast_holds_the_rest_of_the_model_in_bf16(model: str) -> None:
    from advisor.engines.simulate import simulate
    from advisor.models import resolve_model
    from advisor.plans import parse_plan

    source = resolve_model(model)
    upcast, kept = (
        simulate(source, parse_plan(p), 1, 16, target="cpu", fake_device="cpu", count_cost=False)
        for p in ("qlora(compute_dtype=bf16)", "qlora(compute_dtype=bf16,upcast=false)")
    )
    assert upcast.tensor_peak is not None and kept.tensor_peak is not None
    # every non-quantized weight: 4 B (fp32, peft's upcast) against 2 B (bf16, as loaded)
    saved = upcast.tensor_peak.breakdown.parameter_bytes - kept.tensor_peak.breakdown.parameter_bytes
    assert saved == 2 * _upcast_params(model)


def test_qlora_without_upcast_needs_a_low_precision_compute_dtype() -> None:
    from advisor.core.errors import PlanError
    from advisor.plans import parse_plan

    with pytest.raises(PlanError, match="upcast=false"):
        parse_plan("qlora(upcast=false)")


@pytest.mark.slow
def test_recommend_ranks_a_simulated_qlora_plan_first_on_an_8_gb_card_with_its_code() -> None:
    from advisor.api import advise
    from advisor.engines.need import TENSOR_PARTS
    from advisor.recommend import Workload
    from advisor.recommend.candidates import CANDIDATE_COMBOS
    from advisor.report.markdown import to_markdown
    from advisor.report.snippets import snippet_for

    tight = next(c for c in CANDIDATE_COMBOS if "upcast=false" in c)  # a default candidate
    rec = advise(
        "llama-3.1-8b",
        gpu="rtx-4060",
        workload=Workload(micro_batch=4, seq_len=128),  # the CLI's default workload
        plans=f"grad-ckpt+lora+bf16-weights;grad-ckpt+qlora;{tight};grad-ckpt+sgd+bf16-weights",
        mode="simulate",
        check_top=0,
    )
    best = rec.ranked[0]
    assert best.plan == "grad-ckpt+qlora(compute_dtype=bfloat16,upcast=False)"
    upcast = rec.ranked[1]
    assert upcast.plan == "grad-ckpt+qlora"
    # what peft's fp32 upcast costs: 2 more bytes for each weight outside the 4-bit blocks of
    # Llama-3.1-8B (config.json: vocab 128256, hidden 4096, 32 layers, untied): embeddings,
    # lm_head, 2 norms per layer and the final one
    assert best.need is not None and upcast.need is not None
    params = {p.name: p.size_bytes for p in best.need.parts}, {p.name: p.size_bytes for p in upcast.need.parts}
    assert params[1]["parameters"] - params[0]["parameters"] == 2 * (2 * 128256 * 4096 + 65 * 4096)
    assert best.trial is not None and best.trial.tensor_peak is not None
    assert best.trial.tensor_peak.provenance is Provenance.SIMULATED
    assert best.need is not None
    assert all(p.provenance is Provenance.SIMULATED for p in best.need.parts if p.name in TENSOR_PARTS)
    code = snippet_for(rec, best)
    for line in (
        "from peft import LoraConfig, get_peft_model",
        "bnb = BitsAndBytesConfig(",
        "    load_in_4bit=True,",
        '    bnb_4bit_quant_type="nf4",',
        "    bnb_4bit_use_double_quant=True,",
        "    bnb_4bit_compute_dtype=torch.bfloat16,",
        'model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.1-8B", dtype=torch.bfloat16, '
        "quantization_config=bnb)",
        "lora = LoraConfig(",
        "    gradient_checkpointing=True,",
    ):
        assert line in code, line
    assert "prepare_model_for_kbit_training(model" not in code  # the upcast is what it skips
    # the report gives that code: as the best plan, or (when even it is over the budget at
    # micro-batch 4, by MiBs) as the closest one at the largest micro-batch that fits
    report = to_markdown(rec)
    shown = code if best.fits else snippet_for(rec, best, best.max_micro_batch)
    assert best.fits or best.max_micro_batch
    assert shown in report
    upcast_code = snippet_for(rec, rec.ranked[1])
    assert "model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True, " in upcast_code
