"""The cluster-shape recommender end to end at the API: FSDP2 and ZeRO-3 plans, each simulated
as one rank at every count, ranked together; more GPUs never hold more parameter bytes per rank."""

from __future__ import annotations

import math

import pytest

from advisor.api import advise_cluster
from advisor.models import resolve_model
from advisor.recommend.workload import Workload
from profilers.records import TrialResult

COUNTS = (2, 4)
PLANS = ("fsdp2", "zero(stage=3)")


def _fsdp2_shard_bytes(world: int) -> int:
    """What FSDP2 keeps of every fp32 parameter on rank 0: dim 0 split in ``ceil(d0 / N)`` rows
    (torch 2.13 ``_fsdp_param.py`` chunks dim 0; the last ranks get the padding)."""
    model = resolve_model("tiny-llama").build("meta", pretrained=False)
    return sum(math.ceil(p.shape[0] / world) * (p.numel() // p.shape[0]) * 4 for p in model.parameters())


def _param_bytes(trial: TrialResult | None) -> int:
    """The rank's parameter bytes at its peak."""
    assert trial is not None and trial.tensor_peak is not None
    return trial.tensor_peak.breakdown.parameter_bytes


@pytest.mark.slow  # eight simulated ranks: ~10 s on a loaded CI machine
def test_fsdp2_and_zero_ranked_across_counts_and_sharding_never_grows() -> None:
    rec = advise_cluster(
        "tiny-llama", plans=";".join(PLANS), gpu="h100", gpus=",".join(map(str, COUNTS)),
        workload=Workload(micro_batch=2, seq_len=32),
    )  # fmt: skip
    tried = {(v.plan, v.gpus): v for v in rec.shapes}
    names = {v.plan for v in rec.shapes}
    assert len(names) == 2 and len(rec.shapes) == len(PLANS) * len(COUNTS)
    for v in rec.shapes:
        assert v.trial is not None and v.trial.ok and v.need is not None, v.excluded_reason
        assert v.fits  # a tiny model fits an H100 at every count
        assert v.comm_bytes_per_step is not None and v.comm_bytes_per_step > 0
        assert v.cost_usd is not None and v.step_time_s is not None
    assert rec.smallest() == {name: tried[name, 2] for name in names}  # both fit at the fewest
    for name in names:
        params = [_param_bytes(tried[name, n].trial) for n in COUNTS]
        assert params == sorted(params, reverse=True) and params[-1] < params[0], (name, params)
    for n in COUNTS:  # FSDP2's shards to the byte, from the model's shapes
        assert _param_bytes(tried["fsdp2", n].trial) == _fsdp2_shard_bytes(n)
