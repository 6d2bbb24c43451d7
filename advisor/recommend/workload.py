"""The training job a recommendation is for: sizes, dataset, epochs and the safety margin."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from advisor.core.errors import InvalidInputError
from advisor.core.lengths import LengthDistribution
from advisor.core.units import parse_count  # noqa: F401  (its old home)
from advisor.engines.need import DEFAULT_MARGIN, check_margin, usable_bytes

__all__ = ["SCRATCH_TOKENS_PER_PARAM", "RankBy", "Workload"]

# Compute-optimal pre-training budget (Hoffmann et al. 2022, "Chinchilla"): ~20 tokens/param.
SCRATCH_TOKENS_PER_PARAM = 20


class RankBy(str, enum.Enum):
    """How plans that fit are ordered: by time to train the workload, or by its cost."""

    TIME = "time"
    COST = "cost"


def _whole(name: str, value: object, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}", hint)
    if value < minimum:
        raise InvalidInputError(f"{name} must be ≥ {minimum}, got {value}", hint)
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class Workload:
    """One fine-tuning job: what each step sees and how much data the whole run covers.

    ``micro_batch`` is the number of samples in one forward/backward pass (an ``accum`` cut
    splits it further and accumulates), ``seq_len`` the tokens per sample, ``dataset_tokens``
    the tokens in one pass over the data, ``epochs`` how many passes, and ``margin`` the share
    of the GPU's memory kept free (the default :data:`advisor.engines.need.DEFAULT_MARGIN`,
    0.10: a plan fits when it needs at most 90% of the memory).
    """

    micro_batch: int = 4
    seq_len: int = 128
    dataset_tokens: int = 10_000_000
    epochs: float = 1.0
    margin: float = DEFAULT_MARGIN
    # the samples' real lengths (a dataset file or percentiles): batching plans form their
    # batches from them, and plans without a batching cut pad every sample to ``seq_len``
    lengths: LengthDistribution | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _whole("micro-batch", self.micro_batch, 1, "use a micro-batch of 1 or more, e.g. micro_batch=4")
        _whole("sequence length", self.seq_len, 1, "use a sequence length of 1 or more, e.g. seq_len=512")
        _whole(
            "dataset size", self.dataset_tokens, 1,
            "give the dataset size in tokens, > 0, e.g. dataset_tokens=50000000",
        )  # fmt: skip
        epochs = _number(self.epochs)
        if epochs is None or epochs <= 0:
            raise InvalidInputError(
                f"epochs must be a number > 0, got {self.epochs!r}", "e.g. epochs=1, 3 or 0.5"
            )
        check_margin(self.margin)
        if self.lengths is not None and not isinstance(self.lengths, LengthDistribution):
            raise InvalidInputError(
                f"lengths must be an advisor.LengthDistribution, got {type(self.lengths).__name__}",
                "pass lengths=advisor.parse_lengths('p50=300,p95=1800,max=4096')",
            )
        if self.lengths is not None and self.lengths.max_len > self.seq_len:
            raise InvalidInputError(
                f"the longest sample ({self.lengths.max_len} tokens) is longer than seq_len={self.seq_len}",
                f"pass seq_len={self.lengths.max_len} or more (the padded length)",
            )

    @property
    def total_tokens(self) -> float:
        """Tokens the whole run trains on (dataset × epochs)."""
        return self.dataset_tokens * float(self.epochs)

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.micro_batch * self.seq_len

    def usable_bytes(self, memory_bytes: int) -> int:
        """The part of ``memory_bytes`` a plan may use once the margin is kept free
        (:func:`advisor.engines.need.usable_bytes`, the one fit rule)."""
        return usable_bytes(memory_bytes, self.margin)

    @property
    def padding_waste(self) -> float | None:
        """The share of padded tokens when every sample is padded to ``seq_len`` (``None``
        without lengths)."""
        if self.lengths is None:
            return None
        return 1.0 - self.lengths.mean_len / self.seq_len

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset_tokens": self.dataset_tokens,
            "epochs": self.epochs,
            "margin": self.margin,
            "micro_batch": self.micro_batch,
            "seq_len": self.seq_len,
        }
        if self.lengths is not None:  # a summary: a report keeps no per-sample lengths
            out["lengths"] = self.lengths.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = ("micro_batch", "seq_len", "dataset_tokens", "epochs", "margin")
        return cls(**{k: data[k] for k in names if k in data})
