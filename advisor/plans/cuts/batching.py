"""Batching policies over a real length distribution: pad to the maximum, group by length,
pack without padding, token-budget micro-batches.

A policy turns the dataset's sample lengths (:class:`~advisor.core.lengths.LengthDistribution`)
into the batches one epoch really forms, and the trial runs the **worst** of them — the batch
with the most tokens in one step (rows × padded length; for packing, the longest packed row,
whose attention is over the whole row: see :class:`Pack`). Its :class:`BatchLayout` also says
how many of the step's tokens are padding, computed from the real lengths, and how many real
tokens one step trains on on average, which is what tokens/s counts.

Without a distribution every sample is ``seq_len`` tokens long (today's fixed-length batches).
:func:`resolve_batching` gives a plan's batching cut the distribution and returns the worst
batch's shape; the API calls it before a trial so the trial's record names the real shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from advisor.core.errors import PlanError
from advisor.core.lengths import LengthDistribution
from advisor.plans.code import TrainingCode
from advisor.plans.registry import register_cut
from advisor.plans.types import BuildContext, Cut, Plan, Recipe
from profilers.trial import StepProgram

__all__ = ["BatchLayout", "BatchingCut", "GroupByLength", "Pack", "PadToMax", "TokenBudget", "resolve_batching"]


@dataclass(frozen=True)
class BatchLayout:
    """The batches one epoch forms under a policy, and the worst of them.

    ``rows`` × ``row_tokens`` is the worst batch's shape (``documents`` the sample lengths in
    its packed row, for packing); ``steps`` the batches in an epoch; ``real_tokens`` and
    ``padded_tokens`` the epoch's tokens without and with padding.
    """

    policy: str
    rows: int
    row_tokens: int
    steps: int
    real_tokens: int
    padded_tokens: int
    documents: tuple[int, ...] = ()

    @property
    def padding_waste(self) -> float:
        """The share of the epoch's computed tokens that are padding (0 for packing)."""
        return 1.0 - self.real_tokens / self.padded_tokens

    @property
    def real_tokens_per_step(self) -> int:
        """Real tokens the epoch trains on per worst-step time: the worst batch's tokens ×
        the real share, taking each step's time as proportional to the tokens it computes
        (attention's quadratic term left out), so tokens/s = this / the worst step's time."""
        return max(1, round(self.rows * self.row_tokens * self.real_tokens / self.padded_tokens))

    def notes(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "batching": self.policy,
            "worst_batch": f"{self.rows}x{self.row_tokens}",
            "padding_waste": round(self.padding_waste, 4),
            "real_tokens_per_step": self.real_tokens_per_step,
            "steps_per_epoch": self.steps,
        }
        if self.documents:
            out["packed_documents"] = len(self.documents)
            out["longest_document"] = max(self.documents)
        return out


def _padded(policy: str, batches: list[list[int]]) -> BatchLayout:
    """Batches each padded to their own longest sample; the worst has the most tokens (ties:
    the longer rows, whose attention costs more)."""
    worst = max(batches, key=lambda b: (len(b) * max(b), max(b)))
    return BatchLayout(
        policy=policy,
        rows=len(worst),
        row_tokens=max(worst),
        steps=len(batches),
        real_tokens=sum(sum(b) for b in batches),
        padded_tokens=sum(len(b) * max(b) for b in batches),
    )


class BatchingCut(Cut):
    """How samples of different lengths become batches (one policy per plan)."""

    group = "batching"
    order = 2
    candidate = False  # offered when the workload has a length distribution
    opt_in = True  # not in the default sweep: without a distribution it changes nothing
    policy_title: ClassVar[str] = ""

    lengths: LengthDistribution | None

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in super().params().items() if k != "lengths"}

    def sample_lengths(self, batch_size: int, seq_len: int) -> tuple[int, ...]:
        return self.lengths.lengths if self.lengths is not None else (seq_len,) * batch_size

    def layout(self, batch_size: int, seq_len: int) -> BatchLayout:
        """The epoch's batches of ``batch_size`` samples (the lengths, or ``seq_len`` each)."""
        raise NotImplementedError

    def configure(self, recipe: Recipe) -> None:
        layout = self.layout(recipe.batch_size, recipe.seq_len)
        recipe.batch_size, recipe.seq_len = layout.rows, layout.row_tokens
        recipe.micro_batch_size = 0
        recipe.notes.update(layout.notes())

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        # tokens/s counts real tokens: the average step's, at the worst step's time
        tokens = ctx.recipe.notes.get("real_tokens_per_step")
        if isinstance(tokens, int):
            prog.tokens_per_micro_batch = tokens
        return prog


def _bounded(name: str, value: int, longest: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"{name}: {what} must be a whole number ≥ 1, got {value!r}", f"for example {name}={what}=4096")
    if value < longest:
        raise PlanError(
            f"{name}({what}={value}) cannot hold the longest sample ({longest} tokens)",
            f"give {what}={longest} or more, or truncate the data",
        )


@register_cut
@dataclass(frozen=True)
class PadToMax(BatchingCut):
    """Every batch padded to the longest sample (``padding="max_length"``)."""

    lengths: LengthDistribution | None = field(default=None, compare=False, repr=False)

    name = "pad-to-max"
    summary = "every batch padded to the longest sample of the data (today's fixed-length batches)"
    title = "padding to the maximum"

    def layout(self, batch_size: int, seq_len: int) -> BatchLayout:
        lengths = self.sample_lengths(batch_size, seq_len)
        top = max(lengths)
        batches = [list(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size)]
        return dataclasses.replace(
            _padded(self.name, batches), rows=min(batch_size, len(lengths)), row_tokens=top,
            padded_tokens=sum(len(b) for b in batches) * top,
        )  # fmt: skip

    def add_code(self, code: TrainingCode) -> None:
        code.after_arguments.append('# pad every sample to the longest: tokenizer(..., padding="max_length")')


@register_cut
@dataclass(frozen=True)
class GroupByLength(BatchingCut):
    """transformers' ``group_by_length``: batches of similar lengths, padded to their own longest."""

    lengths: LengthDistribution | None = field(default=None, compare=False, repr=False)

    name = "group-by-length"
    summary = "HF group_by_length: megabatches of 50×batch sorted by length, each batch padded to its longest"
    title = "grouping by length"

    def layout(self, batch_size: int, seq_len: int) -> BatchLayout:
        # transformers 5.25 trainer_pt_utils.get_length_grouped_indices (LengthGroupedSampler):
        # a random permutation cut into megabatches of min(n // (4·batch), 50)·batch, each sorted
        # by length, the longest sample's batch first; the trainer's seed 0 here
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        lengths = self.sample_lengths(batch_size, seq_len)
        order = get_length_grouped_indices(list(lengths), batch_size, generator=torch.Generator().manual_seed(0))
        batches = [[lengths[i] for i in order[j : j + batch_size]] for j in range(0, len(order), batch_size)]
        return _padded(self.name, batches)

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["group_by_length"] = "True"


@register_cut
@dataclass(frozen=True)
class TokenBudget(BatchingCut):
    """Micro-batches formed up to ``tokens`` padded tokens from length-sorted samples."""

    tokens: int = 4096
    lengths: LengthDistribution | None = field(default=None, compare=False, repr=False)

    name = "token-budget"
    summary = "micro-batches of up to `tokens` padded tokens from length-sorted samples (tokens=4096)"
    title = "token-budget batches"

    def layout(self, batch_size: int, seq_len: int) -> BatchLayout:
        lengths = sorted(self.sample_lengths(batch_size, seq_len), reverse=True)
        _bounded(self.name, self.tokens, lengths[0], "tokens")
        batches: list[list[int]] = []
        for n in lengths:  # longest first: a batch's first sample is its longest
            if batches and (len(batches[-1]) + 1) * batches[-1][0] <= self.tokens:
                batches[-1].append(n)
            else:
                batches.append([n])
        return _padded(self.label(), batches)

    def add_code(self, code: TrainingCode) -> None:
        code.after_arguments.append(
            f"# micro-batches of up to {self.tokens} padded tokens from length-sorted samples "
            "(a batch sampler of your own)"
        )


@register_cut
@dataclass(frozen=True)
class Pack(BatchingCut):
    """Samples packed without padding into rows of up to ``max_tokens`` (transformers'
    ``DataCollatorWithFlattening``: ``position_ids`` restart per document).

    On eager and SDPA attention transformers 5.25 finds the documents from ``position_ids``
    (``masking_utils.find_packed_sequence_indices``) and builds one block-diagonal mask over
    the whole row: attention costs (row × row), not the sum over documents, which only
    flash-attention's varlen kernels achieve. The trial runs exactly that path.
    """

    max_tokens: int = 4096
    lengths: LengthDistribution | None = field(default=None, compare=False, repr=False)

    name = "pack"
    summary = "samples packed without padding into rows of ≤ max_tokens (DataCollatorWithFlattening, position_ids)"
    title = "packing"

    def layout(self, batch_size: int, seq_len: int) -> BatchLayout:
        lengths = self.sample_lengths(batch_size, seq_len)
        if self.lengths is None:  # fixed-length samples: the batch flattened into one row
            lengths = (seq_len,) * batch_size
            limit = max(self.max_tokens, sum(lengths)) if self.max_tokens == Pack.max_tokens else self.max_tokens
        else:
            limit = self.max_tokens
        _bounded(self.name, limit, max(lengths), "max_tokens")
        rows: list[list[int]] = [[]]
        for n in lengths:  # in the data's order, as the collator sees them
            if sum(rows[-1]) + n > limit:
                rows.append([])
            rows[-1].append(n)
        worst = max(rows, key=lambda r: (sum(r), max(r)))
        total = sum(lengths)
        return BatchLayout(self.label(), 1, sum(worst), len(rows), total, total, tuple(worst))

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        # transformers 5.25 (LlamaModel.forward, masking_utils._preprocess_mask_arguments): a
        # model whose config keeps use_cache on builds a DynamicCache even in training, and with
        # a cache it does not look for packed samples in position_ids — they would attend to
        # each other. Packing correctly means use_cache=False (as gradient checkpointing sets).
        config = getattr(model, "config", None)
        if getattr(config, "use_cache", None):
            config.use_cache = False  # type: ignore[union-attr]
        return model

    def wrap_program(self, prog: StepProgram, ctx: BuildContext) -> StepProgram:
        if self.lengths is not None:
            documents = self.layout(1, 1).documents
        else:  # fixed-length samples (configure recorded how many, of what length)
            documents = (int(ctx.recipe.notes["longest_document"]),) * int(ctx.recipe.notes["packed_documents"])
        prog.batch = ctx.source.make_packed_batch(documents, ctx.device)
        return super().wrap_program(prog, ctx)

    def add_code(self, code: TrainingCode) -> None:
        code.transformers_imports.append("DataCollatorWithFlattening")
        code.after_arguments.append(
            f"# pack samples without padding into rows of <= {self.max_tokens} tokens: "
            "Trainer(..., data_collator=DataCollatorWithFlattening())"
        )


def resolve_batching(plan: Plan, lengths: LengthDistribution | None, batch_size: int, seq_len: int) -> tuple[Plan, int, int]:
    """``plan`` with its batching cut given ``lengths``, and the worst batch's (rows, tokens
    a row) to run; a plan without one is returned as it is, with the sizes."""
    cuts = []
    shape = (batch_size, seq_len)
    for cut in plan.cuts:
        if isinstance(cut, BatchingCut):
            cut = dataclasses.replace(cut, lengths=lengths)  # type: ignore[type-var]
            layout = cut.layout(batch_size, seq_len)
            shape = (layout.rows, layout.row_tokens)
        cuts.append(cut)
    return Plan(tuple(cuts)), shape[0], shape[1]
