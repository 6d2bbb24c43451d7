"""The API the front ends call: the target GPU, the plans, many simulations, what a result
means on a GPU, and ranking trials in hand."""

from __future__ import annotations

import pytest

from advisor import api
from advisor.catalog.gpus import get_gpu
from advisor.core.errors import AdvisorError, UnknownGpuError
from profilers.records import TrialStatus

GIB = 2**30


# -- target_gpu: the one place a memory budget is applied to a GPU ---------------------------


def test_target_gpu_is_the_catalog_entry() -> None:
    assert api.target_gpu("t4") == get_gpu("t4")
    assert api.target_gpu(get_gpu("a100-80gb")) == get_gpu("a100-80gb")
    assert api.target_gpu().key == "rtx-4090"  # the default target


def test_target_gpu_from_a_budget_alone() -> None:
    spec = api.target_gpu(gpu_mem="22GiB")
    assert spec.key == "custom-22GiB" and spec.memory_bytes == 22 * GIB
    assert api.target_gpu(gpu_mem=22 * GIB) == spec  # bytes or text


def test_target_gpu_overrides_a_catalog_gpus_memory_and_price() -> None:
    h100 = get_gpu("h100")
    spec = api.target_gpu("h100", "40GiB", price_usd_per_hour=1.5)
    assert spec.key == h100.key and spec.name == h100.name
    assert spec.memory_bytes == 40 * GIB and spec.price_usd_per_hour == 1.5
    assert spec.bandwidth_bytes_per_s == h100.bandwidth_bytes_per_s
    assert "overridden" in spec.source("memory_bytes")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gpu": "no-such-gpu"},
        {"gpu_mem": "0"},
        {"gpu_mem": "lots"},
        {"gpu_mem": -1},
        {"gpu": "t4", "gpu_mem": 0},
        {"gpu": "t4", "price_usd_per_hour": -2.0},
    ],
)
def test_target_gpu_rejects_bad_input_with_an_advisor_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(AdvisorError) as caught:
        api.target_gpu(**kwargs)  # type: ignore[arg-type]
    assert caught.value.hint


def test_an_unknown_gpu_names_the_catalog() -> None:
    with pytest.raises(UnknownGpuError):
        api.target_gpu("rtx4900")


# -- plans -----------------------------------------------------------------------------------


def test_plan_space_from_cuts_or_plans() -> None:
    space = api.plan_space(plans="lora;sgd")
    assert [p.name for p in space.plans] == ["baseline", "lora", "sgd"]
    combos = api.plan_space(cuts="lora,sgd", max_combo=2)
    assert [p.name for p in combos.plans] == ["baseline", "lora", "sgd", "lora+sgd"]
    assert api.plan_space(cuts=["lora", "sgd"]).plans == api.plan_space(cuts="lora,sgd").plans
    with pytest.raises(AdvisorError):
        api.plan_space(cuts="lora", plans="sgd")


def test_one_plan_from_cuts_or_plan_text() -> None:
    assert api.one_plan(cuts="lora,grad-ckpt").name == api.one_plan(plans="lora+grad-ckpt").name
    assert api.one_plan().name == "baseline"
    with pytest.raises(AdvisorError, match="2 plans"):
        api.one_plan(plans="lora;sgd")


def test_cut_names_leave_out_the_opt_in_cuts() -> None:
    names = api.cut_names()
    assert "lora" in names and "grad-ckpt" in names and "compile" not in names


# -- simulations and what they mean on a GPU -------------------------------------------------


def test_simulate_plans_runs_each_plan_and_keeps_going() -> None:
    seen: list[str] = []
    sims = api.simulate_plans(
        "tiny-gpt2", plans="freeze-layers(k=99);lora", batch_size=1, seq_len=16, workers=1,
        on_result=lambda r: seen.append(r.plan),
    )  # fmt: skip
    assert [r.plan for r in sims.results] == ["baseline", "freeze-layers(k=99)", "lora"] == seen
    failed = sims.results[1]  # tiny-gpt2 has 2 layers: this plan fails, the next one still runs
    assert failed.status is TrialStatus.ERROR and failed.reason and "2 layers" in failed.reason
    assert sims.results[-1].status is TrialStatus.OK


def test_gpu_figures_fit_by_the_recommenders_rule() -> None:
    result = api.simulate("tiny-gpt2", "lora", batch_size=1, seq_len=16)
    alone = api.gpu_figures(result)
    assert alone.need is not None and alone.fits is None and alone.timing is None
    need = alone.need.total_bytes
    exact = api.target_gpu(gpu_mem=need)
    assert api.gpu_figures(result, exact, margin=0).fits is True  # no margin: the need itself fits
    assert api.gpu_figures(result, exact).fits is False  # the default keeps 10% free
    assert api.gpu_figures(result, exact).margin == 0.10 == api.DEFAULT_MARGIN
    assert api.gpu_figures(result, exact).budget_bytes == int(need * 0.9)
    assert api.gpu_figures(result, api.target_gpu(gpu_mem=need - 1), margin=0).fits is False
    on_t4 = api.gpu_figures(result, get_gpu("t4"))
    assert on_t4.fits is True and on_t4.timing is not None and on_t4.cost is not None


def test_gpu_figures_of_a_failed_result_have_no_need() -> None:
    result = api.simulate("tiny-gpt2", "freeze-layers(k=99)", batch_size=1, seq_len=16)
    figures = api.gpu_figures(result, get_gpu("t4"))
    assert figures.need is None and figures.fits is None and figures.timing is None


def test_growth_limits_on_a_gpu() -> None:
    limits = api.growth_limits("tiny-gpt2", "lora", batch_size=2, seq_len=16, gpu=get_gpu("t4"))
    assert limits.fit.holdout_error is not None
    assert limits.max_batch is not None and limits.max_batch >= 2
    assert limits.max_seq is not None and limits.max_seq >= 16
    assert api.growth_limits("tiny-gpt2", "lora", batch_size=2, seq_len=16).max_batch is None


# -- ranking trials in hand ------------------------------------------------------------------


def test_check_run_rejects_bad_input() -> None:
    with pytest.raises(AdvisorError, match="unknown model"):
        api.check_run("no-such-model", api.Workload())
    assert api.check_run("tiny-gpt2", api.Workload(micro_batch=1, seq_len=16)).name == "tiny-gpt2"


def test_rank_plans_reranks_from_trials_in_hand() -> None:
    workload = api.Workload(micro_batch=1, seq_len=16)
    source = api.check_run("tiny-gpt2", workload)
    plans = list(api.plan_space(plans="lora").plans)
    t4 = get_gpu("t4")
    trials = api.plan_trials(source, t4, workload)
    ran: list[tuple[str, int]] = []

    def counting(plan: api.Plan, batch: int) -> object:
        ran.append((plan.name, batch))
        return trials(plan, batch)

    first = api.rank_plans(source, plans, t4, workload, trial=counting, check_top=0)  # type: ignore[arg-type]
    assert {v.plan for v in first.ranked} == {"baseline", "lora"}
    again = api.rank_plans(source, plans, get_gpu("h100"), workload, trial=trials, check_top=0)
    assert again.gpu.key == "h100-sxm" and again.budget_bytes > first.budget_bytes
    assert sorted(ran) == [("baseline", 1), ("lora", 1)]


def test_recommend_command_takes_plain_strings() -> None:
    line = api.recommend_command("tiny-gpt2", api.target_gpu(gpu_mem="1GiB"), api.Workload(), mode="simulate")
    assert line.startswith("vram-advisor recommend --model tiny-gpt2 --gpu-mem 1GiB") and "--simulate" in line
