"""``vram-advisor recommend``: rank training plans for a target GPU and workload."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from advisor.cli.common import (
    EXIT_OK,
    ProgressLine,
    add_margin_arg,
    add_model_args,
    add_moe_arg,
    add_quiet_arg,
    api,
    check_outputs,
    count,
    non_negative_int,
    note_gpu,
    positive_float,
    positive_int,
    report,
)
from advisor.core.budget import DEFAULT_MARGIN
from advisor.core.tables import terminal_width, wrap_text

__all__ = ["DEFAULT_CLUSTER_PLANS", "add_parser", "run"]

# plans tried across cluster shapes when --plans is not given: one GPU, then ZeRO stages
DEFAULT_CLUSTER_PLANS = "bf16;lora+bf16;zero+bf16;zero(stage=3)+bf16;zero(stage=3)+bf16+grad-ckpt"


def _run_cluster(args: argparse.Namespace, workload: Any) -> int:
    """``--gpus 1,2,4,8`` / ``--max-gpus 64``: the fewest GPUs per plan, every shape tried."""
    check_outputs(*(report.cluster_paths(args.report).values() if args.report else ()))
    note_gpu(args.gpu)
    progress = ProgressLine(f"{args.model}: ", quiet=args.quiet)
    rec = api.advise_cluster(
        args.model,
        plans=args.plans or DEFAULT_CLUSTER_PLANS,
        gpu=args.gpu,
        gpus=args.gpus,
        max_gpus=args.max_gpus,
        gpus_per_node=args.gpus_per_node,
        workload=workload,
        gpu_mem=args.gpu_mem,
        price_usd_per_hour=args.price,
        progress=progress,
    )
    progress.done()
    print(report.cluster_text(rec, terminal_width()))
    if args.report:
        paths = report.save_cluster(rec, args.report)
        print(wrap_text("\nwrote " + ", ".join(str(p) for p in paths.values()), terminal_width()))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Advise, print the ranking, and write the report files when asked."""
    workload = api.Workload(
        micro_batch=args.batch,
        seq_len=args.seq,
        dataset_tokens=args.dataset_tokens,
        epochs=args.epochs,
        margin=args.margin,
    )
    if args.gpus is not None or args.max_gpus is not None:
        return _run_cluster(args, workload)
    mode = "simulate" if args.simulate else "measure" if args.measure else "auto"
    check_outputs(*(report.report_paths(args.report).values() if args.report else ()))
    note_gpu(args.gpu)
    progress = ProgressLine(f"{args.model}: ", quiet=args.quiet)
    rec = api.advise(
        args.model,
        gpu=args.gpu,
        gpu_mem=args.gpu_mem,
        price_usd_per_hour=args.price,
        workload=workload,
        plans=args.plans,
        rank_by=args.rank_by,
        mode=mode,
        check_top=args.check_top,
        progress=progress,
        moe_imbalance=args.moe_imbalance,
        lengths=args.lengths,
        dataset=args.dataset,
        text_field=args.text_field,
    )
    progress.done()
    prefix = str(args.report) if args.report else None
    if rec.workload.lengths is not None:  # the padded length is the longest sample's
        workload = rec.workload
    command = api.recommend_command(
        args.model, rec.gpu, workload, rank_by=args.rank_by, mode=mode, plans=args.plans, report=prefix,
        moe_imbalance=args.moe_imbalance,
    )
    rec = dataclasses.replace(rec, command=command)
    print(rec.to_text(terminal_width()))
    if args.report:
        paths = rec.save(args.report)
        print(wrap_text("\nwrote " + ", ".join(str(p) for p in paths.values()), terminal_width()))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``recommend`` command's parser."""
    p = sub.add_parser(
        "recommend",
        help="rank training plans for a target GPU and workload",
        description="Run the model's real training step under each plan (measured on the target "
        "GPU when it is this machine's, else simulated on fake tensors), predict the memory each "
        "needs on the target, and rank: what fits first, then by time (or cost) to train the "
        "workload. Writes PREFIX.json, PREFIX.md and PREFIX.svg with --report PREFIX.",
    )
    add_model_args(p)
    p.add_argument("--gpu", "-g", help="target GPU from the catalog (see `vram-advisor gpus`; default rtx-4090)")
    p.add_argument(
        "--gpu-mem",
        help="memory budget such as 22GiB or 24000MiB: alone, a budget-only target; with --gpu, "
        "that GPU with this much memory",
    )
    p.add_argument("--price", type=positive_float, help="your price per GPU-hour in USD (default: catalog)")
    p.add_argument(
        "--dataset-tokens", type=count, default=10_000_000,
        help="tokens in one pass over your data, e.g. 50M (default: 10M)",
    )  # fmt: skip
    p.add_argument("--epochs", type=positive_float, default=1.0, help="passes over the data (default: 1)")
    lengths = p.add_mutually_exclusive_group()
    lengths.add_argument(
        "--dataset", type=Path, metavar="FILE",
        help="your data (.jsonl, .json, .parquet or text lines): its real sample lengths, counted "
        "with the model's tokenizer when it has one; adds packing and length-grouping plans",
    )  # fmt: skip
    lengths.add_argument(
        "--lengths", metavar="PCTS",
        help="sample lengths as percentiles instead, e.g. p50=300,p95=1800,max=4096",
    )  # fmt: skip
    p.add_argument("--text-field", help="the JSON field holding a sample's text (default: text, content, …)")
    add_margin_arg(p, DEFAULT_MARGIN)
    p.add_argument("--rank-by", choices=("time", "cost"), default="time", help="order of the plans that fit")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--simulate", action="store_true", help="simulate even when the target GPU is here")
    how.add_argument("--measure", action="store_true", help="measure on this machine's GPU (must be the target)")
    p.add_argument("--plans", help='plans to rank, e.g. "lora+grad-ckpt;bf16" (default: singles and known combos)')
    p.add_argument(
        "--check-top", type=non_negative_int, default=3,
        help="find the largest micro-batch by trials for this many top plans (default: %(default)s)",
    )  # fmt: skip
    add_moe_arg(p)
    shape = p.add_mutually_exclusive_group()
    shape.add_argument(
        "--gpus", metavar="N,N,…",
        help="rank cluster shapes: try each plan on these GPU counts, e.g. 1,2,4,8 (strategies "
        "such as zero(stage=3) at 2 or more, single-GPU plans at 1)",
    )  # fmt: skip
    shape.add_argument(
        "--max-gpus", type=int, metavar="N", help="rank cluster shapes on 1, 2, 4, … N GPUs (e.g. 64)"
    )
    p.add_argument(
        "--gpus-per-node", type=positive_int, default=8,
        help="GPUs per node for cluster shapes; more spans nodes over InfiniBand (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--report", type=Path, metavar="PREFIX", help="write PREFIX.json, PREFIX.md and PREFIX.svg")
    add_quiet_arg(p)
    p.set_defaults(func=run)
