"""``--dataset FILE`` / ``--lengths PCTS`` / ``--text-field`` for the one-plan commands
(``simulate``, ``profile``): the real sample lengths a batching plan forms its worst batch from."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisor.cli.common import api

__all__ = ["add_lengths_args", "lengths_from_args"]


def add_lengths_args(p: argparse.ArgumentParser) -> None:
    """The three options; ``--dataset`` and ``--lengths`` exclude each other."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--dataset", type=Path, metavar="FILE",
        help="your data (.jsonl, .json, .parquet or text lines): a batching cut (pack, "
        "group-by-length, token-budget, pad-to-max) runs the worst batch it forms from the real "
        "sample lengths, counted with the model's tokenizer when it has one",
    )  # fmt: skip
    group.add_argument(
        "--lengths", metavar="PCTS",
        help="sample lengths as percentiles instead, e.g. p50=300,p95=1800,max=4096",
    )  # fmt: skip
    p.add_argument("--text-field", help="with --dataset: the JSON field holding a sample's text (default: text, content, …)")


def lengths_from_args(args: argparse.Namespace) -> Any:
    """The :class:`advisor.LengthDistribution` the options give, or ``None``; prints its summary."""
    lengths = api.sample_lengths(args.model, dataset=args.dataset, lengths=args.lengths, text_field=args.text_field)
    if lengths is not None:
        print(f"sequence lengths: {lengths.summary()}")
    return lengths
