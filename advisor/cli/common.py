"""What every command shares: progress on stderr, argument types, the model arguments, and the
one place an error becomes an exit code."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advisor.catalog.gpus import family_alias
from advisor.core.errors import AdvisorError
from advisor.core.io import check_writable
from advisor.core.units import parse_count
from advisor.models import DEFAULT_MODEL, TRUST

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FLAGS",
    "MODEL_TRUST_HELP",
    "ProgressLine",
    "add_model_args",
    "check_outputs",
    "cli_text",
    "count",
    "fraction",
    "learning_rate",
    "non_negative_int",
    "note_gpu",
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


def learning_rate(text: str) -> float:
    """A learning rate: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


# argparse formats help with %: the trust statement, escaped, for every --model
MODEL_TRUST_HELP = TRUST.replace("%", "%%")


def add_model_args(p: argparse.ArgumentParser, default_seq: int = 128) -> None:
    """--model, --batch, --seq: shared by every subcommand that runs a model."""
    p.add_argument(
        "--model", "-m", default=DEFAULT_MODEL,
        help="built-in name (see `vram-advisor models`), a Hugging Face model directory or "
        "config.json, or module.path:factory (default: %(default)s). " + MODEL_TRUST_HELP,
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


def note_gpu(name: str | None) -> None:
    """Say on stderr which catalog entry a family name such as ``h100`` chose, and which others
    share it: never a silent guess (an unknown name is left to the command's own error)."""
    if not name:
        return
    try:
        fam = family_alias(name)
    except AdvisorError:
        return
    if fam is not None:
        print(f"note: --gpu {fam.note()}", file=sys.stderr)


def check_outputs(*paths: str | Path | None) -> None:
    """Check every output path a command was given before it starts any work (a missing folder
    is made; an unwritable path is an error now, not after minutes of trials)."""
    for path in paths:
        if path is not None:
            check_writable(path)


# API argument → the flag that sets it: library errors name arguments as the API spells them
# (``batch_size=1``), and the CLI shows them with its flags (``--batch 1``)
FLAGS: dict[str, str] = {
    "batch_size": "--batch",
    "micro_batch": "--batch",
    "seq_len": "--seq",
    "steps": "--steps",
    "warmup_steps": "--warmup",
    "max_combo": "--max-combo",
    "check_top": "--check-top",
    "gpu": "--gpu",
    "gpu_mem": "--gpu-mem",
    "price_usd_per_hour": "--price",
    "dataset_tokens": "--dataset-tokens",
    "epochs": "--epochs",
    "margin": "--margin",
    "rank_by": "--rank-by",
    "lr": "--lr",
    "text": "--text",
    "out": "--out",
    "new": "--new",
    "device": "--device",
    "workers": "--workers",
}
# ``name=value`` where name is an argument: not a cut parameter (``accum(steps=4)``, ``lora(r=8,
# alpha=16)``), not inside a word; the value unquoted when it was quoted for Python
_ARGUMENT = re.compile(
    r"(?<![\w(,|.-])(?P<name>" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")="
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;)]+)"
)


def cli_text(text: str) -> str:
    """``text`` with every API argument (``batch_size=1``) spelled as its flag (``--batch 1``)."""

    def flag(match: re.Match[str]) -> str:
        value = match["value"]
        if value == "True":  # a switch: new=True is --new
            return FLAGS[match["name"]]
        if value[:1] in "\"'" and " " not in value:
            value = value[1:-1]
        return f"{FLAGS[match['name']]} {value}"

    return _ARGUMENT.sub(flag, text)


# every character str.splitlines breaks at, shown escaped (\n, \x85, \u2028, …)
_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    """``text`` on one line: line breaks inside a name or a library's message shown escaped."""
    return text.strip().translate(_BREAKS)


def error_text(exc: AdvisorError) -> str:
    """How the CLI shows an error: the message on one line, then its hint, in flags."""
    text = _one_line(cli_text(exc.message))
    if exc.hint:
        text += f"\n  hint: {_one_line(cli_text(exc.hint))}"
    return text


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command: an :class:`AdvisorError` is one message on stderr (with its hint, in
    flags) and exit code 1, an interrupt exit code 130; nothing else becomes an exit code."""
    try:
        return int(func(args))
    except AdvisorError as exc:
        print(f"error: {error_text(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
