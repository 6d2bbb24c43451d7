"""Fake-tensor replay: exact against measured CPU peaks, and its parts on their own.

The accuracy and closed-form tests run end to end through ``advisor``'s plans and cuts (the
package ``profilers`` never imports ``advisor``; its tests may).
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from profilers.records import Provenance, TrialStatus
from profilers.simulate import (
    FakeWorld,
    ShadowValues,
    StepCostCounter,
    fake_device_type,
    fakeify_module,
    new_fake_mode,
    simulate_trial,
    use_cuda_optimizer_defaults,
)
from profilers.trial import StepProgram, TrialSpec, UnsupportedConfiguration, run_trial, train_step

pytestmark = pytest.mark.usefixtures("fast_simulations")


# -- the accuracy acceptance test: simulated == measured on CPU, every tiny model × cut -------

TINY = ("tiny-llama", "tiny-gpt2", "tiny-bert")
BATCH, SEQ = 4, 64  # large enough that most peaks fall in the backward, where activations live


def _single_cut_plans() -> list[tuple[str, str]]:
    from advisor.engines.simulate import SIMULATION_UNSUPPORTED
    from advisor.plans.cuts import default_cuts

    names = ["baseline"] + [c.name for c in default_cuts() if c.name not in SIMULATION_UNSUPPORTED]
    return [(model, plan) for model in TINY for plan in names]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "plan_name"), _single_cut_plans())
def test_simulated_peak_equals_the_measured_cpu_peak(model: str, plan_name: str) -> None:
    from advisor.engines.simulate import simulate
    from advisor.models import resolve_model
    from advisor.plans import program_builder
    from advisor.plans.cuts import parse_plan

    source = resolve_model(model)
    plan = parse_plan(plan_name)
    spec = TrialSpec(model, plan.name, plan.cut_names, BATCH, SEQ, "cpu", warmup_steps=1, timed_steps=0)
    measured = run_trial(spec, program_builder(plan, source, BATCH, SEQ))
    if measured.status is not TrialStatus.OK:
        pytest.skip(f"{plan_name} does not run on CPU for {model}: {measured.reason}")
    simulated = simulate(source, plan, BATCH, SEQ, target="cpu", fake_device="cpu", count_cost=False)
    assert simulated.status is TrialStatus.OK, simulated.reason
    assert measured.tensor_peak is not None and simulated.tensor_peak is not None
    sim, meas = simulated.tensor_peak, measured.tensor_peak
    assert sim.provenance is Provenance.SIMULATED
    assert simulated.device == "fake-cpu"
    assert sim.peak_bytes == pytest.approx(meas.peak_bytes, rel=0.01)
    assert sim.breakdown.parameter_bytes == meas.breakdown.parameter_bytes
    assert sim.resident_before_step_bytes == meas.resident_before_step_bytes
    assert measured.params is not None
    assert simulated.params == dataclasses.replace(measured.params, provenance=Provenance.SIMULATED)


# -- the closed form: full fine-tuning with AdamW in fp32 --------------------------------------


@pytest.mark.parametrize(
    ("model", "plan_name"),
    [
        ("tiny-llama", "baseline"),
        ("tiny-llama", "frozen-emb"),
        ("gpt2", "frozen-emb"),
        ("phi-3-mini", "baseline"),
    ],
)
def test_adamw_fp32_parameters_gradients_and_state_are_16_bytes_per_trainable_parameter(
    model: str, plan_name: str
) -> None:
    """params + grads + AdamW state == 16 B × trainable + 4 B × frozen, exactly.

    AdamW also keeps one float32 ``step`` counter per parameter tensor: 4 B each, counted
    separately. Sizes are small so that the peak falls in the optimizer step, when all of it is
    live together (for tied embeddings trained, the backward's summed gradients peak higher:
    GPT-2 is checked with them frozen). Presets up to 3.8B run here: nothing is allocated.
    """
    from advisor.engines.simulate import simulate
    from advisor.plans.cuts import parse_plan

    result = simulate(model, parse_plan(plan_name), 1, 8, target="cpu", fake_device="cpu", count_cost=False)
    assert result.ok, result.reason
    assert result.tensor_peak is not None and result.params is not None
    assert result.tensor_peak.peak_phase == "optimizer"
    b = result.tensor_peak.breakdown
    trainable, frozen = result.params.trainable, result.params.total - result.params.trainable
    trainable_tensors = _trainable_tensor_count(model, plan_name)
    step_counters = 4 * trainable_tensors
    assert b.parameter_bytes + b.gradient_bytes + b.optimizer_state_bytes - step_counters == (
        16 * trainable + 4 * frozen
    )


def _trainable_tensor_count(model: str, plan_name: str) -> int:
    from advisor.models import resolve_model
    from advisor.plans import BuildContext, build_model, prepare
    from advisor.plans.cuts import parse_plan

    plan = parse_plan(plan_name)
    source = resolve_model(model)
    built = build_model(plan, BuildContext(source, torch.device("meta"), prepare(plan, 1, 8)))
    return sum(1 for p in built.parameters() if p.requires_grad)


# -- the pieces ----------------------------------------------------------------------------------


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.head = nn.Linear(16, 100, bias=False)
        self.head.weight = self.emb.weight
        self.register_buffer("scale", torch.ones(16))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids) * self.scale)


def _world() -> FakeWorld:
    return FakeWorld(new_fake_mode(), torch.device("cpu"), ShadowValues())


def test_fakeify_keeps_tied_weights_tied_and_frozen_weights_frozen() -> None:
    with torch.device("meta"):
        model = _Tied()
    model.emb.weight.requires_grad_(False)
    world = _world()
    fakeify_module(model, world.mode, world.device)
    assert model.head.weight is model.emb.weight
    assert isinstance(model.emb.weight, nn.Parameter)
    assert not model.emb.weight.requires_grad
    assert model.emb.weight.device.type == "cpu"
    assert model.emb.weight.untyped_storage().device.type == "meta"  # fake: no real memory
    assert len(list(model.parameters())) == 1


def test_shadow_values_answer_item_on_known_values_and_zero_otherwise() -> None:
    world = _world()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    fake_ids = world.batch(ids)
    with world.active():
        assert int((fake_ids.sum() == 21).item()) == 1
        assert fake_ids[1, 2].item() == 6
        step = torch.tensor(0.0)
        step += 3
        assert step.item() == 3.0
        unknown = torch.empty(4).sum()  # data the replay never has
        assert unknown.item() == 0
    assert world.shadows.unknown_reads == 1


def _program(world: FakeWorld, model: nn.Module, batch: torch.Tensor) -> StepProgram:
    world.fakeify(model)
    fake = world.batch(batch)
    with world.active():
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss(m: nn.Module, b: torch.Tensor) -> torch.Tensor:
        return m(b).float().pow(2).mean()

    return StepProgram(
        model, opt, fake, loss, tokens_per_micro_batch=batch.numel(), samples_per_micro_batch=batch.shape[0]
    )


def test_simulate_trial_on_a_plain_module_matches_a_measured_trial() -> None:
    torch.manual_seed(0)
    batch = torch.randint(0, 100, (8, 32))
    spec = TrialSpec("tied", device="cpu", batch_size=8, seq_len=32, warmup_steps=1, timed_steps=0)

    def real(device: torch.device) -> StepProgram:
        model = _Tied()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        return StepProgram(model, opt, batch, lambda m, b: m(b).float().pow(2).mean(), 256, 8)

    def fake(world: FakeWorld) -> StepProgram:
        with torch.device("meta"):
            model = _Tied()
        return _program(world, model, batch)

    measured = run_trial(spec, real)
    simulated = simulate_trial(spec, fake, target="cpu", fake_device="cpu")
    assert simulated.ok and measured.ok
    assert measured.tensor_peak is not None
    assert simulated.tensor_peak == dataclasses.replace(measured.tensor_peak, provenance=Provenance.SIMULATED)
    sim = simulated.simulation
    assert sim is not None and "simulation" not in simulated.extra
    assert set(sim.phase_peaks) == {"forward", "backward", "optimizer", "zero_grad"}
    assert max(sim.phase_peaks.values()) == simulated.tensor_peak.peak_bytes  # type: ignore[union-attr]
    assert sim.tokens_per_step == 256


def test_full_warmup_gives_the_same_peak_as_the_light_one() -> None:
    batch = torch.randint(0, 100, (4, 16))
    spec = TrialSpec("tied", batch_size=4, seq_len=16, warmup_steps=1)

    def fake(world: FakeWorld) -> StepProgram:
        with torch.device("meta"):
            model = _Tied()
        return _program(world, model, batch)

    light = simulate_trial(spec, fake, target="cpu", fake_device="cpu", warmup="light")
    full = simulate_trial(spec, fake, target="cpu", fake_device="cpu", warmup="full")
    assert light.tensor_peak == full.tensor_peak


def test_a_failing_build_becomes_a_result_with_a_reason() -> None:
    def unsupported(world: FakeWorld) -> StepProgram:
        raise UnsupportedConfiguration("needs a GPU")

    def broken(world: FakeWorld) -> StepProgram:
        raise KeyError("layer")

    spec = TrialSpec("m")
    r1 = simulate_trial(spec, unsupported, fake_device="cpu")
    r2 = simulate_trial(spec, broken, fake_device="cpu")
    assert (r1.status, r1.reason) == (TrialStatus.UNSUPPORTED, "needs a GPU")
    assert r2.status is TrialStatus.ERROR and "KeyError" in (r2.reason or "")
    assert r1.device == "fake-cpu" and r1.tensor_peak is None


def test_fake_device_is_cpu_without_cuda_and_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VRAM_ADVISOR_FAKE_DEVICE", raising=False)
    if not torch.backends.cuda.is_built():
        assert fake_device_type() == "cpu"
    assert fake_device_type("cpu") == "cpu"
    monkeypatch.setenv("VRAM_ADVISOR_FAKE_DEVICE", "cpu")
    assert fake_device_type("auto") == "cpu"


def test_cuda_target_runs_the_optimizer_foreach_and_its_temporaries_count() -> None:
    """torch defaults to foreach AdamW on CUDA: sqrt(exp_avg_sq) for every tensor at once."""
    batch = torch.randint(0, 100, (2, 8))
    spec = TrialSpec("tied", batch_size=2, seq_len=8)

    def fake(world: FakeWorld) -> StepProgram:
        with torch.device("meta"):
            model = nn.Sequential(nn.Embedding(100, 64), nn.Linear(64, 64), nn.Linear(64, 100))
        return _program(world, model, batch)

    cpu = simulate_trial(spec, fake, target="cpu", fake_device="cpu")
    cuda = simulate_trial(spec, fake, target="cuda", fake_device="cpu")
    assert cuda.simulation is not None and cuda.simulation.optimizer_foreach is True
    assert cpu.tensor_peak is not None and cuda.tensor_peak is not None
    assert cuda.tensor_peak.peak_phase == "optimizer"
    param_bytes = cuda.tensor_peak.breakdown.parameter_bytes
    # single-tensor AdamW's temporaries are a parameter or two; foreach's are all of them
    assert cuda.tensor_peak.breakdown.activation_bytes == param_bytes
    assert cpu.tensor_peak.breakdown.activation_bytes < param_bytes
    assert cuda.tensor_peak.peak_bytes > cpu.tensor_peak.peak_bytes
    replay = cuda.simulation.cuda_allocator
    assert replay is not None
    assert replay.max_reserved_bytes >= replay.max_allocated_bytes >= cuda.tensor_peak.peak_bytes


def test_use_cuda_optimizer_defaults_leaves_explicit_choices_alone() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    assert use_cuda_optimizer_defaults(torch.optim.AdamW(p)) is True
    assert use_cuda_optimizer_defaults(torch.optim.AdamW(p, foreach=False)) is False


def test_step_cost_counts_the_same_flops_as_torch_flop_counter() -> None:
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 8))
    x = torch.randn(16, 32)
    with FlopCounterMode(display=False) as reference:
        model(x).pow(2).mean().backward()
    counter = StepCostCounter()
    with counter:
        model(x).pow(2).mean().backward()
    cost = counter.cost()
    assert (
        cost.total_flops == reference.get_total_flops() == 3 * 2 * 16 * (32 * 64 + 64 * 8) - 2 * 16 * 32 * 64
    )
    assert cost.flops_by_dtype == {"float32": cost.total_flops}
    assert cost.flop_op_bytes > 0 and cost.other_op_bytes > 0


@pytest.mark.skipif(os.environ.get("VRAM_ADVISOR_FAKE_DEVICE") == "cuda", reason="forced fake cuda")
def test_train_step_runs_unchanged_under_the_fake_mode() -> None:
    world = _world()
    with torch.device("meta"):
        model = _Tied()
    prog = _program(world, model, torch.randint(0, 100, (2, 4)))
    with world.active():
        train_step(prog)
        train_step(prog)
    state = prog.optimizer.state[model.emb.weight]
    assert state["exp_avg"].shape == (100, 16)


def test_cuda_target_keeps_a_one_byte_dropout_mask_as_cuda_does() -> None:
    # CPU dropout saves its mask in the input's dtype (4 B); CUDA's fused native_dropout saves
    # a bool mask (1 B). The CUDA-target replay must count the CUDA way: 3 B less per element.
    from advisor.engines.simulate import simulate

    model = nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.1), nn.Linear(64, 8))
    cpu = simulate(model, "sgd", 4, 16, target="cpu")  # sgd: the same optimizer path on both
    cuda = simulate(model, "sgd", 4, 16, target="cuda")
    assert cpu.tensor_peak is not None and cuda.tensor_peak is not None
    assert cpu.tensor_peak.peak_bytes - cuda.tensor_peak.peak_bytes == 3 * (4 * 16 * 64)
    assert torch.nn.functional.dropout is not None and torch.nn.functional.dropout.__name__ == "dropout"
