"""The public Python API: profile (and, as they land, sweep, simulate, advise)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch import nn

from advisor.models import ModelSource, resolve_model
from advisor.plans import Plan, program_builder
from profilers.records import TrialResult
from profilers.trial import TrialSpec, run_trial

log = logging.getLogger(__name__)


def profile(
    model: str | nn.Module | ModelSource,
    *,
    batch_size: int = 4,
    seq_len: int = 128,
    plan: Plan | None = None,
    device: str = "auto",
    steps: int = 5,
    warmup_steps: int = 1,
    progress: Callable[[str], None] | None = None,
) -> TrialResult:
    """Measure one training configuration of ``model`` on this machine.

    ``model`` is a built-in name (``"tiny-llama"``), a Hugging Face directory or config.json,
    ``"module.path:factory"``, or an ``nn.Module``. Runs ``warmup_steps`` steps, then ``steps``
    timed steps, then one step under exact memory tracking. Failures (out of memory, missing
    library, a model error) come back as the result's ``status`` and ``reason``; bad input
    (unknown model, sizes out of range) raises :class:`advisor.AdvisorError`.
    """
    source = resolve_model(model)
    plan = plan or Plan()
    build = program_builder(plan, source, batch_size, seq_len)
    spec = TrialSpec(
        model=source.name,
        plan=plan.name,
        cuts=plan.cut_names,
        batch_size=batch_size,
        seq_len=seq_len,
        device=device,
        warmup_steps=warmup_steps,
        timed_steps=steps,
    )
    log.info("profiling %s, plan %s, batch %d × seq %d", source.name, plan.name, batch_size, seq_len)
    return run_trial(spec, build, progress)
