"""The estimate's result, and the step moment that decides its peak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advisor.engines.estimate.accounting import Accounting
from advisor.plans import Plan
from advisor.plans.view import EstimateView
from profilers.records import MemoryBreakdown, ParamCounts, Provenance, TensorPeak

__all__ = ["EstimatedPeak", "peak_of"]


@dataclass(frozen=True)
class EstimatedPeak:
    """The closed-form estimate of one training step's peak of live tensor bytes.

    ``breakdown`` splits the peak by role, as :class:`~profilers.records.MemoryBreakdown` does
    for measured and simulated peaks; ``peak_phase`` is the step moment that decides it
    (``"backward"`` or ``"optimizer"``). ``notes`` name what the estimate had to assume.
    """

    model: str
    plan: str
    batch_size: int  # the batch of one optimizer step (micro-batch × accumulation_steps)
    seq_len: int
    target: str  # "cpu" or "cuda": what the step is assumed to run on
    peak_bytes: int
    breakdown: MemoryBreakdown
    peak_phase: str
    params: ParamCounts
    resident_bytes: int  # parameters, buffers, optimizer state and batch between steps
    accumulation_steps: int = 1
    notes: tuple[str, ...] = ()
    provenance: Provenance = Provenance.ESTIMATED

    def tensor_peak(self) -> TensorPeak:
        """The estimate as a :class:`~profilers.records.TensorPeak` (provenance ``estimated``)."""
        return TensorPeak(
            peak_bytes=self.peak_bytes,
            breakdown=self.breakdown,
            resident_before_step_bytes=self.resident_bytes,
            peak_phase=self.peak_phase,
            provenance=Provenance.ESTIMATED,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (enums as their values)."""
        b = self.breakdown
        return {
            "model": self.model,
            "plan": self.plan,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "target": self.target,
            "peak_bytes": self.peak_bytes,
            "peak_phase": self.peak_phase,
            "resident_bytes": self.resident_bytes,
            "accumulation_steps": self.accumulation_steps,
            "breakdown": {
                "parameter_bytes": b.parameter_bytes,
                "buffer_bytes": b.buffer_bytes,
                "gradient_bytes": b.gradient_bytes,
                "optimizer_state_bytes": b.optimizer_state_bytes,
                "input_bytes": b.input_bytes,
                "activation_bytes": b.activation_bytes,
                "total_bytes": b.total_bytes,
            },
            "params": {
                "total": self.params.total,
                "trainable": self.params.trainable,
                "parameter_bytes": self.params.parameter_bytes,
                "trainable_bytes": self.params.trainable_bytes,
                "trainable_percent": self.params.trainable_percent,
                "provenance": self.params.provenance.value,
            },
            "notes": list(self.notes),
            "provenance": self.provenance.value,
        }


def peak_of(
    name: str,
    plan: Plan,
    batch: int,
    seq: int,
    target: str,
    view: EstimateView,
    acc: Accounting,
    params: ParamCounts,
    notes: list[str],
) -> EstimatedPeak:
    resident = acc.parameter_bytes + acc.buffer_bytes + acc.optimizer_bytes + acc.input_bytes
    # gradients already present while a micro-batch runs forward/backward (accumulation, or
    # zeroed in place by the previous step's zero_grad(set_to_none=False))
    early = acc.gradient_bytes if view.accumulation > 1 or view.gradients_kept else 0
    candidates: list[tuple[int, str, int, int]] = []  # (total, phase, gradients, activations)

    def add(phase: str, grads: int, acts: int) -> None:
        grads = max(grads, early)
        candidates.append((resident + grads + acts, phase, grads, acts))

    n = len(acc.layer_saved)
    kept = acc.layer_checkpoint if acc.checkpointed else acc.layer_saved
    copies = [0] * n if acc.checkpointed else acc.layer_weight_copies
    outer = acc.other_saved_bytes
    body = sum(kept) + sum(copies)
    # backward starts: everything saved, plus the loss's gradients
    add("backward", 0, outer + body + acc.head_saved_bytes + acc.loss_grad_bytes)
    # past the output layer: the log-softmax freed, the logits' gradient and the output layer's
    # weight gradient live
    add("backward", acc.head_grad_bytes, outer + body + acc.head_saved_bytes + acc.hidden_grad_bytes)
    # through the layers, last to first: layer j's backward (recomputed first when checkpointed)
    # while the layers above it hold their gradients
    grads_above = acc.head_grad_bytes
    below = body
    for j in reversed(range(n)):
        below -= kept[j] + copies[j]
        live = outer + below + kept[j] + copies[j] + 2 * acc.hidden_grad_bytes + acc.layer_bump[j]
        if acc.checkpointed:
            live += acc.layer_saved[j] + acc.layer_weight_copies[j]
        add("backward", grads_above + acc.layer_first_grad[j], live)
        grads_above += acc.layer_grads[j]
    # backward ends (tied embeddings sum two gradients), then the optimizer steps
    add("backward", acc.gradient_bytes, acc.backward_tail_bytes)
    add("optimizer", acc.gradient_bytes, acc.optimizer_temp_bytes)
    total, phase, grads, acts = max(candidates, key=lambda c: c[0])
    breakdown = MemoryBreakdown(
        parameter_bytes=acc.parameter_bytes,
        buffer_bytes=acc.buffer_bytes,
        gradient_bytes=grads,
        optimizer_state_bytes=acc.optimizer_bytes,
        input_bytes=acc.input_bytes,
        activation_bytes=acts,
    )
    return EstimatedPeak(
        model=name,
        plan=plan.name,
        batch_size=batch,
        seq_len=seq,
        target=target,
        peak_bytes=total,
        breakdown=breakdown,
        peak_phase=phase,
        params=params,
        resident_bytes=resident,
        accumulation_steps=view.accumulation,
        notes=tuple(notes),
    )
