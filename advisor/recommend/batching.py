"""What real sequence lengths change in a ranking: tokens/s on real tokens, and the why-line
clause on padding and packing (pure functions of a trial and the workload)."""

from __future__ import annotations

from collections.abc import Sequence

from advisor.recommend.types import PlanVerdict
from advisor.recommend.workload import Workload
from profilers.records import TrialResult

__all__ = ["batching_clause", "budget_notes", "real_tokens_per_step"]


def real_tokens_per_step(trial: TrialResult, workload: Workload) -> int | None:
    """Real (unpadded) tokens one step trains on, on average over the epoch: a batching plan's
    own figure, or, for a plan without one on a workload with lengths, the micro-batch's
    samples at their mean length (each padded to ``seq_len``); ``None`` without lengths."""
    figure = trial.extra.get("real_tokens_per_step")
    if isinstance(figure, int) and figure > 0:
        return figure * max(1, trial.accumulation_steps)
    if workload.lengths is None:
        return None
    return max(1, round(trial.batch_size * max(1, trial.accumulation_steps) * workload.lengths.mean_len))


def batching_clause(trial: TrialResult, workload: Workload) -> str:
    """``"; packing: no padding (padding to the longest wastes 81% of tokens), worst row 1×1022
    of 9 samples"`` — empty without lengths."""
    if workload.lengths is None:
        return ""
    padded = workload.padding_waste or 0.0
    policy = trial.extra.get("batching")
    if not isinstance(policy, str):
        return f"; pads every sample to {workload.seq_len} tokens: {padded:.0%} of computed tokens are padding"
    waste = float(trial.extra.get("padding_waste", 0.0))
    worst = trial.extra.get("worst_batch", "")
    if policy.startswith("pack"):
        docs = trial.extra.get("packed_documents")
        return (
            f"; no padding (padding to the longest wastes {padded:.0%} of tokens), tokens/s on "
            f"real tokens; worst row {worst} tokens of {docs} samples, one mask over the row"
        )
    return f"; {policy}: {waste:.0%} padding (against {padded:.0%} padded to the longest), worst batch {worst}"


def budget_notes(verdicts: Sequence[PlanVerdict], workload: Workload) -> list[str]:
    """For each plan with a token budget (``pack``, ``token-budget``) whose largest micro-batch
    was found by trials: the largest budget that fits, which is that micro-batch's share of the
    budget (an estimated micro-batch knows nothing of the model's positions: no note)."""
    notes = []
    for v in verdicts:
        for name in ("pack", "token-budget"):
            params = v.cut_settings.get(name)
            if not params or v.max_micro_batch is None or not v.fits or not v.max_micro_batch_checked:
                continue
            key = "max_tokens" if name == "pack" else "tokens"
            budget = int(params[key]) * v.max_micro_batch // workload.micro_batch
            how = "checked by trials"
            if name == "pack":
                how += ", a packed row kept within the model's positions"
            notes.append(
                f"{v.plan}: the largest token budget that fits is {key}={budget} ({how}; the "
                f"max micro-batch column counts budgets of {params[key]}/{workload.micro_batch} tokens)."
            )
    return notes
