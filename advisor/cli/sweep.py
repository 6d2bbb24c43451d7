"""``vram-advisor sweep``: measure the baseline and many plans, resumably."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from advisor.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    ProgressLine,
    add_model_args,
    add_quiet_arg,
    api,
    check_outputs,
    non_negative_int,
    positive_int,
    report,
)
from advisor.core.io import atomic_write_text
from advisor.core.tables import Column, table, terminal_width, wrap_text

__all__ = ["add_parser", "default_out", "run"]


def default_out(model: str, batch: int, seq: int, simulated: bool = False) -> Path:
    """``reports/sweep-MODEL-bBATCH-sSEQ.jsonl`` (``…-simulated.jsonl`` for ``--simulate``), the
    results file when ``--out`` is not given."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).name if "/" in model else model).strip("-")
    tail = "-simulated" if simulated else ""
    return Path("reports") / f"sweep-{slug or 'model'}-b{batch}-s{seq}{tail}.jsonl"


def run(args: argparse.Namespace) -> int:
    """Run the sweep (or list the cuts), print the change table, and write Markdown if asked."""
    if args.list_cuts:
        headers = (Column("cut"), Column("parameters (defaults)", wrap=True), Column("what it does", wrap=True, min_width=24))
        print(table(headers, api.describe_cuts(), width=terminal_width()))
        return EXIT_OK
    out = args.out or default_out(args.model, args.batch, args.seq, args.simulate)
    check_outputs(out, args.markdown)
    line = ProgressLine(quiet=args.quiet)
    try:
        result = api.sweep(
            args.model,
            cuts=args.cuts if args.plans is None else None,
            plans=args.plans,
            max_combo=args.max_combo,
            batch_size=args.batch,
            seq_len=args.seq,
            device=args.device,
            steps=args.steps,
            warmup_steps=args.warmup,
            out=out,
            progress=line,
            retry_failed=args.retry_failed,
            simulate=args.simulate,
            new=args.new,
        )
    except KeyboardInterrupt:
        line.done()
        print(
            f"\ninterrupted: {line.finished} finished results are in {out}; run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    line.done()
    width = terminal_width()
    head = (
        f"{result.model}: batch {result.batch_size} × seq {result.seq_len} on {result.device}, "
        f"{len(result.results)} plans ({len(result.reused)} reused from {out})\n"
    )
    print(wrap_text(head, width))
    print(report.change_table(result, width=width))
    if result.pruned:
        print(f"\npruned ({len(result.pruned)}):")
        for p in result.pruned:
            print(wrap_text(f"  {p.plan}: {p.reason}", width))
    if result.simulated:
        print(wrap_text("\npeaks: simulated on fake tensors as for a CUDA GPU (exact tensor bytes, no compute, no timings)", width))
    print(wrap_text(f"\nresults in {out} (re-run the same command to resume; --retry-failed to re-run failures)", width))
    if args.markdown:
        md = f"# Sweep of {result.model}\n\n" + report.change_table(result, markdown=True) + "\n"
        print(f"wrote {atomic_write_text(args.markdown, md)}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``sweep`` command's parser."""
    p = sub.add_parser(
        "sweep",
        help="measure the baseline and many combinations of cuts, resumably",
        description="Run the baseline and each plan (a set of cuts) as a trial, one after another. "
        "A plan that fails is recorded with its reason and the sweep goes on; each result is "
        "appended to --out as it arrives, and re-running the same command skips what is done. "
        "Cut syntax: name or name(key=value,...), list values with '|', e.g. "
        "--cuts 'lora(r=16,targets=q_proj|v_proj),grad-ckpt,bf16'. Plan syntax: cuts joined by "
        "'+', plans separated by ';', e.g. --plans 'lora+grad-ckpt;sgd'. Quote both for the shell. "
        "See --list-cuts.",
    )
    add_model_args(p)
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--cuts", "-c",
        help="comma-separated cuts to combine (default: every cut except opt-in ones like compile)",
    )  # fmt: skip
    choice.add_argument("--plans", help="a list of plans instead: 'lora+grad-ckpt;sgd;baseline'")
    p.add_argument(
        "--max-combo", type=positive_int, default=1,
        help="largest number of cuts in one plan, for --cuts (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument(
        "--simulate", action="store_true",
        help="simulate each plan on fake tensors as for a CUDA GPU instead of measuring it: any model "
        "size, no GPU, seconds a plan; the results file is marked simulated",
    )  # fmt: skip
    p.add_argument("--steps", type=positive_int, default=3, help="timed steps per plan (default: %(default)s)")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="warm-up steps (default: %(default)s)")
    p.add_argument(
        "--out", "-o", type=Path,
        help="results file (JSON Lines); default reports/sweep-MODEL-bBATCH-sSEQ.jsonl",
    )  # fmt: skip
    p.add_argument("--retry-failed", action="store_true", help="re-run plans recorded as failed")
    p.add_argument(
        "--new", action="store_true",
        help="start --out afresh: an existing file is moved aside to NAME.old.jsonl first (without "
        "--new, a file holding another sweep is refused)",
    )  # fmt: skip
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown to this path")
    p.add_argument("--list-cuts", action="store_true", help="list the cuts and their parameters, then exit")
    add_quiet_arg(p)
    p.set_defaults(func=run)
