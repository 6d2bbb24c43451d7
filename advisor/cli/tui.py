"""``vram-advisor tui``: open the terminal UI (the only command that imports textual, on use)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisor.catalog.gpus import get_gpu
from advisor.cli.common import EXIT_OK, MODEL_TRUST_HELP, fraction
from advisor.core.errors import AdvisorError

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    """Check the GPU name and the report path, then run the app until the person quits."""
    if args.gpu is not None:
        get_gpu(args.gpu)  # an unknown name is the same one-line error as in every other command
    if args.report is not None and not Path(args.report).is_file():
        raise AdvisorError(f"no report at {args.report}", "give a .json report written by `recommend` or the TUI")
    from advisor.tui import run_tui  # textual is imported here, on use, never by `import advisor.cli`

    margin = {} if args.margin is None else {"margin": args.margin}  # none: the app's default, the CLI's
    run_tui(model=args.model, gpu=args.gpu, report=args.report, **margin)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``tui`` command's parser."""
    p = sub.add_parser(
        "tui",
        help="open the terminal UI: pick a model and GPU, watch the sweep, browse and export",
        description="Interactive terminal UI. Press ? inside for help.",
    )
    p.add_argument("--model", "-m", help="model to preselect (default: tiny-llama). " + MODEL_TRUST_HELP)
    p.add_argument("--gpu", "-g", help="target GPU to preselect (default: rtx-4090)")
    p.add_argument("--report", type=Path, help="open a saved report (.json) to browse it")
    p.add_argument(
        "--margin", type=fraction,
        help="share of GPU memory kept free when deciding what fits, 0 to <1 (default: the one "
        "recommend, simulate and profile use; see `recommend --help`)",
    )  # fmt: skip
    p.set_defaults(func=run)
