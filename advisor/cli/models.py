"""``vram-advisor models``: list the built-in model names."""

from __future__ import annotations

import argparse
from typing import Any

from advisor.catalog.models import model_entries
from advisor.cli.common import EXIT_OK
from advisor.core.tables import Column, table, terminal_width

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    """Print the built-in models as a table (catalog data: no model is built, no torch imported)."""
    rows = [(m.name, m.kind, m.description) for m in model_entries()]
    headers = (Column("name"), Column("kind"), Column("description", wrap=True, min_width=24))
    print(table(headers, rows, width=terminal_width()))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``models`` command's parser."""
    p = sub.add_parser("models", help="list the built-in model names")
    p.set_defaults(func=run)
