"""Strategies over several GPUs (ddp, fsdp2, hsdp): bad input, the per-rank record, a simulated
rank's shard layout against FSDP2's own rule, and (slow) simulated against measured torchrun
ranks."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from advisor import api
from advisor.core.errors import InvalidInputError
from advisor.engines.distributed import gather_ranks, measure_distributed_plans
from advisor.engines.simulate import simulate
from advisor.models import resolve_model
from advisor.plans import parse_plan
from advisor.plans.cuts.distributed import check_world
from profilers.records import DistributedRecord, MemoryBreakdown, TensorPeak, TrialResult, TrialStatus

# -- bad input: one clear error each ---------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "gpus", "words"),
    [
        ("fsdp2", 0, "≥ 1"),
        ("fsdp2", -2, "≥ 1"),
        ("fsdp2", 1, "gpus=1"),
        ("ddp+lora", 1, "gpus=1"),
        ("hsdp(shard=4)", 6, "divisible by 4"),
        ("lora", 4, "need a strategy"),
    ],
)
def test_check_world_refuses_what_cannot_run(plan: str, gpus: int, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words) as err:
        check_world(parse_plan(plan), gpus)
    assert err.value.hint


def test_check_world_accepts_a_strategy_on_several_gpus_and_none_on_one() -> None:
    check_world(parse_plan("fsdp2+lora"), 2)
    check_world(parse_plan("hsdp(shard=4)"), 8)
    check_world(parse_plan("lora"), 1)


def test_two_strategies_conflict() -> None:
    assert parse_plan("fsdp2+ddp").conflict() == "ddp and fsdp2 both choose the strategy"


@pytest.mark.slow  # a replay or a subprocess: seconds each on a loaded CI machine
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["simulate", "--plans", "fsdp2", "--gpus", "0"], "whole number ≥ 1, got 0"),
        (["simulate", "--plans", "fsdp2", "--gpus", "1"], "fsdp2 is a distributed strategy and needs more than one GPU (it shards over several), but --gpus 1"),
        (["simulate", "--plans", "hsdp(shard=4)", "--gpus", "6"], "divisible by 4, got 6"),
        (["profile", "--plans", "ddp", "--nproc", "1"], "ddp is a distributed strategy and needs more than one GPU"),
    ],
)
def test_cli_bad_world_is_one_line_without_traceback(args: list[str], words: str) -> None:
    code = "from advisor.cli import main; raise SystemExit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--model", "tiny-gpt2", "-q"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert words in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        next(line for line in proc.stderr.splitlines() if line.startswith("error:"))
    ]


# -- the record ------------------------------------------------------------------------------


def _result(peak: int, *, status: TrialStatus = TrialStatus.OK) -> TrialResult:
    breakdown = MemoryBreakdown(peak - 100, 0, 0, 0, 0, 60, communication_buffer_bytes=40)
    return TrialResult(
        model="m", plan="fsdp2", cuts=("fsdp2",), device="cpu", batch_size=1, seq_len=8, status=status,
        tensor_peak=TensorPeak(peak, breakdown, peak - 100, "backward"),
    )  # fmt: skip


def test_distributed_record_round_trips_and_old_results_load() -> None:
    record = DistributedRecord(
        world_size=4, rank=1, strategy="fsdp2", rank_peak_bytes=(90, 100, 95, 80), runs=3
    )
    result = TrialResult.from_dict(json.loads(json.dumps({**_result(100).to_dict(), "distributed": None})))
    assert result.distributed is None
    with_record = TrialResult.from_dict(json.loads(json.dumps(_replace(_result(100), record).to_dict())))
    assert with_record.distributed == record
    assert with_record.distributed.spread == pytest.approx(0.2)
    assert with_record.tensor_peak is not None
    assert with_record.tensor_peak.breakdown.communication_buffer_bytes == 40
    old = _result(100).to_dict()
    del old["distributed"]
    del old["tensor_peak"]["breakdown"]["communication_buffer_bytes"]
    loaded = TrialResult.from_dict(old)
    assert loaded.distributed is None and loaded.tensor_peak is not None
    assert loaded.tensor_peak.breakdown.communication_buffer_bytes == 0


def _replace(result: TrialResult, record: DistributedRecord) -> TrialResult:
    import dataclasses

    return dataclasses.replace(result, distributed=record)


def test_gather_ranks_keeps_the_highest_rank_of_all_runs_and_every_ranks_maximum() -> None:
    plan = parse_plan("fsdp2")
    runs = [[_result(100), _result(120)], [_result(130), _result(110)]]
    out = gather_ranks(runs, plan, 2, backend="gloo")
    assert out.tensor_peak is not None and out.tensor_peak.peak_bytes == 130
    assert out.distributed is not None
    assert (out.distributed.rank, out.distributed.rank_peak_bytes, out.distributed.runs) == (0, (130, 120), 2)
    failed = _result(1, status=TrialStatus.ERROR)
    assert gather_ranks([[_result(100), failed]], plan, 2, backend="gloo") is failed


# -- a simulated rank: FSDP2's shards as its own rule lays them out --------------------------


def _padded_shard_bytes(model: str, world: int) -> int:
    """Bytes of one rank's shards of every parameter by FSDP2's rule (torch 2.13,
    ``FSDPParam._init_sharded_param``): dim 0 split in ``world`` chunks of ceil(dim0 / world)
    rows; rank 0 holds the first, full chunk (shared tensors once)."""
    built = resolve_model(model).build("meta")
    total = 0
    for p in built.parameters():
        rows = math.ceil(p.shape[0] / world) if p.dim() else 1
        total += rows * (p.numel() // max(p.shape[0], 1) if p.dim() else 1) * p.element_size()
    return total


@pytest.mark.slow  # a replay or a subprocess: seconds each on a loaded CI machine
@pytest.mark.parametrize("world", [2, 4])
def test_simulated_fsdp2_rank_holds_its_shard_of_every_parameter(world: int) -> None:
    result = simulate("tiny-gpt2", "fsdp2", 1, 16, gpus=world, target="cpu", count_cost=False)
    assert result.ok, result.reason
    peak = result.tensor_peak
    assert peak is not None and result.distributed is not None
    # resident at the step's start: rank 0's parameter shards and AdamW's two moments of them
    expected = _padded_shard_bytes("tiny-gpt2", world)
    assert peak.breakdown.parameter_bytes == expected
    assert result.distributed.world_size == world
    assert result.distributed.strategy == "fsdp2"
    assert result.distributed.communication_buffer_bytes == peak.breakdown.communication_buffer_bytes > 0
    assert result.params is not None  # counted over the whole model, not a shard
    assert result.params.total == sum(
        p.numel() for p in resolve_model("tiny-gpt2").build("meta").parameters()
    )


@pytest.mark.slow  # a replay or a subprocess: seconds each on a loaded CI machine
def test_simulated_ddp_rank_holds_a_whole_replica_and_its_buckets() -> None:
    single = simulate("tiny-gpt2", "lora", 1, 16, target="cpu", count_cost=False)
    ddp = simulate("tiny-gpt2", "ddp+lora", 1, 16, gpus=2, target="cpu", count_cost=False)
    assert single.ok and ddp.ok, (single.reason, ddp.reason)
    assert single.tensor_peak is not None and ddp.tensor_peak is not None and single.params is not None
    # DDP's reducer keeps one flat bucket per dtype covering every trainable parameter
    assert ddp.tensor_peak.breakdown.communication_buffer_bytes == single.params.trainable_bytes
    assert ddp.tensor_peak.peak_bytes == single.tensor_peak.peak_bytes + single.params.trainable_bytes


@pytest.mark.slow  # a replay or a subprocess: seconds each on a loaded CI machine
def test_more_gpus_shard_more() -> None:
    peaks = [
        simulate("tiny-llama", "fsdp2", 1, 16, gpus=n, target="cpu", count_cost=False).tensor_peak
        for n in (2, 4, 8)
    ]
    resident = [p.resident_before_step_bytes for p in peaks if p is not None]
    assert len(resident) == 3 and resident[0] > resident[1] > resident[2]


@pytest.mark.slow  # a replay or a subprocess: seconds each on a loaded CI machine
def test_api_simulate_takes_gpus() -> None:
    result = api.simulate("tiny-gpt2", "fsdp2+lora", batch_size=1, seq_len=16, gpus=2, target="cpu")
    assert result.ok and result.distributed is not None and result.distributed.world_size == 2


# -- measured torchrun ranks against the simulated rank (slow: they start real process groups) --

PLANS = ["fsdp2", "fsdp2(reshard=false)", "fsdp2+grad-ckpt", "fsdp2+lora", "ddp"]
# N=4 for one model (CI time): GPT-2, whose tied embedding and gloo's reduce-scatter copy are
# where measured ranks once drifted from the simulation (benchmarks/distributed.py has all four)
SHAPES = [("tiny-llama", 2), ("tiny-gpt2", 2), ("tiny-gpt2", 4)]
TOLERANCE = 0.03
# under fsdp2+lora one rank of a run once peaked with the root's flat all-gather output still live
# (+525,828 B on tiny GPT-2 at 2 ranks), held by gloo's worker thread after FSDP2 dropped it: the
# tracker now waits for that release (profilers/tracker.py, _AllGatherOutputs), so no case is
# an expected failure any more
_measured: dict[tuple[str, int], list[TrialResult]] = {}


def _measured_ranks(model: str, world: int) -> list[TrialResult]:
    """Every plan measured in one torchrun job of ``world`` ranks (starting ranks is the cost)."""
    if (model, world) not in _measured:
        _measured[model, world] = measure_distributed_plans(model, PLANS, 2, 32, nproc=world, steps=0)
    return _measured[model, world]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "world", "plan"), [(m, w, p) for m, w in SHAPES for p in PLANS])
def test_simulated_rank_matches_measured_ranks(model: str, world: int, plan: str) -> None:
    """The simulated per-rank tensor peak is within 3% of a measured rank's peak (a torchrun job
    on gloo, this CPU) and of the maximum over the ranks; DDP's (its buckets all-reduced in
    place: nothing freed asynchronously) equals every rank's to the byte, communication buffers
    included."""
    sim = simulate(model, plan, 2, 32, gpus=world, target="cpu", count_cost=False)
    assert sim.ok and sim.tensor_peak is not None, sim.reason
    measured = _measured_ranks(model, world)[PLANS.index(plan)]
    assert measured.ok and measured.distributed is not None and measured.tensor_peak is not None, (
        measured.reason
    )
    peaks = measured.distributed.rank_peak_bytes
    print(f"{model} N={world} {plan}: simulated {sim.tensor_peak.peak_bytes}, measured ranks {peaks}, "
          f"spread {measured.distributed.spread}")  # fmt: skip
    assert len(peaks) == world
    if plan == "ddp":
        assert set(peaks) == {sim.tensor_peak.peak_bytes}
        assert sim.params is not None
        assert (
            measured.tensor_peak.breakdown.communication_buffer_bytes
            == sim.tensor_peak.breakdown.communication_buffer_bytes
            == sim.params.trainable_bytes
        )
    # the simulated rank is one of the measured ranks' layouts: at least one rank agrees within 3%
    closest = min(abs(sim.tensor_peak.peak_bytes - p) / p for p in peaks)
    assert closest <= TOLERANCE, (sim.tensor_peak.peak_bytes, peaks)
    # and so does the highest rank (the maximum over the ranks)
    off = abs(sim.tensor_peak.peak_bytes - measured.tensor_peak.peak_bytes) / measured.tensor_peak.peak_bytes
    assert off <= TOLERANCE, (sim.tensor_peak.peak_bytes, peaks)
