"""``vram-advisor profile``: measure one training configuration on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisor.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    ProgressLine,
    add_margin_arg,
    add_model_args,
    add_quiet_arg,
    add_timeline_args,
    api,
    check_outputs,
    non_negative_int,
    positive_int,
    trial_view,
)
from advisor.cli.lengths import add_lengths_args, lengths_from_args
from advisor.cli.simulate import need_rows
from advisor.core.budget import DEFAULT_MARGIN
from advisor.core.io import SCHEMA_VERSION, atomic_write_text, environment, write_json
from advisor.core.tables import table, terminal_width
from advisor.core.units import format_bytes

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    """Measure the plan, print it (and what it needs on a target GPU, with ``--gpu`` /
    ``--gpu-mem``), and write JSON / Markdown when asked."""
    api.check_margin(args.margin)  # before any work
    gpu = api.target_gpu(args.gpu, args.gpu_mem) if args.gpu or args.gpu_mem else None
    plan = api.one_plan(cuts=args.cuts, plans=args.plans)
    check_outputs(args.json, args.markdown, args.timeline, args.memory_snapshot)
    lengths = lengths_from_args(args)
    progress = ProgressLine(f"{args.model}: ", quiet=args.quiet)
    result = api.profile(
        args.model,
        plan=plan,
        batch_size=args.batch,
        seq_len=args.seq,
        device=args.device,
        steps=args.steps,
        warmup_steps=args.warmup,
        progress=progress,
        gpus=args.gpus,
        runs=args.runs,
        lengths=lengths,
    )
    progress.done()
    width = terminal_width()
    print(trial_view.trial_text(result, width=width))
    if gpu is not None and result.ok:
        print()
        print(table(trial_view.FIGURE_COLUMNS, need_rows(result, gpu, args.margin), width=width))
    timeline_md = ""
    if result.ok and (args.timeline or args.memory_snapshot):
        timeline_md = _timeline(args, plan, gpu)
    if args.json:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "vram-advisor/profile",
            "environment": environment(),
            "result": result.to_dict(),
        }
        path = write_json(args.json, doc)
        print(f"\nwrote {path}")
    if args.markdown:
        md = f"# Profile of {result.model}\n\n" + trial_view.trial_text(result, markdown=True) + "\n" + timeline_md
        path = atomic_write_text(args.markdown, md)
        print(f"wrote {path}")
    return EXIT_OK if result.ok else EXIT_ERROR


def _timeline(args: argparse.Namespace, plan: Any, gpu: Any) -> str:
    """One more measured step, kept over time: the chart and/or the memory_viz snapshot. Returns
    the Markdown that links them (for ``--markdown``)."""
    line = ProgressLine(f"{args.model} timeline: ", quiet=args.quiet)
    res = api.timeline(
        args.model, plan, batch_size=args.batch, seq_len=args.seq, measure=True, device=args.device,
        chart=args.timeline, memory_snapshot=args.memory_snapshot, gpu=gpu, margin=args.margin, progress=line,
    )  # fmt: skip
    line.done()
    tl = res.timeline
    if tl is None:
        print(f"\nno timeline: {res.reason}")
        return ""
    alive = ", ".join(f"{format_bytes(t.nbytes)} {t.category} ({t.op})" for t in tl.top_tensors[:3])
    print(f"\nmemory over the step (measured): peak {format_bytes(tl.peak_bytes)} in {tl.peak_phase}; largest alive: {alive}")
    md = ["", "## Memory over the step", ""]
    if args.timeline is not None:
        print(f"wrote chart {args.timeline}")
        target = Path(args.timeline).resolve()
        if args.markdown is not None:
            try:
                target = target.relative_to(Path(args.markdown).resolve().parent)
            except ValueError:
                pass
        md.append(f"![memory over the step]({target.as_posix()})")
        md.append("")
    md.append(f"Peak {format_bytes(tl.peak_bytes)} in {tl.peak_phase} (measured). Largest tensors alive at the peak:")
    md.append("")
    md += [f"- {format_bytes(t.nbytes)} {t.category}, made by `{t.op}`" for t in tl.top_tensors[:5]]
    if args.memory_snapshot is not None:
        print(f"wrote memory_viz snapshot {args.memory_snapshot}")
        md += ["", f"PyTorch memory_viz snapshot: [{Path(args.memory_snapshot).name}]({Path(args.memory_snapshot).as_posix()}) "
               "(open it at https://pytorch.org/memory_viz)"]  # fmt: skip
    return "\n".join(md) + "\n"


def add_parser(sub: Any) -> None:
    """The ``profile`` command's parser."""
    p = sub.add_parser(
        "profile",
        help="measure one training configuration on this machine",
        description="Run warm-up steps, timed steps and one memory-tracked step of the model's "
        "real training step (full fine-tuning, fp32, AdamW) and print peak memory with its "
        "breakdown, step time, throughput and parameter counts.",
    )
    add_model_args(p)
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--cuts", "-c", default=None,
        help="cuts of the plan, comma-separated, e.g. lora(r=16),grad-ckpt (see `sweep --list-cuts`); "
        "default: none, full fine-tuning in fp32 with AdamW",
    )  # fmt: skip
    choice.add_argument("--plans", help="the plan as plan text instead, e.g. 'fsdp2+lora'")
    p.add_argument(
        "--gpus", "--nproc", type=int, default=1, dest="gpus",
        help="with a strategy cut (fsdp2, ddp, hsdp): run a torchrun job of this many local "
        "processes (gloo on CPU, NCCL on GPUs) and report the ranks' peaks (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--runs", type=int, default=1,
        help="with --gpus N: repeat the torchrun job, reporting the maximum over ranks and runs (default: %(default)s)",
    )  # fmt: skip
    add_lengths_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=5, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="warm-up steps (default: %(default)s)")
    p.add_argument(
        "--gpu", "-g",
        help="also show what the measured step needs on this GPU from the catalog, and whether it fits",
    )  # fmt: skip
    p.add_argument("--gpu-mem", help="memory budget instead of (or overriding) the GPU's, e.g. 22GiB")
    add_margin_arg(p, DEFAULT_MARGIN)
    p.add_argument("--json", type=Path, help="also write the result as JSON to this path")
    p.add_argument("--markdown", type=Path, help="also write the result as Markdown to this path")
    add_timeline_args(p, "one more measured step")
    add_quiet_arg(p)
    p.set_defaults(func=run)
