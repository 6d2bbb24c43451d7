"""The ``vram-advisor recommend …`` command line that gives a recommendation again."""

from __future__ import annotations

import shlex

from advisor.catalog.gpus import GpuSpec, get_gpu
from advisor.core.units import format_budget
from advisor.recommend.types import Mode
from advisor.recommend.workload import RankBy, Workload

__all__ = ["DEFAULT_GPU", "reproduce_command"]

DEFAULT_GPU = "rtx-4090"  # the target when none is given


def reproduce_command(
    model: str,
    gpu: GpuSpec,
    workload: Workload,
    *,
    rank_by: RankBy = RankBy.TIME,
    mode: Mode = Mode.AUTO,
    plans: str | None = None,
    report: str | None = None,
    moe_imbalance: float = 1.0,
) -> str:
    """The ``vram-advisor recommend …`` command line that gives this recommendation again."""
    args = ["vram-advisor", "recommend", "--model", model]
    if gpu.key.startswith("custom-"):
        args += ["--gpu-mem", format_budget(gpu.memory_bytes)]
    else:
        args += ["--gpu", gpu.key]
        catalog = get_gpu(gpu.key)
        if gpu.memory_bytes != catalog.memory_bytes:
            args += ["--gpu-mem", format_budget(gpu.memory_bytes)]
        if gpu.price_usd_per_hour != catalog.price_usd_per_hour:
            args += ["--price", f"{gpu.price_usd_per_hour:g}"]
    args += ["--batch", str(workload.micro_batch), "--seq", str(workload.seq_len)]
    args += ["--dataset-tokens", str(workload.dataset_tokens), "--epochs", f"{workload.epochs:g}"]
    args += ["--margin", f"{workload.margin:g}"]
    if workload.lengths is not None:
        flag = "--lengths" if workload.lengths.counted_by == "percentiles" else "--dataset"
        args += [flag, workload.lengths.origin]
    if rank_by is not RankBy.TIME:
        args += ["--rank-by", rank_by.value]
    if mode is Mode.SIMULATE:
        args.append("--simulate")
    elif mode is Mode.MEASURE:
        args.append("--measure")
    if plans:
        args += ["--plans", plans]
    if moe_imbalance != 1.0:
        args += ["--moe-imbalance", f"{moe_imbalance:g}"]
    if report:
        args += ["--report", report]
    return shlex.join(args)
