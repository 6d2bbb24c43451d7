"""One error root for everything the advisor reports to a person.

Every error carries a ``hint``: what to do about it. Only the CLI turns these into exit codes.
"""

from __future__ import annotations


class AdvisorError(Exception):
    """Root of all user-facing errors: a message that names the cause, and a hint with the fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        # pickled with its hint (a sweep's worker process raises it in the parent)
        return type(self), (self.message, self.hint)

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


class HardwareUnavailableError(AdvisorError):
    """What was asked needs hardware this machine does not have (e.g. a CUDA GPU)."""
