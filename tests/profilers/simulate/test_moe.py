"""Mixture of experts in a replay: the assumed routing, checked against real runs whose router
is forced to that routing."""

from __future__ import annotations

import types
from typing import Any

import pytest
import torch
from torch import nn

from advisor.models import HFModelSource
from profilers.records import Provenance, TrialStatus
from profilers.simulate.moe import MoeRouting, expert_token_counts, find_experts, routed_experts
from profilers.trial import TrialSpec, run_trial

pytestmark = pytest.mark.usefixtures("fast_simulations")

BATCH, SEQ = 2, 32  # 64 tokens; top-2 of 4 experts: 128 token-slots, 32 per expert balanced


def _tiny_mixtral() -> HFModelSource:
    from transformers import MixtralConfig

    config = MixtralConfig(
        vocab_size=256, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
        max_position_embeddings=256, tie_word_embeddings=False,
    )  # fmt: skip
    config.architectures = ["MixtralForCausalLM"]
    return HFModelSource("tiny-mixtral", config)


def _assignment(tokens: int, top_k: int, experts: int, imbalance: float) -> torch.Tensor:
    """(tokens, top_k) expert ids giving each expert its count of the assumed routing: the
    experts' runs laid out slot column by slot column, so no token gets one expert twice."""
    counts = expert_token_counts(tokens, top_k, experts, imbalance)
    order = torch.repeat_interleave(torch.arange(experts), torch.tensor(counts))
    return order.view(top_k, tokens).t().contiguous()


class ForcedRouting(HFModelSource):
    """The tiny Mixtral as it runs for real: transformers' eager expert loop, and a router
    whose top-k choice is replaced by the assumed routing (weights still from its softmax)."""

    def __init__(self, base: HFModelSource, imbalance: float) -> None:
        super().__init__(base.name, base.config)
        self.imbalance = imbalance

    def build(self, device: Any = "cpu", **kwargs: Any) -> nn.Module:
        model = super().build(device, **kwargs)
        model.set_experts_implementation("eager")
        imbalance = self.imbalance

        def forced(router: Any, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # MixtralTopKRouter.forward of transformers 5.25, with the choice of experts forced
            hidden_states = hidden_states.reshape(-1, router.hidden_dim)
            router_logits = nn.functional.linear(hidden_states, router.weight)
            router_probs = torch.nn.functional.softmax(router_logits.float(), dim=-1)
            _, chosen = torch.topk(router_probs, router.top_k, dim=-1)
            chosen = _assignment(chosen.shape[0], router.top_k, router.num_experts, imbalance)
            router_top_value = router_probs.gather(-1, chosen.to(router_probs.device))
            router_top_value /= router_top_value.sum(dim=-1, keepdim=True)
            return router_logits, router_top_value, chosen

        for module in model.modules():
            if type(module).__name__ == "MixtralTopKRouter":
                module.forward = types.MethodType(forced, module)
        return model


def _measured(source: HFModelSource, plan_name: str) -> Any:
    from advisor.plans import program_builder
    from advisor.plans.cuts import parse_plan

    plan = parse_plan(plan_name)
    spec = TrialSpec(source.name, plan.name, plan.cut_names, BATCH, SEQ, "cpu", warmup_steps=1, timed_steps=0)
    return run_trial(spec, program_builder(plan, source, BATCH, SEQ))


def test_token_counts_are_balanced_or_give_the_hottest_expert_its_factor() -> None:
    assert expert_token_counts(64, 2, 4) == [32, 32, 32, 32]
    assert expert_token_counts(10, 2, 4) == [5, 5, 5, 5]
    assert expert_token_counts(10, 1, 4) == [3, 3, 2, 2]
    assert expert_token_counts(64, 2, 4, 1.5) == [48, 27, 27, 26]
    assert expert_token_counts(64, 2, 4, 3.0) == [64, 22, 21, 21]  # at most every token
    assert expert_token_counts(4096, 8, 128, 1.0) == [256] * 128
    with pytest.raises(ValueError, match="≥ 1"):
        MoeRouting(0.5)
    assignment = _assignment(64, 2, 4, 1.5)
    assert all(len(set(row.tolist())) == 2 for row in assignment)  # two different experts each
    assert torch.bincount(assignment.flatten()).tolist() == [48, 27, 27, 26]


def test_dense_models_are_left_alone_and_the_patch_is_undone() -> None:
    from advisor.models import resolve_model

    dense = resolve_model("tiny-llama").build("meta")
    assert find_experts(dense) == []
    with routed_experts(dense) as note:
        assert note is None
    model = _tiny_mixtral().build("meta")
    experts = find_experts(model)
    assert len(experts) == 2
    with routed_experts(model) as note:
        assert note == "balanced routing, each expert gets tokens × 2 / 4 (2 MoE layers, eager per-expert dispatch)"
        assert all("forward" in vars(m) for m in experts)
    assert not any("forward" in vars(m) for m in experts)


@pytest.mark.parametrize(
    ("plan_name", "imbalance"),
    [("baseline", 1.0), ("lora", 1.0), ("grad-ckpt", 1.0), ("baseline", 2.0)],
)
def test_simulated_moe_peak_equals_a_real_run_forced_to_the_same_routing(
    plan_name: str, imbalance: float
) -> None:
    from advisor.engines.simulate import simulate

    source = _tiny_mixtral()
    measured = _measured(ForcedRouting(source, imbalance), plan_name)
    assert measured.status is TrialStatus.OK, measured.reason
    simulated = simulate(
        source, plan_name, BATCH, SEQ, target="cpu", fake_device="cpu", count_cost=False,
        moe_imbalance=imbalance,
    )  # fmt: skip
    assert simulated.status is TrialStatus.OK, simulated.reason
    assert simulated.tensor_peak is not None and measured.tensor_peak is not None
    sim, meas = simulated.tensor_peak, measured.tensor_peak
    assert sim.provenance is Provenance.SIMULATED and meas.provenance is Provenance.MEASURED
    assert sim.peak_bytes == pytest.approx(meas.peak_bytes, rel=0.005), (sim, meas)
    assert sim.breakdown.parameter_bytes == meas.breakdown.parameter_bytes
    assert simulated.simulation is not None and simulated.simulation.moe_routing is not None
    kind = "balanced routing" if imbalance == 1.0 else "hottest expert gets 2× its balanced"
    assert kind in simulated.simulation.moe_routing


def test_an_imbalanced_routing_needs_more_than_the_balanced_one() -> None:
    from advisor.engines.simulate import simulate

    peaks = {}
    for imbalance in (1.0, 2.0):
        result = simulate(
            _tiny_mixtral(), "baseline", BATCH, SEQ, target="cpu", fake_device="cpu",
            count_cost=False, moe_imbalance=imbalance,
        )  # fmt: skip
        assert result.ok and result.tensor_peak is not None
        peaks[imbalance] = result.tensor_peak.peak_bytes
    assert peaks[2.0] > peaks[1.0]


@pytest.mark.slow
def test_cli_simulate_states_the_routing_beside_the_peak(capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.cli import main

    code = main(
        ["simulate", "--model", "mixtral-8x7b", "--cuts", "lora,grad-ckpt,bf16-weights", "-b", "1",
         "-s", "16", "--gpu", "h100", "--moe-imbalance", "1.5"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "peak assumes (MoE)" in out
    assert "hottest expert gets 1.5× its balanced tokens × 2 / 8, the rest even (32 MoE layers" in out
    with pytest.raises(SystemExit):
        main(["simulate", "--model", "mixtral-8x7b", "--moe-imbalance", "0.5"])
    assert "must be ≥ 1" in capsys.readouterr().err


@pytest.mark.slow
def test_a_recommendation_for_a_moe_model_states_the_routing() -> None:
    import advisor

    advice = advisor.advise(
        _tiny_mixtral(), gpu="rtx-4090", workload=advisor.Workload(micro_batch=1, seq_len=32),
        plans="lora", check_top=0,
    )  # fmt: skip
    text = advice.to_text()
    assert "Mixture of experts, simulated under balanced routing, each expert gets tokens × 2 / 4" in text


@pytest.mark.slow
def test_growth_fits_follow_the_routing_assumed() -> None:
    from advisor.engines.growth import simulate_growth

    sizes, holdout = [(1, 8), (2, 8), (1, 16), (2, 16)], (2, 12)
    fits = {
        imbalance: simulate_growth(
            _tiny_mixtral(), "baseline", sizes, holdout, target="cpu", moe_imbalance=imbalance
        )
        for imbalance in (1.0, 2.0)
    }
    for balanced, hot in zip(fits[1.0].points, fits[2.0].points, strict=True):
        # the backward holds the hottest expert's temporaries (at these small sizes the step's
        # peak itself may be the optimizer's, which routing does not change)
        assert hot.phase_peaks["backward"] > balanced.phase_peaks["backward"], (balanced, hot)
        assert hot.peak_bytes >= balanced.peak_bytes


def test_the_recommend_command_that_reproduces_advice_repeats_the_imbalance() -> None:
    from advisor.catalog.gpus import get_gpu
    from advisor.recommend import Workload
    from advisor.recommend.command import reproduce_command

    command = reproduce_command("mixtral-8x7b", get_gpu("h100"), Workload(), moe_imbalance=1.5)
    assert command.endswith("--moe-imbalance 1.5")
    assert "--moe-imbalance" not in reproduce_command("mixtral-8x7b", get_gpu("h100"), Workload())


def test_experts_of_another_layout_are_unsupported_with_the_reason() -> None:
    from types import SimpleNamespace

    from transformers.integrations import use_experts_implementation

    from profilers.trial import UnsupportedConfiguration

    @use_experts_implementation(has_bias=True)
    class BiasedExperts(nn.Module):
        def __init__(self, config: Any) -> None:
            super().__init__()
            self.num_experts = 4
            self.gate_up_proj = nn.Parameter(torch.zeros(4, 16, 8))
            self.gate_up_proj_bias = nn.Parameter(torch.zeros(4, 16))
            self.down_proj = nn.Parameter(torch.zeros(4, 8, 8))

        def forward(self, hidden_states: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
            return hidden_states

    model = nn.Sequential(BiasedExperts(SimpleNamespace(num_experts_per_tok=2)))
    with pytest.raises(UnsupportedConfiguration, match=r"\(BiasedExperts\) are not of the layout"):
        find_experts(model)


@pytest.mark.parametrize("imbalance", [1.0, 2.0])
def test_a_deep_moe_model_extrapolates_to_the_full_replay_with_its_own_layer_count(imbalance: float) -> None:
    from advisor.engines.simulate import simulate

    source = _tiny_mixtral()
    source.config.num_hidden_layers = 10  # type: ignore[attr-defined]
    runs = {
        extrapolate: simulate(
            source, "lora", BATCH, SEQ, target="cpu", fake_device="cpu", count_cost=False,
            moe_imbalance=imbalance, extrapolate=extrapolate,
        )
        for extrapolate in (True, False)
    }
    few, full = runs[True], runs[False]
    assert few.ok and full.ok, (few.reason, full.reason)
    assert few.simulation is not None and few.simulation.repeats is not None
    assert few.simulation.repeats.extrapolated, few.simulation.repeats.reason
    assert few.tensor_peak is not None and full.tensor_peak is not None
    assert few.tensor_peak.peak_bytes == full.tensor_peak.peak_bytes
    assert few.simulation.moe_routing == full.simulation.moe_routing  # type: ignore[union-attr]
    assert "(10 MoE layers" in (few.simulation.moe_routing or "")


@pytest.mark.slow
def test_worker_processes_simulate_under_the_same_routing() -> None:
    from advisor.engines.simulate import simulate_plans
    from advisor.plans.cuts import parse_plan

    plans = [parse_plan("baseline"), parse_plan("lora")]
    kwargs: dict[str, Any] = {"target": "cpu", "moe_imbalance": 2.0}
    here = simulate_plans(_tiny_mixtral(), plans, BATCH, SEQ, workers=1, **kwargs)
    there = simulate_plans(_tiny_mixtral(), plans, BATCH, SEQ, workers=2, **kwargs)
    for a, b in zip(here, there, strict=True):
        assert a.ok and b.ok and a.tensor_peak is not None and b.tensor_peak is not None
        assert a.tensor_peak.peak_bytes == b.tensor_peak.peak_bytes
        assert b.simulation is not None and "hottest expert gets 2×" in (b.simulation.moe_routing or "")
