"""What every command shares: progress on stderr, argument types, the model arguments, and the
one place an error becomes an exit code."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from advisor.core.errors import AdvisorError
from advisor.core.units import parse_count
from advisor.models import DEFAULT_MODEL

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ProgressLine",
    "add_model_args",
    "add_moe_arg",
    "count",
    "fraction",
    "learning_rate",
    "moe_imbalance",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "run_command",
]

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


# -- argument types --------------------------------------------------------------------------


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number ≥ 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number ≥ 0."""
    return _whole_number(text, 0)


def count(text: str) -> int:
    """A count such as ``50M`` or ``10000000``."""
    try:
        return parse_count(text)
    except AdvisorError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def fraction(text: str) -> float:
    """A number such as ``0.1`` (its range is checked where it is used)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.1, got {text!r}") from None


def positive_float(text: str) -> float:
    """A number > 0."""
    value = fraction(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def moe_imbalance(text: str) -> float:
    """The hottest expert's share over the balanced one: a number ≥ 1."""
    value = fraction(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1 (1 is balanced routing), got {text}")
    return value


def add_moe_arg(p: argparse.ArgumentParser) -> None:
    """``--moe-imbalance``: the routing a mixture-of-experts model is simulated under."""
    p.add_argument(
        "--moe-imbalance", type=moe_imbalance, default=1.0, metavar="FACTOR",
        help="mixture-of-experts models: the hottest expert gets FACTOR × its balanced share of "
        "tokens (default %(default)s: balanced routing, an assumption the result states)",
    )  # fmt: skip


def learning_rate(text: str) -> float:
    """A learning rate: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_model_args(p: argparse.ArgumentParser, default_seq: int = 128) -> None:
    """--model, --batch, --seq: shared by every subcommand that runs a model."""
    p.add_argument(
        "--model", "-m", default=DEFAULT_MODEL,
        help="built-in name (see `vram-advisor models`), a Hugging Face model directory or "
        "config.json, or module.path:factory (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--batch", "-b", type=positive_int, default=4, help="micro-batch size (default: %(default)s)"
    )
    p.add_argument(
        "--seq",
        "-s",
        type=positive_int,
        default=default_seq,
        help="sequence length in tokens (default: %(default)s)",
    )


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command: an :class:`AdvisorError` is one line on stderr and exit code 1, an
    interrupt exit code 130; nothing else is turned into an exit code."""
    try:
        return int(func(args))
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
