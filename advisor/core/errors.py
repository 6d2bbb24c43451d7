"""One error root for everything the advisor reports to a person.

Every error carries a ``hint``: what to do about it. Only the CLI turns these into exit codes.

Messages and hints name arguments as the Python API spells them (``batch_size=1``); an error
about one argument says which in ``argument``. The CLI shows the same text with its flags
(``--batch 1``), translated by one table in :mod:`advisor.cli.common`.
"""

from __future__ import annotations

import re

__all__ = [
    "AdvisorError",
    "HardwareUnavailableError",
    "InvalidInputError",
    "OutputPathError",
    "PlanError",
    "ReportError",
    "UnknownGpuError",
    "UnknownModelError",
    "check_device",
    "whole_number",
]

_DEVICE = re.compile(r"^(auto|cpu|meta|mps|(cuda|xpu|hpu)(:\d+)?)$")


class AdvisorError(Exception):
    """Root of all user-facing errors: a message that names the cause, and a hint with the fix."""

    def __init__(self, message: str, hint: str | None = None, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.argument = argument  # the API argument at fault ("batch_size"), when there is one

    def __reduce__(self) -> tuple[type, tuple[str, str | None], dict[str, str | None]]:
        # pickled with its hint and argument (a sweep's worker process raises it in the parent)
        return type(self), (self.message, self.hint), {"argument": self.argument}

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UnknownModelError(AdvisorError):
    """A model name, path or ``module:factory`` that cannot be resolved."""


class UnknownGpuError(AdvisorError):
    """A GPU name that is not in the catalog."""


class InvalidInputError(AdvisorError):
    """A value out of range or of the wrong form (batch ≤ 0, bad memory string, …)."""


class PlanError(AdvisorError):
    """A cut or plan that cannot be applied to this model (no LoRA targets, shape mismatch, …)."""


class ReportError(AdvisorError):
    """A report file that is damaged or not one of ours."""


class OutputPathError(AdvisorError):
    """An output path that cannot be written (no such folder and none can be made, a folder in
    its place, a parent that is a file, no permission): found before any work is done."""


def whole_number(argument: str, value: object, minimum: int = 1, what: str | None = None) -> int:
    """``value`` when it is a whole number ≥ ``minimum`` (not a bool, not text); otherwise
    :class:`InvalidInputError` naming ``argument``, with the hint ``argument=minimum or more``."""
    label = what or argument
    hint = f"pass {argument}={minimum} or more"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(
            f"{label} must be a whole number, got {value!r} ({type(value).__name__})", hint, argument=argument
        )
    if value < minimum:
        raise InvalidInputError(f"{label} must be ≥ {minimum}, got {value}", hint, argument=argument)
    return value


def check_device(device: object, argument: str = "device") -> str:
    """``device`` when it names a device torch knows how to run on (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``, ``mps``, …); otherwise :class:`InvalidInputError` naming ``argument``
    (torch would raise a bare RuntimeError deep inside a trial)."""
    if not isinstance(device, str) or not _DEVICE.match(device.strip().lower()):
        raise InvalidInputError(
            f"unknown device {device!r}", f"pass {argument}=auto, cpu, cuda or cuda:N", argument=argument
        )
    return device.strip().lower()


class HardwareUnavailableError(AdvisorError):
    """What was asked needs hardware this machine does not have (e.g. a CUDA GPU)."""
