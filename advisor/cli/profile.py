"""``vram-advisor profile``: measure one training configuration on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisor.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    ProgressLine,
    add_model_args,
    add_quiet_arg,
    api,
    check_outputs,
    non_negative_int,
    positive_int,
    trial_view,
)
from advisor.core.io import SCHEMA_VERSION, atomic_write_text, environment, write_json

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    """Measure the plan, print it, and write JSON / Markdown when asked."""
    plan = api.one_plan(cuts=args.cuts)
    check_outputs(args.json, args.markdown)
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
    )
    progress.done()
    print(trial_view.trial_text(result))
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
        md = f"# Profile of {result.model}\n\n" + trial_view.trial_text(result, markdown=True) + "\n"
        path = atomic_write_text(args.markdown, md)
        print(f"wrote {path}")
    return EXIT_OK if result.ok else EXIT_ERROR


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
    p.add_argument(
        "--cuts", "-c", default="",
        help="cuts of the plan, comma-separated, e.g. lora(r=16),grad-ckpt (see `sweep --list-cuts`); "
        "default: none, full fine-tuning in fp32 with AdamW",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=5, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="warm-up steps (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the result as JSON to this path")
    p.add_argument("--markdown", type=Path, help="also write the result as Markdown to this path")
    add_quiet_arg(p)
    p.set_defaults(func=run)
