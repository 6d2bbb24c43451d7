"""The command line: ``vram-advisor COMMAND``; each command calls the Python API."""

from advisor.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
