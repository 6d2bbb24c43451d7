"""The ``vram-advisor`` command line. The only place (with the TUI) that talks to the person."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advisor.errors import AdvisorError

log = logging.getLogger("advisor.cli")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressLine:
    """Progress on stderr: one line rewritten in a terminal, plain lines otherwise."""

    def __init__(self, prefix: str = "", stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.started = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = ""

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        line = f"{self.prefix}{message} [{elapsed:.1f} s]"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = line

    def done(self) -> None:
        if self.tty and self._last:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {value}")
    return value


def add_model_args(p: argparse.ArgumentParser, default_seq: int = 128) -> None:
    """--model, --batch, --seq: shared by every subcommand that runs a model."""
    from advisor.models import DEFAULT_MODEL

    p.add_argument(
        "--model", "-m", default=DEFAULT_MODEL,
        help="built-in name (see `vram-advisor models`), a Hugging Face model directory or "
        "config.json, or module.path:factory (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--batch", "-b", type=_positive_int, default=4, help="micro-batch size (default: %(default)s)"
    )
    p.add_argument(
        "--seq",
        "-s",
        type=_positive_int,
        default=default_seq,
        help="sequence length in tokens (default: %(default)s)",
    )


# -- profile ---------------------------------------------------------------------------------


def cmd_profile(args: argparse.Namespace) -> int:
    from advisor.api import profile
    from advisor.io import SCHEMA_VERSION, environment, write_json
    from advisor.render import trial_text

    progress = ProgressLine(f"{args.model}: ")
    result = profile(
        args.model,
        batch_size=args.batch,
        seq_len=args.seq,
        device=args.device,
        steps=args.steps,
        warmup_steps=args.warmup,
        progress=progress,
    )
    progress.done()
    print(trial_text(result))
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
        from advisor.io import atomic_write_text

        md = f"# Profile of {result.model}\n\n" + trial_text(result, markdown=True) + "\n"
        path = atomic_write_text(args.markdown, md)
        print(f"wrote {path}")
    return EXIT_OK if result.ok else EXIT_ERROR


def add_profile(sub: Any) -> None:
    p = sub.add_parser(
        "profile",
        help="measure one training configuration on this machine",
        description="Run warm-up steps, timed steps and one memory-tracked step of the model's "
        "real training step (full fine-tuning, fp32, AdamW) and print peak memory with its "
        "breakdown, step time, throughput and parameter counts.",
    )
    add_model_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=5, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=_non_negative_int, default=1, help="warm-up steps (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the result as JSON to this path")
    p.add_argument("--markdown", type=Path, help="also write the result as Markdown to this path")
    p.set_defaults(func=cmd_profile)


# -- models ----------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from advisor.models import builtin_models
    from advisor.render import table

    rows = [(m.name, m.kind, m.description) for m in builtin_models()]
    print(table(("name", "kind", "description"), rows))
    return EXIT_OK


def add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list the built-in model names")
    p.set_defaults(func=cmd_models)


# -- entry point -----------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Any], None]] = [add_profile, add_models]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vram-advisor",
        description="Which memory-saving techniques let your model train on your GPU budget, "
        "how fast, at what batch size and cost — from real measurements.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:  # optional-kernel notices from bitsandbytes are noise to a user
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
