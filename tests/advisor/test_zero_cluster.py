"""ZeRO as a cut, one simulated rank, communication per step, the interconnect catalog, cluster
shapes, launch snippets, the bad-input errors and the report schema's per-rank fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from advisor.catalog.gpus import get_gpu, inter_node_link, intra_node_link
from advisor.core.errors import AdvisorError, InvalidInputError, PlanError
from advisor.engines.comm import all_gather_bytes, all_reduce_bytes, comm_estimate, comm_volume
from advisor.engines.need import PredictedNeed, tensor_parts
from advisor.plans import Plan
from advisor.plans.cuts import parse_plan
from advisor.recommend.cluster import ShapeBackends, gpu_counts, nodes_for, recommend_shapes
from advisor.recommend.workload import Workload
from advisor.report import load_report
from advisor.report.launch import accelerate_fsdp_yaml, deepspeed_config, launch_snippets
from profilers.records import (
    DistributedRecord,
    MemoryBreakdown,
    Provenance,
    TensorPeak,
    TrialResult,
    TrialStatus,
)

ROOT = Path(__file__).resolve().parents[2]


# -- the cut and the bad input ---------------------------------------------------------------


def test_zero_parses_with_its_parameters_and_refuses_bad_ones() -> None:
    plan = parse_plan("zero(stage=3,offload_optimizer=cpu)+lora")
    cut = next(c for c in plan.cuts if c.name == "zero")
    assert cut.distributed and cut.group == "strategy"
    assert "zero(offload_optimizer=cpu,stage=3)" in plan.name
    with pytest.raises(PlanError, match="stage must be 1, 2 or 3"):
        parse_plan("zero(stage=4)")
    with pytest.raises(PlanError, match="offload_params needs stage 3"):
        parse_plan("zero(stage=2,offload_params=cpu)")


@pytest.mark.slow
def test_a_strategy_on_one_gpu_and_zero_gpus_are_one_clear_error_each() -> None:
    from advisor import api

    with pytest.raises(InvalidInputError, match=r"needs more than one GPU .*, but gpus=1"):
        api.simulate("tiny-llama", "zero(stage=3)", gpus=1)
    with pytest.raises(InvalidInputError, match="whole number ≥ 1, got 0"):
        api.simulate("tiny-llama", "zero(stage=3)", gpus=0)
    with pytest.raises(InvalidInputError, match="must be ≥ 1, got 0"):
        gpu_counts("1,0,4")


def test_a_measured_zero_run_without_deepspeed_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor import api
    from advisor.plans.cuts import zero

    monkeypatch.setattr(zero.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AdvisorError, match="needs DeepSpeed, which is not installed") as info:
        api.profile("tiny-llama", plan="zero(stage=2)")
    assert "simulate" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["recommend", "--model", "tiny-llama", "--gpus", "0", "--plans", "zero"], "must be ≥ 1, got 0"),
        (["simulate", "--model", "tiny-llama", "--plans", "zero(stage=3)"], "needs more than one GPU"),
    ],
)
def test_cli_shows_one_line_and_no_traceback(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and needle in err and "Traceback" not in err


# -- one simulated rank -----------------------------------------------------------------------


@pytest.mark.slow
def test_one_zero_rank_keeps_the_replays_activations_and_lays_out_model_states(fast_simulations: None) -> None:
    from advisor import api

    # DeepSpeed's bf16 mode casts the module (no autocast): the rank replays bf16-weights, and
    # keeps its forward's activations over what was resident (not the optimizer's temporaries)
    local = api.simulate("tiny-llama", "bf16-weights", batch_size=2, seq_len=32)
    rank = api.simulate("tiny-llama", "zero(stage=2)+bf16", batch_size=2, seq_len=32, gpus=4)
    assert rank.ok and rank.distributed is not None and local.tensor_peak and rank.tensor_peak
    assert local.simulation is not None
    lb, rb = local.tensor_peak.breakdown, rank.tensor_peak.breakdown
    forward = local.simulation.phase_peaks["forward"] - local.tensor_peak.resident_before_step_bytes
    assert rb.activation_bytes == forward and rb.input_bytes == lb.input_bytes
    p = rank.params.total if rank.params else 0
    # stage 2 over 4 ranks: 16-bit weights whole (2 B), 16 B of fp32 partitions per parameter / 4
    # (no 16-bit gradient partition: a real DeepSpeed 0.19.8 bf16 run reduces into the fp32 one)
    layout = rank.distributed.layout
    assert layout["parameters"] == 2 * p
    assert layout["gradients"] == 0
    assert layout["fp32 master"] + layout["optimizer state"] + layout["fp32 gradients"] == 16 * p // 4
    assert rb.communication_buffer_bytes == 500_000_000 * 2
    assert rank.tensor_peak.peak_bytes == rb.total_bytes
    assert rank.tensor_peak.provenance is Provenance.ESTIMATED
    # the need shows the buckets as their own part
    assert any(part.name == "communication buffers" for part in tensor_parts(rank))
    # more ranks: less per rank
    more = api.simulate("tiny-llama", "zero(stage=2)+bf16", batch_size=2, seq_len=32, gpus=8)
    assert more.tensor_peak and more.tensor_peak.peak_bytes < rank.tensor_peak.peak_bytes


# -- communication ----------------------------------------------------------------------------


def test_ring_collective_volumes() -> None:
    g, p = 8_000, 4_000
    assert all_reduce_bytes(g, 4) == 2 * 3 * g // 4
    assert all_gather_bytes(p, 4) == 3 * p // 4
    assert dict(comm_volume("ddp", parameter_bytes=p, gradient_bytes=g, world_size=4)) == {
        "all-reduce gradients": 12_000
    }
    z3 = comm_volume("zero-3", parameter_bytes=p, gradient_bytes=g, world_size=4, accumulation_steps=2)
    assert sum(b for _, b in z3) == 2 * (2 * 3_000 + 6_000)  # gathers in fwd + bwd, RS, per micro-batch
    z2 = comm_volume("zero-2", parameter_bytes=p, gradient_bytes=g, world_size=4, accumulation_steps=2)
    assert sum(b for _, b in z2) == 2 * 6_000 + 3_000
    assert comm_volume("zero-3", parameter_bytes=p, gradient_bytes=g, world_size=1) == ()


def test_comm_time_uses_nvlink_in_a_node_and_infiniband_across_nodes() -> None:
    h100 = get_gpu("h100")
    assert intra_node_link(h100).bytes_per_s == 450e9 and "NVLink" in intra_node_link(h100).source
    assert intra_node_link(get_gpu("rtx-4090")).name == "pcie4"
    one = comm_estimate("ddp", h100, parameter_bytes=0, gradient_bytes=10**9, world_size=8)
    two = comm_estimate("ddp", h100, parameter_bytes=0, gradient_bytes=10**9, world_size=16, nodes=2)
    assert one.time_s == pytest.approx(2 * 7 / 8 * 1e9 / 450e9)
    assert two.link == inter_node_link() and two.time_s == pytest.approx(2 * 15 / 16 * 1e9 / 50e9)
    assert one.provenance is Provenance.ESTIMATED


def test_every_catalog_gpu_has_an_interconnect_with_its_source() -> None:
    from advisor.catalog.gpus import list_gpus

    for gpu in list_gpus():
        assert gpu.interconnect_bytes_per_s and gpu.interconnect
        assert gpu.source("interconnect_bytes_per_s")
        assert gpu.from_dict(gpu.to_dict()) == gpu


# -- cluster shapes ---------------------------------------------------------------------------


def test_gpu_counts() -> None:
    assert gpu_counts("8,1,2,2") == (1, 2, 8)
    assert gpu_counts(max_gpus=12) == (1, 2, 4, 8, 12)
    assert gpu_counts() == (1,)
    assert nodes_for(16) == 2 and nodes_for(4) == 1


def _stub_trial(per_gpu_model: int, activations: int) -> ShapeBackends:
    """One rank whose model states split over N (as ZeRO-3's do) plus fixed activations."""

    def trial(plan: Plan, gpus: int, nodes: int) -> TrialResult:
        states = per_gpu_model // gpus
        b = MemoryBreakdown(states, 0, 0, 0, 0, activations)
        return TrialResult(
            model="m", plan=plan.name, cuts=plan.cut_names, device="fake", batch_size=1, seq_len=8,
            status=TrialStatus.OK, tensor_peak=TensorPeak(b.total_bytes, b, states, "backward"),
            distributed=DistributedRecord(world_size=gpus, strategy="zero-3", comm_bytes_per_step=10**9),
        )  # fmt: skip

    def need(t: TrialResult) -> PredictedNeed:
        return PredictedNeed(tensor_parts(t))

    return ShapeBackends(trial=trial, need=need, compute_time=lambda t: (1.0, Provenance.ESTIMATED))


def test_the_fewest_gpus_that_fit_and_the_cost_of_n_gpus() -> None:
    gpu = get_gpu("h100")  # 80 GiB, margin 10%: 72 GiB usable
    gib = 2**30
    backends = _stub_trial(per_gpu_model=500 * gib, activations=4 * gib)
    workload = Workload(micro_batch=1, seq_len=8, dataset_tokens=8 * 8 * 100)
    rec = recommend_shapes(
        "m", [parse_plan("zero(stage=3)"), parse_plan("bf16")], gpu, (1, 2, 4, 8, 16), workload, backends
    )
    smallest = rec.smallest()
    # 500/N + 4 ≤ 72 → N ≥ 7.35: 8 is the fewest among 1, 2, 4, 8, 16
    assert smallest["zero(stage=3)"] is not None and smallest["zero(stage=3)"].gpus == 8
    eight = smallest["zero(stage=3)"]
    # step: 1 s compute + 1 GB over NVLink (450 GB/s); 100 steps of 8 ranks × 8 tokens
    step = 1.0 + 1e9 / 450e9
    assert eight.step_time_s == pytest.approx(step)
    assert eight.cost_usd == pytest.approx(100 * step / 3600 * gpu.price_usd_per_hour * 8)
    sixteen = next(v for v in rec.shapes if v.plan == "zero(stage=3)" and v.gpus == 16)
    assert sixteen.nodes == 2 and sixteen.comm_time_s == pytest.approx(1e9 / 50e9)  # InfiniBand
    # the single-GPU plan is tried at 1 only, the strategy at 2 or more
    assert [v.gpus for v in rec.shapes if v.plan == "bf16"] == [1]
    assert [v.gpus for v in rec.shapes if v.plan == "zero(stage=3)"] == [2, 4, 8, 16]
    data = rec.to_dict()
    assert data["smallest"]["zero(stage=3)"] == 8
    from advisor.report import cluster_markdown, cluster_text

    text = cluster_text(rec, 200)
    assert "zero(stage=3): 8 GPUs" in text
    md = cluster_markdown(rec)
    assert "ds_config.json" in md and '"stage": 3' in md


# -- launch snippets, loaded by the real libraries --------------------------------------------


def test_deepspeed_config_loads_in_deepspeeds_own_config_class() -> None:
    config_mod = pytest.importorskip("deepspeed.runtime.zero.config")
    snippets = launch_snippets({"zero": {"stage": 3, "offload_optimizer": "cpu"}, "bf16": {}}, 16, 2, micro_batch=2)
    assert snippets is not None and "--num_nodes 2 --num_gpus 8" in snippets.command
    data = json.loads(snippets.files["ds_config.json"])
    assert data["bf16"]["enabled"] and data["train_micro_batch_size_per_gpu"] == 2
    zero = config_mod.DeepSpeedZeroConfig(**data["zero_optimization"])
    assert zero.stage == 3 and zero.offload_optimizer.device == "cpu"
    assert zero.prefetch_bucket_size == 50_000_000 and zero.reduce_bucket_size == 500_000_000
    stage1 = config_mod.DeepSpeedZeroConfig(**deepspeed_config(1)["zero_optimization"])
    assert stage1.stage == 1 and stage1.overlap_comm is False


def test_accelerate_fsdp_yaml_loads_in_accelerates_cluster_config(tmp_path: Path) -> None:
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    path = tmp_path / "fsdp.yaml"
    path.write_text(accelerate_fsdp_yaml(16, 2, reshard=False))
    data = yaml.safe_load(path.read_text())
    assert data["fsdp_config"]["fsdp_version"] == 2 and data["fsdp_config"]["fsdp_reshard_after_forward"] is False
    config = config_args.ClusterConfig.from_yaml_file(str(path))
    assert config.num_processes == 16 and config.num_machines == 2
    snippets = launch_snippets({"fsdp2": {"reshard": True}}, 4)
    assert snippets is not None and snippets.command.startswith("torchrun --nproc-per-node 4")
    compile(snippets.files["train.py"], "train.py", "exec")  # valid Python
    assert launch_snippets({"lora": {}}, 1) is None


# -- report schema ----------------------------------------------------------------------------


def test_old_version_reports_still_load_and_new_ones_carry_per_rank_fields() -> None:
    old = ROOT / "reports" / "examples" / "tiny-llama-rtx-4090.json"
    assert json.loads(old.read_text())["schema_version"] == 1
    rec = load_report(old)
    assert rec.ranked and all(v.gpus == 1 and v.comm_bytes_per_step is None for v in rec.ranked)
    data = json.loads(rec.to_json())
    assert data["schema_version"] == 2 and data["ranked"][0]["gpus"]["value"] == 1


def test_the_markdown_report_gives_the_launch_of_a_distributed_best_plan() -> None:
    import dataclasses

    from advisor.report import to_markdown

    rec = load_report(ROOT / "reports" / "examples" / "tiny-llama-rtx-4090.json")
    best = rec.best
    assert best is not None
    assert "### Launch on" not in to_markdown(rec)  # one GPU: no launch section
    zero = dataclasses.replace(best, gpus=8, cut_settings={**best.cut_settings, "zero": {"stage": 3}})
    ranked = tuple(zero if v is best else v for v in rec.ranked)
    md = to_markdown(dataclasses.replace(rec, ranked=ranked))
    assert "### Launch on 8 GPUs" in md and "deepspeed --num_nodes 1 --num_gpus 8" in md
    assert '"stage": 3' in md


@pytest.mark.slow
def test_a_measured_sweep_records_zero_as_unsupported_never_as_a_single_gpu_figure() -> None:
    from advisor.engines.measure import measure_plan
    from advisor.models import resolve_model

    result = measure_plan(parse_plan("zero(stage=2)"), resolve_model("tiny-llama"), 1, 8, device="cpu", steps=0)
    assert result.status is TrialStatus.UNSUPPORTED and "simulate it with gpus=N" in (result.reason or "")
    assert result.tensor_peak is None
