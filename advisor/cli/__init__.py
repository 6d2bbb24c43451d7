"""The ``vram-advisor`` command line: one module per command, each building its parser in a
small ``add_parser(subparsers)`` and running through the Python API (:mod:`advisor.api`).
The only place (with the TUI) that talks to the person; it imports no textual."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from advisor.cli import (
    calibrate,
    check,
    convergence,
    gpus,
    models,
    profile,
    recommend,
    report,
    simulate,
    sweep,
    tui,
)
from advisor.cli.common import EXIT_USAGE, run_command

__all__ = ["COMMANDS", "build_parser", "main"]

# in the order ``vram-advisor --help`` lists them
COMMANDS = (profile, models, sweep, convergence, recommend, report, gpus, calibrate, tui, simulate, check)


def build_parser() -> argparse.ArgumentParser:
    """The ``vram-advisor`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog="vram-advisor",
        description="Which memory-saving techniques let your model train on your GPU budget, "
        "how fast, at what batch size and cost — from real measurements.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:  # optional-kernel notices from bitsandbytes are noise to a user
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return run_command(args.func, args)
