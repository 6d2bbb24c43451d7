"""``vram-advisor report show``: re-render a saved recommendation report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisor.cli.common import EXIT_OK, EXIT_USAGE, check_outputs, report
from advisor.core.tables import terminal_width

__all__ = ["add_parser", "run_show"]


def run_show(args: argparse.Namespace) -> int:
    """Load and check the report; print it, or write its files again with ``--out``."""
    check_outputs(*(report.report_paths(args.out).values() if args.out else ()))
    rec = report.load_report(args.file)
    if args.out:
        paths = report.save_report(rec, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return EXIT_OK
    if args.format == "text":
        print(rec.to_text(terminal_width()))
    elif args.format == "json":
        print(rec.to_json(), end="")
    else:
        print(rec.to_markdown(), end="")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``report`` command's parser and its ``show`` action."""
    p = sub.add_parser("report", help="work with saved recommendation reports")
    actions = p.add_subparsers(dest="report_command", metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="re-render a saved report (FILE.json)",
        description="Load a report written by `vram-advisor recommend --report`, check it, and print "
        "it as Markdown (or text or JSON), or write PREFIX.md/.json/.svg again with --out.",
    )
    show.add_argument("file", type=Path, metavar="FILE.json")
    show.add_argument("--format", choices=("markdown", "text", "json"), default="markdown")
    show.add_argument("--out", type=Path, metavar="PREFIX", help="write PREFIX.md, PREFIX.json and PREFIX.svg")
    show.set_defaults(func=run_show)
    p.set_defaults(func=lambda _args: (p.print_help(), EXIT_USAGE)[1])
