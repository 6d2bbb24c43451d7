"""A watched training run: the user's own loop measured step by step, the advisor's prediction
beside it, and the report (JSON or Markdown) written at the end.

:class:`Watch` is what :func:`advisor.watch` returns: a context manager around a
:class:`profilers.watch.StepWatcher` (the runtime that measures), plus what only the advisor
knows — the plan's simulated peak for the same model and batch (exact, provenance
``simulated``), the budget and its warning level from the one fit rule
(:mod:`advisor.core.budget`), and the report.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from advisor.core.io import atomic_write_text, write_json
from advisor.core.units import format_bytes, format_seconds
from advisor.engines.simulate import simulate as run_simulation
from advisor.models import HFModelSource, resolve_model
from advisor.plans import Plan
from profilers.records import MemoryBreakdown, Provenance
from profilers.watch import StepRecord, StepWatcher

__all__ = ["Prediction", "Watch", "WatchReport"]

log = logging.getLogger(__name__)

_PARTS = (
    ("parameters", "parameter_bytes"),
    ("buffers", "buffer_bytes"),
    ("gradients", "gradient_bytes"),
    ("optimizer state", "optimizer_state_bytes"),
    ("inputs", "input_bytes"),
    ("activations", "activation_bytes"),
)


@dataclass(frozen=True)
class Prediction:
    """The advisor's prediction for the watched loop: the plan simulated on the same model and
    batch. ``peak_bytes`` is None when it could not be simulated (``reason`` says why)."""

    plan: str
    batch_size: int
    seq_len: int
    target: str  # "cpu" or "cuda"
    peak_bytes: int | None
    breakdown: MemoryBreakdown | None
    reason: str | None = None
    provenance: Provenance = Provenance.SIMULATED


@dataclass(frozen=True)
class WatchReport:
    """Every watched step, the prediction and the budget: what :meth:`Watch.report` returns."""

    model: str
    device: str
    steps: tuple[StepRecord, ...]
    prediction: Prediction | None = None
    budget_bytes: int | None = None  # usable: the GPU's memory less the margin
    warn_bytes: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def measured_steps(self) -> tuple[StepRecord, ...]:
        return tuple(s for s in self.steps if s.peak_bytes is not None)

    @property
    def peak_bytes(self) -> int | None:
        """The largest measured step peak (the figure a budget has to hold)."""
        peaks = [s.peak_bytes for s in self.measured_steps if s.peak_bytes is not None]
        return max(peaks) if peaks else None

    @property
    def peak_step(self) -> StepRecord | None:
        steps = self.measured_steps
        return max(steps, key=lambda s: s.peak_bytes or 0) if steps else None

    @property
    def median_step_time_s(self) -> float | None:
        times = [s.step_time_s for s in self.steps[1:]] or [s.step_time_s for s in self.steps]
        return statistics.median(times) if times else None

    @property
    def prediction_error(self) -> float | None:
        """(predicted − measured) / measured peak: positive when the advisor over-predicts."""
        measured = self.peak_bytes
        if self.prediction is None or self.prediction.peak_bytes is None or not measured:
            return None
        return (self.prediction.peak_bytes - measured) / measured

    def to_dict(self) -> dict[str, Any]:
        def jsonable(obj: Any) -> Any:
            if isinstance(obj, Provenance):
                return obj.value
            if isinstance(obj, dict):
                return {k: jsonable(v) for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return [jsonable(v) for v in obj]
            return obj

        out = jsonable(asdict(self))
        out["peak_bytes"] = self.peak_bytes
        out["median_step_time_s"] = self.median_step_time_s
        out["prediction_error"] = self.prediction_error
        return out  # type: ignore[no-any-return]

    def to_markdown(self) -> str:
        lines = [f"# Watched training: {self.model} on {self.device}", ""]
        peak = self.peak_step
        if peak is not None:
            lines.append(
                f"Peak: **{format_bytes(peak.peak_bytes)}** at step {peak.step}"
                + (f" ({peak.peak_phase})" if peak.peak_phase else "")
                + f", measured by {peak.source}. Median step time {format_seconds(self.median_step_time_s)}."
            )
        pred = self.prediction
        if pred is not None:
            if pred.peak_bytes is None:
                lines.append(f"Prediction ({pred.plan}): not available — {pred.reason}")
            else:
                err = self.prediction_error
                lines.append(
                    f"Prediction ({pred.plan}, batch {pred.batch_size} × {pred.seq_len} tokens, "
                    f"{pred.target}, simulated): {format_bytes(pred.peak_bytes)}"
                    + (f"; prediction error {err:+.2%} of the measured peak." if err is not None else ".")
                )
        if self.budget_bytes is not None:
            lines.append(
                f"Budget (usable, after the safety margin): {format_bytes(self.budget_bytes)}; "
                f"warning at {format_bytes(self.warn_bytes)}."
            )
        for w in self.warnings:
            lines.append(f"**Warning:** {w}")
        lines += ["", "| step | time | peak | " + " | ".join(p for p, _ in _PARTS) + " | phase | source |"]
        lines.append("|" + "---:|" * (3 + len(_PARTS)) + "---|---|")
        for s in self.steps:
            parts = [format_bytes(getattr(s.breakdown, f)) if s.breakdown else "—" for _, f in _PARTS]
            lines.append(
                f"| {s.step} | {format_seconds(s.step_time_s)} | "
                f"{format_bytes(s.peak_bytes) if s.peak_bytes is not None else '—'} | "
                + " | ".join(parts)
                + f" | {s.peak_phase or '—'} | {s.source} |"
            )
        if pred is not None and pred.breakdown is not None and peak is not None and peak.breakdown is not None:
            lines += ["", "| part | measured (peak step) | predicted |", "|---|---:|---:|"]
            for name, f in _PARTS:
                lines.append(
                    f"| {name} | {format_bytes(getattr(peak.breakdown, f))} | "
                    f"{format_bytes(getattr(pred.breakdown, f))} |"
                )
        return "\n".join(lines) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the report atomically: Markdown for ``.md``, JSON otherwise."""
        path = Path(path)
        if path.suffix.lower() in (".md", ".markdown"):
            return atomic_write_text(path, self.to_markdown())
        return write_json(path, self.to_dict())


def _source_of(model: torch.nn.Module) -> Any:
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "model_type", None):
        # a transformers model: simulate its architecture from the config, no weights needed
        return HFModelSource(f"{type(model).__name__}({config.model_type})", config)
    return resolve_model(model)


class Watch:
    """A watched training run; see the module docstring and :func:`advisor.watch`."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        plan: Plan | None = None,
        batch_size: int | None = None,
        seq_len: int | None = None,
        budget_bytes: int | None = None,
        warn_bytes: int | None = None,
        exact_every: int = 1,
        hook_optimizer: bool = True,
        report_path: str | Path | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
        on_warning: Callable[[StepRecord, str], None] | None = None,
        gpus: int = 1,
        nodes: int = 1,
    ) -> None:
        self.model = model
        self.plan = plan
        self.gpus, self.nodes = gpus, nodes  # a multi-GPU plan: the watched loop is one rank of them
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.budget_bytes = budget_bytes
        self.report_path = Path(report_path) if report_path is not None else None
        self.watcher = StepWatcher(
            model,
            optimizer,
            exact_every=exact_every,
            hook_optimizer=hook_optimizer,
            warn_bytes=warn_bytes,
            on_step=on_step,
            on_warning=on_warning,
        )
        self._prediction: Prediction | None = None
        self._started = False

    # -- the loop ----------------------------------------------------------------------------

    def start(self, begin: bool = True) -> Watch:
        """Install the hooks; with ``begin`` the first step starts now."""
        if not self._started:
            self.watcher.start(begin)
            self._started = True
        return self

    def stop(self) -> WatchReport:
        if self._started:
            self.watcher.stop()
            self._started = False
        report = self.report()
        if self.report_path is not None:
            report.write(self.report_path)
            log.info("watch report written to %s", self.report_path)
        return report

    def __enter__(self) -> Watch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def step(self, batch: Any = None) -> StepRecord | None:
        """Mark a step boundary (not needed when the optimizer was given: its ``step`` marks it)."""
        return self.watcher.step(batch)

    def begin_step(self, batch: Any = None) -> None:
        self.watcher.begin_step(batch)

    def end_step(self) -> StepRecord | None:
        return self.watcher.end_step()

    @property
    def records(self) -> list[StepRecord]:
        return self.watcher.records

    # -- prediction and report ---------------------------------------------------------------

    def prediction(self) -> Prediction | None:
        """The plan simulated on this model and batch (once; None without a plan)."""
        if self.plan is None:
            return None
        if self._prediction is not None:
            return self._prediction
        shape = self.watcher.input_shape
        batch = self.batch_size or (shape[0] if shape else None)
        seq = self.seq_len or (shape[1] if shape and len(shape) > 1 else None)
        assert self.watcher.device is not None
        target = "cuda" if self.watcher.device.type == "cuda" else "cpu"
        if batch is None or seq is None:
            self._prediction = Prediction(
                self.plan.name, batch or 0, seq or 0, target, None, None,
                "batch size and sequence length unknown: give batch_size= and seq_len=",
            )  # fmt: skip
            return self._prediction
        reason: str | None = None
        peak = breakdown = None
        try:
            result = run_simulation(_source_of(self.model), self.plan, batch, seq, target=target, count_cost=False,
                                    gpus=self.gpus, nodes=self.nodes)  # fmt: skip
            if result.tensor_peak is not None:
                peak, breakdown = result.tensor_peak.peak_bytes, result.tensor_peak.breakdown
            else:
                reason = f"{result.status.value}: {result.reason}"
        except Exception as exc:  # a watched run never dies for its prediction
            reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            log.warning("no prediction for the watched run: %s", reason)
        self._prediction = Prediction(self.plan.name, batch, seq, target, peak, breakdown, reason)
        return self._prediction

    def report(self) -> WatchReport:
        assert self.watcher.device is not None
        return WatchReport(
            model=type(self.model).__name__,
            device=str(self.watcher.device),
            steps=tuple(self.watcher.records),
            prediction=self.prediction(),
            budget_bytes=self.budget_bytes,
            warn_bytes=self.watcher.warn_bytes,
            warnings=tuple(self.watcher.warnings),
        )
