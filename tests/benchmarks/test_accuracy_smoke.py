"""The benchmark harnesses compute their errors right (pure parts), and one real case runs."""

from __future__ import annotations

import pytest

from benchmarks.accuracy import (
    Case,
    accelerate_training_bytes,
    beats,
    percent_error,
    render,
    rule_of_thumb_bytes,
    run_case,
    summarize,
)
from benchmarks.gpu_validation import GpuCase, slugify
from benchmarks.gpu_validation import main as gpu_main


def _case(plan: str, measured: int, **predictions: int) -> Case:
    return Case("m", plan, 1, 64, measured=measured, activation_bytes=10, predictions=dict(predictions))


def test_errors_summary_and_who_is_closer() -> None:
    assert percent_error(110, 100) == pytest.approx(10.0)
    assert percent_error(90, 100) == pytest.approx(-10.0)
    assert percent_error(None, 100) is None and percent_error(5, 0) is None
    assert rule_of_thumb_bytes(1000) == 16_000

    cases = [
        _case("a", 100, simulated=100, estimated=102, accelerate=50, **{"16B/param": 104}),
        _case("b", 200, simulated=202, estimated=190, accelerate=400, **{"16B/param": 150}),
    ]
    cases.append(Case("m", "c", 1, 64, status="oom", reason="out of memory"))
    by = {s.method: s for s in summarize(cases)}
    assert by["simulated"].cases == 2
    assert by["simulated"].median_abs_error == pytest.approx(0.5)
    assert by["simulated"].max_abs_error == pytest.approx(1.0)
    assert by["estimated"].max_abs_error == pytest.approx(5.0)
    assert by["estimated"].max_case == "m b 1×64"
    assert by["accelerate"].median_abs_error == pytest.approx(75.0)

    est_vs_rule = beats(cases, "estimated", "16B/param")
    assert (est_vs_rule.closer, est_vs_rule.of) == (2, 2)
    sim_vs_accel = beats(cases, "simulated", "accelerate")
    assert (sim_vs_accel.closer, sim_vs_accel.of) == (2, 2)
    worse = [_case("d", 100, estimated=110, **{"16B/param": 101})]
    loss = beats(worse, "estimated", "16B/param")
    assert loss.closer == 0 and loss.of == 1 and "m d 1×64" in loss.losses[0]

    text = render(cases, "cpu", markdown=True)
    assert "| simulated | 2 | 0.500% | 1.000% | m b 1×64 | +0.500% |" in text
    assert "not measured: m c 1×64: oom" in text


def test_accelerate_is_called_as_its_cli_does() -> None:
    from advisor.engines.measure import meta_parameter_count
    from advisor.models import resolve_model

    # GPT-2's LM head is tied to its embedding: AutoModel has the same parameters
    gpt2, gpt2_params = accelerate_training_bytes("tiny-gpt2", "float32")
    assert gpt2_params == meta_parameter_count(resolve_model("tiny-gpt2"))
    assert gpt2 == 16 * gpt2_params  # "Training using Adam": 4 × the fp32 model
    half, _ = accelerate_training_bytes("tiny-gpt2", "float16")
    assert half == 8 * gpt2_params  # its mixed-precision row: 2 × the fp32 model
    # Llama's untied LM head is not in AutoModel (LlamaModel)
    llama, llama_params = accelerate_training_bytes("tiny-llama")
    assert 16 * llama_params <= llama < 16 * llama_params + 4096  # + its buffers (rotary table)
    assert llama_params == meta_parameter_count(resolve_model("tiny-llama")) - 4096 * 256


def test_one_real_case_runs_every_method() -> None:
    case = run_case("tiny-gpt2", "baseline", 1, 16, {})
    assert case.status == "ok" and case.measured
    assert set(case.predictions) == {"simulated", "estimated", "accelerate", "16B/param"}
    sim, est = case.error("simulated"), case.error("estimated")
    assert sim is not None and abs(sim) < 1.0
    assert est is not None and abs(est) < 5.0


def test_gpu_validation_slug_errors_and_skip(capsys: pytest.CaptureFixture[str]) -> None:
    assert slugify("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert slugify("  ") == "gpu"
    c = GpuCase(
        "m", "p", 1, 8, measured={"tensor": 200, "reserved": 256}, predicted={"tensor": 198, "reserved": 272}
    )
    assert c.error("tensor", "tensor") == pytest.approx(-1.0)
    assert c.error("reserved", "reserved") == pytest.approx(6.25)
    assert c.error("device", "device") is None
    import torch

    if not torch.cuda.is_available():
        assert gpu_main(["--no-write"]) == 0
        assert "skipped" in capsys.readouterr().out
