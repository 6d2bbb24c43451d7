"""What every command shares: progress on stderr, argument types, the model arguments, and the
one place an error becomes an exit code."""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.catalog.gpus import family_alias
from advisor.catalog.models import DEFAULT_MODEL, TRUST
from advisor.core.errors import AdvisorError
from advisor.core.io import check_writable
from advisor.core.units import parse_count

if TYPE_CHECKING:
    from advisor import api, report
    from advisor.report import configs as report_configs
    from advisor.report import text as report_text
    from advisor.report import trial as trial_view

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NO_FIT",
    "EXIT_OK",
    "EXIT_USAGE",
    "FLAGS",
    "MODEL_TRUST_HELP",
    "ProgressLine",
    "add_margin_arg",
    "add_model_args",
    "add_moe_arg",
    "add_quiet_arg",
    "add_timeline_args",
    "api",
    "check_outputs",
    "cli_text",
    "clock",
    "count",
    "fraction",
    "learning_rate",
    "moe_imbalance",
    "non_negative_int",
    "note_gpu",
    "positive_float",
    "positive_int",
    "report",
    "report_configs",
    "report_text",
    "run_command",
    "trial_view",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# ``check``: the config was read and simulated, and it does not fit (a script can branch on it)
EXIT_NO_FIT = 3


# -- the API, imported on first use ----------------------------------------------------------


class _OnFirstUse:
    """A module imported when one of its names is first used.

    ``advisor.api`` and ``advisor.report`` import torch and transformers (seconds); ``--help``,
    ``models`` and ``gpus`` need neither. Every command reaches them through the names below, so
    only a command that runs a model pays for them (start-up time, not an import cycle, is the
    reason: the layers are the same as with a plain import).
    """

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self._module), name)

    def __repr__(self) -> str:
        return f"<{self._module}, imported on first use>"


if not TYPE_CHECKING:
    api = _OnFirstUse("advisor.api")
    report = _OnFirstUse("advisor.report")
    trial_view = _OnFirstUse("advisor.report.trial")
    report_text = _OnFirstUse("advisor.report.text")
    report_configs = _OnFirstUse("advisor.report.configs")


def clock(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:03``: a duration as a clock, for progress lines."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressLine:
    """The one progress renderer of the CLI, on stderr.

    Called with text (the stages of one run: ``timed step 2/5``) it shows ``PREFIX text [1.2
    s]``. Called with the :class:`~advisor.api.SweepProgress` events of work over many plans
    (sweep, simulate --sweep, recommend) it shows ``[3/16] lora+grad-ckpt: timed step 1/3 ·
    0:07 · ETA 0:42``, the ETA being the mean time of the plans finished so far (in this phase)
    times the plans left, less the time the current one has run; each finished plan leaves a
    line of its own. In a terminal the live line is redrawn in place; otherwise only the
    start and end of each plan are written, one plain line each. ``quiet`` writes nothing.
    """

    def __init__(self, prefix: str = "", stream: Any = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.quiet = quiet
        self.started = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.finished = 0  # plans whose result is in (reused ones included)
        self._last = ""
        self._phase: tuple[str, int] | None = None
        self._run_times: list[float] = []  # seconds of each plan run (not reused) in this phase
        self._finished_in_phase = 0

    def __call__(self, message: str | api.SweepProgress) -> None:
        if isinstance(message, str):
            elapsed = time.perf_counter() - self.started
            self._show(f"{self.prefix}{message} [{elapsed:.1f} s]", keep=False)
        else:
            self._event(message)

    def eta_s(self, event: api.SweepProgress) -> float | None:
        """Seconds left after ``event``, from the mean time per finished plan; ``None`` before
        any plan of this phase has run to its end."""
        if not self._run_times:
            return None
        mean = sum(self._run_times) / len(self._run_times)
        left = event.total - self._finished_in_phase
        running = 0.0 if event.finished else min(event.elapsed_s, mean)
        return max(0.0, mean * left - running)

    def _event(self, event: api.SweepProgress) -> None:
        phase = (event.phase, event.total)
        if phase != self._phase:  # a new pass over plans: its own count and timing
            self._phase, self._run_times, self._finished_in_phase = phase, [], 0
        if event.finished:
            self.finished += 1
            self._finished_in_phase += 1
            if event.kind == "done":
                self._run_times.append(event.elapsed_s)
        head = f"{self.prefix}[{event.index}/{event.total}] {event.plan}"
        if event.phase:
            head = f"{self.prefix}{event.phase} [{event.index}/{event.total}] {event.plan}"
        eta = self.eta_s(event)
        tail = "" if eta is None or self._finished_in_phase >= event.total else f" · ETA {clock(eta)}"
        if event.kind == "reused":
            self._show(f"{head}: done before, reused{tail}", keep=True)
        elif event.kind == "done":
            result = event.result
            status = result.status.value if result is not None else event.message
            why = f" — {result.reason}" if result is not None and result.reason else ""
            self._show(f"{head}: {status}{why} ({event.elapsed_s:.1f} s){tail}", keep=True)
        elif self.tty or event.kind == "start":
            self._show(f"{head}: {event.message or event.kind} · {clock(event.sweep_elapsed_s)}{tail}", keep=False)

    def _show(self, line: str, *, keep: bool) -> None:
        if self.quiet:
            return
        if self.tty:
            width = shutil.get_terminal_size((100, 24)).columns
            shown = line if keep or len(line) < width else line[: max(1, width - 2)] + "…"
            self.stream.write("\r\033[K" + shown + ("\n" if keep else ""))
            self._last = "" if keep else shown
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        """Clear the live line (a terminal keeps only the lines of finished plans)."""
        if self.tty and self._last and not self.quiet:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self._last = ""


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


def add_timeline_args(p: argparse.ArgumentParser, step: str) -> None:
    """``--timeline`` and ``--memory-snapshot``: memory over ``step`` (what is drawn: "one more
    measured step", "the simulated step"), as a chart and as a memory_viz pickle."""
    p.add_argument(
        "--timeline", type=Path, default=None,
        help=f"also draw memory over {step} (stacked by part, phases, the peak) to this .svg or .png",
    )  # fmt: skip
    p.add_argument(
        "--memory-snapshot", type=Path, default=None,
        help=f"also write {step} as a torch.cuda.memory._snapshot() pickle for pytorch.org/memory_viz",
    )  # fmt: skip


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    """--quiet: no progress on stderr (errors are still shown)."""
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


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
    "micro_batch_size": "--batch",
    "seq_len": "--seq",
    "steps": "--steps",
    "warmup_steps": "--warmup",
    "max_combo": "--max-combo",
    "check_top": "--check-top",
    "gpu": "--gpu",
    "gpu_mem": "--gpu-mem",
    "max_gpus": "--max-gpus",
    "gpus_per_node": "--gpus-per-node",
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
    "model": "--model",
    "lengths": "--lengths",
    "dataset": "--dataset",
    "text_field": "--text-field",
    "gpus": "--gpus",
    "nodes": "--nodes",
    "runs": "--runs",
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


def add_margin_arg(p: argparse.ArgumentParser, default: float) -> None:
    """--margin: the share of GPU memory a fit keeps free, shared by every command that gives a
    fit verdict (``default`` is the API's ``DEFAULT_MARGIN``: one default, one rule)."""
    p.add_argument(
        "--margin", type=fraction, default=default,
        help="share of GPU memory kept free when deciding what fits, 0 to <1 (default: %(default)s, "
        "as recommend, simulate, profile and the TUI all use)",
    )  # fmt: skip


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
