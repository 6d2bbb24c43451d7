"""Measure: one plan's trial on this machine, and the check that a model is small enough to."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from advisor.core.errors import InvalidInputError
from advisor.core.units import format_bytes
from advisor.models import ModelSource
from advisor.plans import Plan, program_builder, trial_spec
from profilers.records import TrialResult
from profilers.trial import run_trial

log = logging.getLogger(__name__)

__all__ = ["MEASURE_LIMIT_FRACTION", "check_measurable", "measure_plan", "meta_parameter_count"]

# a model is too big to measure on a device when full fp32 AdamW training (16 B per parameter)
# would need more than this share of the device's memory
MEASURE_LIMIT_FRACTION = 0.5
_FULL_FT_BYTES_PER_PARAM = 16


def measure_plan(
    plan: Plan,
    source: ModelSource,
    batch_size: int,
    seq_len: int,
    *,
    device: str = "auto",
    steps: int = 3,
    warmup_steps: int = 1,
    progress: Callable[[str], None] | None = None,
) -> TrialResult:
    """Measure one plan of ``source`` on this machine (a trial: see :func:`run_trial`)."""
    spec = trial_spec(
        plan, source, batch_size, seq_len, device=device, steps=steps, warmup_steps=warmup_steps
    )
    return run_trial(spec, program_builder(plan, source, batch_size, seq_len), progress)


def meta_parameter_count(source: ModelSource) -> int:
    """Parameters of the source's model (shared tensors once), counted on ``meta``."""
    model = source.build("meta", pretrained=False)
    return sum(p.numel() for p in model.parameters())


def _device_memory(device: torch.device) -> int:
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    import psutil

    return int(psutil.virtual_memory().available)


def check_measurable(source: ModelSource, device: torch.device | str, sizes: Sequence[int] = ()) -> None:
    """Raise :class:`InvalidInputError` when ``source`` is plainly too big to train on ``device``.

    The test is full fp32 AdamW fine-tuning (16 B per parameter) against
    :data:`MEASURE_LIMIT_FRACTION` of the device's memory (host RAM available on CPU); the hint
    says how to simulate instead. ``profile`` calls this before building anything.
    """
    device = torch.device(device)
    params = meta_parameter_count(source)
    need = params * _FULL_FT_BYTES_PER_PARAM
    have = _device_memory(device)
    if need <= MEASURE_LIMIT_FRACTION * have:
        return
    where = "this machine's free memory" if device.type == "cpu" else f"{device}'s memory"
    raise InvalidInputError(
        f"{source.name} has {params / 1e9:.2f}B parameters: full training needs about "
        f"{format_bytes(need)} (16 B per parameter), more than half of {where} "
        f"({format_bytes(have)}), so it will not be measured here",
        f"simulate it instead, no weights or GPU needed: vram-advisor simulate --model {source.name}",
    )
