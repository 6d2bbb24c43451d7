"""The recommender: ranking, the margin, the largest micro-batch, exclusions, why-lines, costs.

Most tests drive :func:`advisor.recommend.recommend` with small fake backends (memory and speed
given per plan) so they run in milliseconds; a few run the real simulation on tiny models, and
one simulates the Llama-3.1-8B preset on a 24 GB GPU (the issue's acceptance case).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from advisor.catalog.gpus import custom_gpu, get_gpu
from advisor.core.errors import InvalidInputError, UnknownGpuError
from advisor.plans import Plan
from advisor.plans.cuts import parse_plan
from advisor.recommend import (
    ACTIVATIONS,
    GRADIENTS,
    NOT_EVALUATED,
    OPTIMIZER,
    TARGET,
    Backends,
    Mode,
    NeedPart,
    PlanVerdict,
    PredictedNeed,
    estimate_max_batch,
    largest_fitting_batch,
    mark_pareto,
    rank_verdicts,
    recommend,
    target_exclusion,
    tensor_parts,
    why_line,
)
from advisor.recommend.workload import SCRATCH_TOKENS_PER_PARAM, RankBy, Workload
from profilers.records import (
    MemoryBreakdown,
    ParamCounts,
    Provenance,
    TensorPeak,
    TrialResult,
    TrialStatus,
)

MiB, GiB = 2**20, 2**30
OVERHEAD = 100 * MiB

# plan → (parameters, gradients, optimizer state, activations per sample, step seconds at b=4)
FAKE: dict[str, tuple[int, int, int, int, float]] = {
    "baseline": (4 * GiB, 4 * GiB, 8 * GiB, 1 * GiB, 1.0),
    "lora": (4 * GiB, 16 * MiB, 32 * MiB, 1 * GiB, 0.7),
    "grad-ckpt": (4 * GiB, 4 * GiB, 8 * GiB, 256 * MiB, 1.3),
    "grad-ckpt+lora": (4 * GiB, 16 * MiB, 32 * MiB, 256 * MiB, 0.9),
    "bf16": (4 * GiB, 4 * GiB, 8 * GiB, 512 * MiB, 0.5),
    "bf16-weights": (2 * GiB, 2 * GiB, 4 * GiB, 512 * MiB, 0.5),
    "sgd": (4 * GiB, 4 * GiB, 0, 1 * GiB, 0.9),
}
PARAMS = 1_000_000_000


def fake_trial(plan: Plan, batch: int, seq: int = 128) -> TrialResult:
    if any(c in ("qlora", "adamw8bit") for c in plan.cut_names):
        return TrialResult(
            model="fake", plan=plan.name, cuts=plan.cut_names, device="fake-cpu", batch_size=batch,
            seq_len=seq, status=TrialStatus.UNSUPPORTED, reason=f"{plan.name} cannot be simulated",
        )  # fmt: skip
    params, grads, opt, act, _ = FAKE[plan.name]
    b = MemoryBreakdown(params, 0, grads, opt, 0, act * batch)
    trainable = PARAMS if grads >= GiB else PARAMS // 200
    return TrialResult(
        model="fake",
        plan=plan.name,
        cuts=plan.cut_names,
        device="fake-cpu",
        batch_size=batch,
        seq_len=seq,
        status=TrialStatus.OK,
        params=ParamCounts(PARAMS, trainable, params, params, Provenance.SIMULATED),
        tensor_peak=TensorPeak(b.total_bytes, b, params + opt, "backward", Provenance.SIMULATED),
    )


def fake_need(trial: TrialResult) -> PredictedNeed:
    return PredictedNeed((*tensor_parts(trial), NeedPart("CUDA context", OVERHEAD, Provenance.ESTIMATED)))


def fake_speed(trial: TrialResult, plan: Plan) -> tuple[float, Provenance]:
    return FAKE[plan.name][4] * trial.batch_size / 4, Provenance.ESTIMATED


FAKE_BACKENDS = Backends(trial=fake_trial, need=fake_need, step_time=fake_speed)


def fake_recommendation(
    memory: int = 24 * GiB,
    plans: str = "lora;grad-ckpt;grad-ckpt+lora;bf16;bf16-weights;sgd",
    margin: float = 0.10,
    gpu: str | None = None,
    rank_by: RankBy = RankBy.TIME,
):  # type: ignore[no-untyped-def]
    spec = get_gpu(gpu) if gpu else custom_gpu(memory)
    workload = Workload(micro_batch=4, seq_len=128, dataset_tokens=10_000_000, margin=margin)
    return recommend(
        "fake",
        [parse_plan(p) for p in plans.split(";")],
        spec,
        workload,
        FAKE_BACKENDS,
        rank_by=rank_by,
        check_top=2,
    )


def need_of(name: str, batch: int = 4) -> int:
    return fake_need(fake_trial(parse_plan(name), batch)).total_bytes


# -- ranking ---------------------------------------------------------------------------------


def test_every_fitting_plan_ranks_above_every_plan_that_does_not_fit() -> None:
    rec = fake_recommendation(memory=20 * GiB)
    fits = [v.fits for v in rec.ranked]
    assert True in fits and False in fits
    assert fits == sorted(fits, reverse=True)  # all True before all False
    assert [v.rank for v in rec.ranked] == list(range(1, len(rec.ranked) + 1))
    assert rec.best is rec.ranked[0] and rec.best.fits


def test_fitting_plans_are_ordered_by_time_then_the_rest_by_need() -> None:
    rec = fake_recommendation(memory=20 * GiB)
    times = [v.train_time_s for v in rec.fitting]
    assert times == sorted(times)  # type: ignore[type-var]
    rest = [v.need_bytes for v in rec.ranked if not v.fits]
    assert rest == sorted(rest)  # type: ignore[type-var]


def test_rank_by_cost_orders_by_cost() -> None:
    rec = fake_recommendation(memory=20 * GiB, rank_by=RankBy.COST)
    costs = [v.cost_usd for v in rec.fitting]
    assert costs == sorted(costs)  # type: ignore[type-var]
    assert rec.rank_by is RankBy.COST


def test_the_margin_is_respected() -> None:
    # baseline needs 16 GiB + 4 GiB activations + overhead; find a memory where it fits with no
    # margin but not with a 10% one
    need = need_of("baseline")
    memory = need + need // 20  # 5% above the need
    tight = fake_recommendation(memory=memory, plans="sgd", margin=0.10)
    loose = fake_recommendation(memory=memory, plans="sgd", margin=0.0)
    assert not tight.verdict("baseline").fits
    assert loose.verdict("baseline").fits
    for rec in (tight, loose):
        assert rec.budget_bytes == int(memory * (1 - rec.workload.margin))
        for v in rec.ranked:
            assert v.budget_bytes == rec.budget_bytes
            assert v.fits == (v.need_bytes is not None and v.need_bytes <= rec.budget_bytes)
            assert v.headroom_bytes == rec.budget_bytes - (v.need_bytes or 0)


def test_baseline_is_always_evaluated() -> None:
    rec = fake_recommendation(plans="lora")
    assert {v.plan for v in rec.ranked} == {"baseline", "lora"}


def test_times_and_costs_follow_the_workload_and_the_price() -> None:
    rec = fake_recommendation(gpu="rtx-4090", plans="lora")
    v = rec.verdict("lora")
    tokens_per_step = 4 * 128
    assert v.step_time_s == pytest.approx(0.7)
    assert v.tokens_per_s == pytest.approx(tokens_per_step / 0.7)
    assert v.train_time_s == pytest.approx(10_000_000 / v.tokens_per_s)
    assert v.cost_usd == pytest.approx(v.train_time_s / 3600 * rec.gpu.price_usd_per_hour)
    assert v.throughput_provenance is Provenance.ESTIMATED


def test_nothing_fits_gives_no_best() -> None:
    rec = fake_recommendation(memory=1 * GiB)
    assert rec.best is None
    assert all(not v.fits for v in rec.ranked)
    assert all(v.max_micro_batch == 0 for v in rec.ranked)


# -- the largest micro-batch -----------------------------------------------------------------


@pytest.mark.parametrize("budget", [1, 150, 1000, 1001, 12345, 400_000])
def test_largest_fitting_batch_on_a_line(budget: int) -> None:
    def need(b: int) -> int:
        return 100 + 7 * b

    size, checked = largest_fitting_batch(need, budget, {4: need(4)})
    assert checked
    expected = max(0, (budget - 100) // 7)
    assert size == expected
    if size:
        assert need(size) <= budget
    assert need(size + 1) > budget


def test_largest_fitting_batch_with_allocator_steps_and_out_of_memory() -> None:
    # rounded up to 20-unit segments, and sizes above 300 fail outright
    def need(b: int) -> int | None:
        return None if b > 300 else 20 * math.ceil((50 + 3 * b) / 20)

    for budget in (60, 200, 555, 950, 10_000):
        size, checked = largest_fitting_batch(need, budget, {})
        assert checked
        fits = [b for b in range(1, 400) if need(b) is not None and need(b) <= budget]  # type: ignore[operator]
        assert size == (max(fits) if fits else 0)


def test_largest_fitting_batch_stops_at_the_trial_budget() -> None:
    calls: list[int] = []

    def need(b: int) -> int:
        calls.append(b)
        return b

    # linear up to 5000, then steeply up: the linear guess is far off and the walk runs out
    size, checked = largest_fitting_batch(
        lambda b: need(b) * (1 if b < 5000 else 1000), 10**6, {}, max_trials=5
    )
    assert not checked
    assert 1 <= size < 5000  # a size that fits, not the boundary
    assert len(calls) <= 6


def test_estimate_from_one_trial_scales_the_activations() -> None:
    need = fake_need(fake_trial(parse_plan("lora"), 4))
    budget = 10 * GiB
    b = estimate_max_batch(need, 4, budget)
    fixed = need.total_bytes - need.part(ACTIVATIONS)
    assert fixed + b * GiB <= budget < fixed + (b + 1) * GiB


def test_reported_largest_micro_batch_fits_and_the_next_does_not() -> None:
    rec = fake_recommendation(memory=22 * GiB)
    checked = [v for v in rec.ranked if v.max_micro_batch_checked]
    assert len(checked) == 2  # check_top=2
    for v in checked:
        assert v.max_micro_batch is not None
        if v.max_micro_batch:
            assert need_of(v.plan, v.max_micro_batch) <= rec.budget_bytes
        assert need_of(v.plan, v.max_micro_batch + 1) > rec.budget_bytes
    for v in rec.ranked:
        if not v.max_micro_batch_checked:
            assert v.max_micro_batch_provenance is not None  # an estimate, said so


# -- exclusions ------------------------------------------------------------------------------


def test_a_t4_excludes_bf16_plans_with_the_reason() -> None:
    rec = fake_recommendation(gpu="t4", plans="bf16;bf16-weights;lora;sgd")
    excluded = {v.plan: v for v in rec.excluded}
    assert set(excluded) == {"bf16", "bf16-weights"}
    for v in excluded.values():
        assert v.exclusion == TARGET
        assert "no bf16 support" in (v.excluded_reason or "")
        assert "T4" in (v.excluded_reason or "")
        assert v.trial is None  # never run
    assert {v.plan for v in rec.ranked} == {"baseline", "lora", "sgd"}


def test_target_exclusion_checks_qlora_compute_dtype_and_amd() -> None:
    t4 = get_gpu("t4")
    assert target_exclusion(["fp16", "grad-ckpt"], t4) is None
    assert target_exclusion(["qlora"], t4, {"qlora": {"compute_dtype": "bfloat16"}}) is not None
    assert target_exclusion(["qlora"], t4) is None
    assert "bitsandbytes" in (target_exclusion(["adamw8bit"], get_gpu("mi300x")) or "")
    assert target_exclusion(["bf16"], get_gpu("rtx-4090")) is None


def test_plans_that_cannot_be_simulated_are_not_evaluated_with_the_reason() -> None:
    rec = fake_recommendation(plans="lora;qlora")
    v = rec.verdict("qlora")
    assert v in rec.excluded
    assert v.exclusion == NOT_EVALUATED
    assert "cannot be simulated" in (v.excluded_reason or "")


# -- Pareto front and why-lines --------------------------------------------------------------


def _verdict(name: str, need: int, speed: float, fits: bool = True) -> PlanVerdict:
    return PlanVerdict(
        name, (), {}, 100, 100,
        need=PredictedNeed((NeedPart(ACTIVATIONS, need, Provenance.SIMULATED),)),
        fits=fits, tokens_per_s=speed,
    )  # fmt: skip


def test_pareto_front_keeps_only_undominated_fitting_plans() -> None:
    vs = [
        _verdict("small-slow", 10, 1.0),
        _verdict("big-fast", 50, 5.0),
        _verdict("dominated", 60, 4.0),
        _verdict("middle", 30, 3.0),
        _verdict("too-big", 200, 9.0, fits=False),
    ]
    front = {v.plan for v in mark_pareto(vs) if v.pareto}
    assert front == {"small-slow", "big-fast", "middle"}


def test_rank_verdicts_numbers_from_one() -> None:
    ranked = rank_verdicts([_verdict("b", 10, 1.0, fits=False), _verdict("a", 20, 1.0)])
    assert [(v.rank, v.plan) for v in ranked] == [(1, "a"), (2, "b")]


def test_why_lines_compare_against_the_baseline() -> None:
    base = fake_trial(Plan(), 4)
    lora = why_line(fake_trial(parse_plan("lora"), 4), base, ("lora",))
    assert lora.startswith("LoRA removes")
    assert "of optimizer state" in lora and "of gradients" in lora
    assert "peak" in lora and "lower" in lora
    ckpt = why_line(fake_trial(parse_plan("grad-ckpt"), 4), base, ("grad-ckpt",))
    assert "checkpointing cuts activations by 75%" in ckpt
    assert why_line(base, base, ()).startswith("full fine-tuning (fp32, AdamW): the reference")


def test_every_ranked_plan_has_a_why() -> None:
    rec = fake_recommendation()
    assert all(v.why for v in rec.ranked)
    assert {v.name for v in rec.verdict("lora").need.parts} >= {GRADIENTS, OPTIMIZER}  # type: ignore[union-attr]


# -- fine-tune vs from scratch ---------------------------------------------------------------


def test_scratch_costs_twenty_tokens_per_parameter_with_a_full_training_plan() -> None:
    rec = fake_recommendation(memory=20 * GiB, gpu=None)
    c = rec.comparison
    assert c is not None and c.parameters == PARAMS
    assert c.scratch.tokens == SCRATCH_TOKENS_PER_PARAM * PARAMS
    assert c.finetune.tokens == rec.workload.total_tokens
    assert c.finetune.plan == rec.best.plan  # type: ignore[union-attr]
    scratch_plan = rec.verdict(c.scratch.plan)  # type: ignore[arg-type]
    assert scratch_plan.trains_all_parameters and scratch_plan.fits
    assert c.scratch.time_s == pytest.approx(c.scratch.tokens / scratch_plan.tokens_per_s)  # type: ignore[operator]
    assert c.ratio is not None and c.ratio > 1


def test_scratch_says_so_when_no_full_training_plan_fits() -> None:
    need_lora = need_of("grad-ckpt+lora")
    rec = fake_recommendation(memory=int(need_lora / 0.9) + MiB, plans="grad-ckpt+lora;grad-ckpt")
    c = rec.comparison
    assert c is not None and rec.best is not None and rec.best.plan == "grad-ckpt+lora"
    assert not c.scratch.fits
    assert "no plan that trains every parameter fits" in c.scratch.note


# -- the real thing: simulation on tiny models -----------------------------------------------


def test_advise_simulates_a_tiny_model_on_a_catalog_gpu() -> None:
    from advisor.api import advise

    rec = advise(
        "tiny-llama",
        gpu="rtx-4090",
        workload=Workload(micro_batch=2, seq_len=32),
        plans="lora;bf16",
        check_top=0,
    )
    assert rec.mode is Mode.SIMULATE
    assert {v.plan for v in rec.ranked} == {"baseline", "lora", "bf16"}
    best = rec.best
    assert best is not None and best.need is not None
    assert {p.name for p in best.need.parts} >= {"parameters", "activations", "CUDA context"}
    assert best.trial is not None and best.trial.tensor_peak is not None
    assert best.trial.tensor_peak.provenance is Provenance.SIMULATED
    # GPU speed is never a CPU timing: estimated from FLOPs when the target is not here
    assert all(v.throughput_provenance is Provenance.ESTIMATED for v in rec.ranked)
    assert rec.environment["torch"]
    assert rec.command.startswith("vram-advisor recommend --model tiny-llama --gpu rtx-4090")


def test_largest_micro_batch_checked_against_simulation() -> None:
    from advisor.api import advise
    from advisor.models import resolve_model
    from advisor.recommend import default_backends

    workload = Workload(micro_batch=2, seq_len=16, margin=0.0)
    plan = parse_plan("lora")
    probe = default_backends(resolve_model("tiny-gpt2"), custom_gpu(GiB), workload, Mode.SIMULATE)
    n1, n9 = (probe.need(probe.trial(plan, b)).total_bytes for b in (1, 9))
    budget = n1 + (n9 - n1) * 2 // 3 + 12345  # between the needs at micro-batch 1 and 9
    rec = advise("tiny-gpt2", gpu_mem=budget, workload=workload, plans="lora", check_top=1)
    top = rec.ranked[0]
    assert top.plan == "lora" and top.max_micro_batch_checked
    b = top.max_micro_batch
    assert b is not None and 1 <= b < 9
    backends = default_backends(resolve_model("tiny-gpt2"), rec.gpu, workload, Mode.SIMULATE)
    assert backends.need(backends.trial(plan, b)).total_bytes <= rec.budget_bytes
    assert backends.need(backends.trial(plan, b + 1)).total_bytes > rec.budget_bytes


def test_unknown_gpu_names_the_closest_entries() -> None:
    from advisor.api import advise

    with pytest.raises(UnknownGpuError) as info:
        advise("tiny-llama", gpu="rtx-4900")
    assert "rtx-4090" in str(info.value)
    assert "vram-advisor gpus" in (info.value.hint or "")


def test_measure_without_the_target_gpu_is_a_clear_error() -> None:
    import torch

    from advisor.api import advise

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InvalidInputError) as info:
        advise("tiny-llama", gpu="t4", mode="measure")
    assert "simulate instead" in (info.value.hint or "")


def test_a_budget_alone_is_a_custom_target() -> None:
    from advisor.api import advise

    rec = advise(
        "tiny-llama", gpu_mem="1GiB", workload=Workload(micro_batch=1, seq_len=8), plans="lora", check_top=0
    )
    assert rec.gpu.memory_bytes == GiB and rec.gpu.key == "custom-1GiB"
    assert "--gpu-mem 1GiB" in rec.command


@pytest.mark.slow
def test_llama_8b_on_a_24gb_gpu_recommends_a_lora_checkpointing_plan() -> None:
    """The acceptance case: Llama-3.1-8B preset, seq 2048, a 24 GB GPU."""
    from advisor.api import advise

    rec = advise(
        "llama-3.1-8b",
        gpu="rtx-4090",
        workload=Workload(micro_batch=1, seq_len=2048),
        plans="lora+grad-ckpt+bf16-weights",
        check_top=0,
    )
    best = rec.best
    assert best is not None and best.need is not None
    assert {"lora", "grad-ckpt"} <= set(best.cuts)
    assert best.need.total_bytes <= rec.budget_bytes
    full = rec.verdict("baseline")
    assert not full.fits and full.need is not None
    assert full.need.total_bytes > 5 * rec.gpu.memory_bytes  # ~150 GiB of fp32 AdamW state
    assert full.why.startswith("full fine-tuning")
    md = rec.to_markdown()
    assert "baseline" in md and "LoraConfig(" in md


def test_plan_verdicts_are_frozen() -> None:
    v = _verdict("a", 1, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.fits = False  # type: ignore[misc]


# -- the default need and speed models -------------------------------------------------------


def test_need_of_a_measured_trial_uses_the_allocator_and_nvml() -> None:
    from advisor.engines.overheads import gpu_need
    from advisor.recommend import ALLOCATOR, CONTEXT
    from profilers.records import CudaMemory, NvmlMemory

    trial = dataclasses.replace(
        fake_trial(Plan(), 1),
        cuda=CudaMemory("RTX 4090", 18 * GiB, 19 * GiB, 18 * GiB, 24 * GiB),
        nvml=NvmlMemory("RTX 4090", 20 * GiB, 19 * GiB + 600 * MiB, 24 * GiB, 100),
    )
    need = gpu_need(trial, get_gpu("rtx-4090"))
    assert need.provenance is Provenance.SIMULATED  # the fake trial's tensor peak is simulated
    assert need.part(ALLOCATOR) == 19 * GiB - trial.tensor_peak.peak_bytes  # type: ignore[union-attr]
    assert need.part(CONTEXT) == 600 * MiB
    assert {p.provenance for p in need.parts if p.name in (ALLOCATOR, CONTEXT)} == {Provenance.MEASURED}
    assert need.total_bytes == 19 * GiB + 600 * MiB


def test_need_of_a_simulated_trial_adds_estimated_overheads() -> None:
    from advisor.engines.overheads import gpu_need
    from advisor.recommend import ALLOCATOR, WORKSPACES
    from profilers.records import AllocatorPeak, SimulationRecord

    trial = fake_trial(Plan(), 1)
    peak = trial.tensor_peak.peak_bytes  # type: ignore[union-attr]
    replayed = dataclasses.replace(
        trial, simulation=SimulationRecord(cuda_allocator=AllocatorPeak(peak, peak + 40 * MiB, 1))
    )
    need = gpu_need(replayed, get_gpu("rtx-4090"))
    assert need.part(ALLOCATOR) == 40 * MiB
    assert need.part(WORKSPACES) > 0
    assert need.provenance is Provenance.ESTIMATED  # context and workspaces are estimates
    assert need.tensor_bytes == trial.tensor_peak.peak_bytes  # type: ignore[union-attr]


def test_cpu_timings_are_never_gpu_speed() -> None:
    from advisor.recommend import step_time_on
    from profilers.records import SimulationRecord, Timing

    cpu_timed = dataclasses.replace(fake_trial(Plan(), 4), timing=Timing(3, 0.05, 0.04, 0.06, 512, 4))
    assert step_time_on(cpu_timed, get_gpu("rtx-4090")) is None
    cost = {"flops_by_dtype": {"float32": 10**12, "bfloat16": 10**12}, "other_op_bytes": 10**9, "ops": 1000}
    simulated = dataclasses.replace(cpu_timed, simulation=SimulationRecord.from_dict({"step_cost": cost}))
    seconds, prov = step_time_on(simulated, get_gpu("rtx-4090"))  # type: ignore[misc]
    assert prov is Provenance.ESTIMATED and 0.01 < seconds < 1.0
    t4 = step_time_on(simulated, get_gpu("t4"))
    assert t4 is not None and t4[0] > seconds  # a slower GPU takes longer


def test_advise_takes_an_nn_module_instance() -> None:
    from torch import nn

    from advisor.api import advise
    from advisor.report.snippets import snippet_for

    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))
    rec = advise(model, gpu="t4", workload=Workload(micro_batch=2, seq_len=8), plans="sgd;bf16", check_top=0)
    assert rec.model == "Sequential" and rec.model_task == "custom"
    assert rec.command == ""  # no command line reproduces an in-memory module
    assert rec.verdict("bf16").exclusion == TARGET
    best = rec.best
    assert best is not None
    code = snippet_for(rec, best)
    assert "transformers" not in code and "optimizer.step()" in code


def test_estimated_max_batch_uses_forward_growth_when_the_peak_is_after_backward() -> None:
    # SGD's peak is at the end of backward (parameters + gradients, activations freed), so the
    # peak's own activation part hardly grows with the batch; the forward phase's rise does.
    from advisor.api import advise
    from advisor.recommend.workload import Workload

    def max_batch(check_top: int) -> int:
        rec = advise(
            "tiny-llama", gpu="t4", workload=Workload(micro_batch=2, seq_len=64), plans="sgd",
            mode="simulate", check_top=check_top,
        )  # fmt: skip
        v = rec.verdict("sgd")
        assert v.max_micro_batch is not None
        return v.max_micro_batch

    estimated, checked = max_batch(0), max_batch(1)
    assert estimated < 1 << 16  # not the "unbounded" cap
    assert abs(estimated - checked) / checked < 0.3


# -- activation offload and upper bounds -----------------------------------------------------


def test_simulating_compile_gives_the_eager_figure_marked_an_upper_bound() -> None:
    from advisor.engines.simulate import simulate

    compiled = simulate("tiny-llama", "compile+lora", 1, 16, count_cost=False)
    eager = simulate("tiny-llama", "lora", 1, 16, count_cost=False)
    assert compiled.status is TrialStatus.OK and compiled.plan == "lora+compile"
    assert compiled.tensor_peak == eager.tensor_peak  # the eager replay's own figure
    assert compiled.simulation is not None and eager.simulation is not None
    assert compiled.simulation.upper_bound == "upper bound: eager replay of a compiled plan"
    assert eager.simulation.upper_bound is None


def _with_simulation(trial: TrialResult, **record: object) -> TrialResult:
    from profilers.records import SimulationRecord

    return dataclasses.replace(trial, simulation=SimulationRecord(**record))  # type: ignore[arg-type]


def test_offload_is_ranked_by_device_memory_and_shows_host_memory_and_bounds_are_not_exact() -> None:
    from advisor.report.markdown import to_markdown
    from advisor.report.text import to_text

    host = 3 * GiB

    def trial(plan: Plan, batch: int) -> TrialResult:
        if plan.name == "lora+offload":  # lora's device figures, less the saved activations
            t = fake_trial(parse_plan("lora"), batch)
            assert t.tensor_peak is not None
            b = dataclasses.replace(t.tensor_peak.breakdown, activation_bytes=t.tensor_peak.breakdown.activation_bytes // 4)
            peak = dataclasses.replace(t.tensor_peak, peak_bytes=b.total_bytes, breakdown=b)
            t = dataclasses.replace(t, plan=plan.name, cuts=plan.cut_names, tensor_peak=peak)
            return _with_simulation(t, host_peak_bytes=host)
        if plan.name == "lora+compile":
            t = fake_trial(parse_plan("lora"), batch)
            t = dataclasses.replace(t, plan=plan.name, cuts=plan.cut_names)
            return _with_simulation(
                t, upper_bound="upper bound: eager replay of a compiled plan", autocast_policy="cuda policy (torch 2.13)"
            )
        return fake_trial(plan, batch)

    def speed(t: TrialResult, plan: Plan) -> tuple[float, Provenance]:
        return FAKE["lora"][4] * t.batch_size / 4, Provenance.ESTIMATED

    backends = Backends(trial=trial, need=fake_need, step_time=speed)
    workload = Workload(micro_batch=4, seq_len=128, dataset_tokens=10_000_000)
    plans = [parse_plan(p) for p in ("lora", "lora+offload", "compile+lora")]
    rec = recommend("fake", plans, custom_gpu(24 * GiB), workload, backends, check_top=0)
    off, lora = rec.verdict("lora+offload"), rec.verdict("lora")
    assert off.need is not None and lora.need is not None
    # the need is the device's: host memory is not in it
    assert off.need.total_bytes == need_of("lora") - 3 * 4 * GiB // 4
    assert off.rank < lora.rank  # same speed, less device memory: first
    notes = " ".join(rec.notes)
    assert "Upper bounds, not exact: lora+compile" in notes
    assert "lora+offload 3.00 GiB" in notes
    text = to_text(rec)
    assert "≤ " in next(line for line in text.splitlines() if "lora+compile" in line)
    assert "lora+offload: + 3.0 GiB pinned host memory for offloaded activations (simulated)" in text
    markdown = to_markdown(rec)
    assert "lora+offload: + 3.0 GiB pinned host memory" in markdown
    assert "autocast — cuda policy (torch 2.13) op lists" in markdown  # whose cast lists were followed
