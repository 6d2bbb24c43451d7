"""The public Python API: profile (and, as they land, sweep, simulate, advise)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from advisor.catalog.gpus import GpuSpec
from advisor.core.errors import InvalidInputError
from advisor.engines.measure import check_measurable, measure_plan
from advisor.engines.simulate import simulate as run_simulation
from advisor.engines.sweep import SweepProgress, SweepResult
from advisor.engines.sweep import sweep as run_sweep
from advisor.models import ModelSource, resolve_model
from advisor.plans import Cut, Plan
from advisor.recommend.workload import Workload
from advisor.report import Advice
from profilers.records import TrialResult

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
    from profilers.trial import resolve_device

    source = resolve_model(model)
    plan = plan or Plan()
    source.check_sizes(batch_size, seq_len)
    check_measurable(source, resolve_device(device))  # an 8B preset is simulated, not measured
    log.info("profiling %s, plan %s, batch %d × seq %d", source.name, plan.name, batch_size, seq_len)
    return measure_plan(
        plan, source, batch_size, seq_len, device=device, steps=steps, warmup_steps=warmup_steps,
        progress=progress,
    )  # fmt: skip


def advise(
    model: str | nn.Module | ModelSource,
    *,
    gpu: str | GpuSpec | None = None,
    workload: Workload | None = None,
    gpu_mem: str | int | None = None,
    price_usd_per_hour: float | None = None,
    plans: str | Sequence[Plan | str] | None = None,
    rank_by: str = "time",
    mode: str = "auto",
    check_top: int = 3,
    progress: Callable[[str], None] | None = None,
) -> Advice:
    """Rank training plans of ``model`` for the GPU ``gpu`` and the ``workload``.

    ``model`` is a built-in name (``"tiny-llama"``, ``"llama-3.1-8b"``), a Hugging Face
    directory or config.json, ``"module.path:factory"``, or an ``nn.Module``. ``gpu`` is a
    catalog name (``"rtx-4090"``, the default; ``"T4"``, ``"a100 80gb"``; see
    :func:`advisor.list_gpus`) or a :class:`GpuSpec`; ``gpu_mem`` (``"22GiB"`` or bytes)
    overrides its memory, or alone gives a budget-only target. ``plans`` defaults to the baseline, every single cut and known
    combinations (``"lora+grad-ckpt;bf16"`` picks your own). ``mode`` ``"auto"`` measures when
    the target GPU is this machine's, else simulates; ``"simulate"`` / ``"measure"`` force one.
    ``rank_by`` is ``"time"`` or ``"cost"``.

    Returns an :class:`advisor.Advice` (a :class:`advisor.Recommendation` that renders itself):
    ``.best``, ``.ranked``, ``.excluded``, ``.comparison``, ``.to_json()``, ``.to_markdown()``,
    ``.to_text()``, ``.save(prefix)``.
    Unknown GPU or model names and bad workload values raise :class:`advisor.AdvisorError`
    with the cause and a hint.
    """
    from advisor.catalog.gpus import custom_gpu, get_gpu
    from advisor.core.errors import InvalidInputError
    from advisor.core.io import environment
    from advisor.core.units import parse_memory
    from advisor.models import HFModelSource
    from advisor.plans.cuts import parse_plan, parse_plans
    from advisor.recommend import (
        DEFAULT_GPU,
        Mode,
        candidate_plans,
        default_backends,
        recommend,
        reproduce_command,
        target_present,
    )
    from advisor.recommend.workload import RankBy

    workload = workload or Workload()
    size = parse_memory(gpu_mem) if isinstance(gpu_mem, str) else gpu_mem
    if gpu is None:
        spec = custom_gpu(size) if size is not None else get_gpu(DEFAULT_GPU)
    else:
        spec = gpu if isinstance(gpu, GpuSpec) else get_gpu(gpu)
        if size is not None:
            spec = spec.with_memory(size)
    if price_usd_per_hour is not None:
        spec = spec.with_price(price_usd_per_hour)
    try:
        run_mode = Mode(mode)
        ranking = RankBy(rank_by)
    except ValueError:
        raise InvalidInputError(
            f"mode {mode!r} / rank_by {rank_by!r} not understood",
            "mode: auto, simulate or measure; rank_by: time or cost",
        ) from None
    if run_mode is Mode.AUTO:
        run_mode = Mode.MEASURE if target_present(spec) else Mode.SIMULATE
    if run_mode is Mode.MEASURE and not target_present(spec):
        import torch

        here = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
        raise InvalidInputError(
            f"cannot measure on the {spec.name}: this machine has {here}",
            "simulate instead (mode='simulate', or --simulate), or run on that GPU",
        )
    source = resolve_model(model)
    source.check_sizes(workload.micro_batch, workload.seq_len)
    if plans is None:
        plan_list = candidate_plans()
    elif isinstance(plans, str):
        plan_list = parse_plans(plans)
    else:
        plan_list = [parse_plan(p) if isinstance(p, str) else p for p in plans]
    plan_text = plans if isinstance(plans, str) else None
    if plans is not None and not isinstance(plans, str):
        plan_text = ";".join(p if isinstance(p, str) else p.name for p in plans)
    command = ""
    if isinstance(model, str):
        command = reproduce_command(
            model, spec, workload, rank_by=ranking, mode=Mode(mode), plans=plan_text
        )
    backends = default_backends(source, spec, workload, run_mode)
    task = source.task.value if isinstance(source, HFModelSource) else "custom"
    log.info("advising on %s for %s (%s, %d plans)", source.name, spec.name, run_mode.value, len(plan_list))
    rec = recommend(
        source.name,
        plan_list,
        spec,
        workload,
        backends,
        rank_by=ranking,
        mode=run_mode,
        check_top=check_top,
        environment=environment(),
        command=command,
        model_task=task,
        progress=progress,
    )
    return Advice.of(rec)


# advisor.sweep (the module) is imported at the top, not lazily: advisor/__init__ then binds the
# package attribute ``advisor.sweep`` to this function, and no later first import rebinds it
def sweep(
    model: str | nn.Module | ModelSource,
    *,
    cuts: str | Sequence[str | Cut] | None = None,
    plans: str | Sequence[str | Plan] | None = None,
    max_combo: int = 1,
    batch_size: int = 4,
    seq_len: int = 128,
    device: str = "auto",
    steps: int = 3,
    warmup_steps: int = 1,
    out: str | Path | None = None,
    progress: Callable[[SweepProgress], None] | None = None,
    retry_failed: bool = False,
) -> SweepResult:
    """Measure the baseline and many plans of ``model``, one trial each.

    Plans are every compatible combination of ``cuts`` (``"lora,grad-ckpt,sgd"`` or a list of
    cut names / :class:`Cut` objects; default: every cut but the opt-in ones) of up to
    ``max_combo`` cuts, or the user list ``plans`` (``"lora+grad-ckpt;sgd"``). Conflicting and
    redundant sets are pruned with the reason (``result.pruned``). A failing plan is recorded
    with its reason and the sweep goes on; with ``out``, results are appended to that JSON Lines
    file as they arrive and a re-run resumes (see :mod:`advisor.sweep`).
    """
    from advisor.core.errors import InvalidInputError
    from advisor.plans.cuts import combinations, default_cuts, parse_cuts, user_plans
    if cuts is not None and plans is not None:
        raise InvalidInputError("give cuts or plans, not both", "cuts make combinations; plans are a list")
    if plans is not None:
        space = user_plans(plans)  # "lora+grad-ckpt;sgd" or a list
    else:
        if cuts is None:
            chosen = default_cuts()
        elif isinstance(cuts, str):
            chosen = parse_cuts(cuts)
        else:
            chosen = []
            for item in cuts:
                chosen.extend([item] if isinstance(item, Cut) else parse_cuts(item))
        space = combinations(chosen, max_combo)
    return run_sweep(
        model,
        space,
        batch_size=batch_size,
        seq_len=seq_len,
        device=device,
        steps=steps,
        warmup_steps=warmup_steps,
        out=out,
        progress=progress,
        retry_failed=retry_failed,
    )


def simulate(
    model: str | nn.Module | ModelSource,
    plan: Plan | str | None = None,
    *legacy_sizes: int,
    batch_size: int = 4,
    seq_len: int = 128,
    target: str = "cuda",
    count_flops: bool = True,
    warmup_steps: int = 1,
    progress: Callable[[str], None] | None = None,
    **legacy: Any,
) -> TrialResult:
    """Replay one training configuration of ``model`` on fake tensors: no GPU, no weights.

    ``model`` is anything :func:`profile` takes, plus the architecture presets
    (``"llama-3.1-8b"``, ``"mistral-7b"``, … see :func:`advisor.builtin_models`) and any
    ``config.json``. ``plan`` is a :class:`Plan` or its text (``"lora+grad-ckpt+bf16"``).
    ``target`` is where the step is meant to run: ``"cuda"`` (the optimizer as torch runs it
    on CUDA, and the caching allocator replayed) or ``"cpu"`` (exactly what this CPU runs).
    The tensor peak and its breakdown are exact (provenance ``simulated``); the result's
    ``extra["simulation"]`` holds the peak of each phase, the step's FLOPs and bytes, and (for
    ``target="cuda"``) the CUDA caching allocator replayed. Turn it into a GPU need with
    :func:`advisor.predict_gpu_need` and a step time with :func:`advisor.estimate_for_gpu`.
    Plans that cannot be simulated come back with status ``unsupported`` and the reason.

    The old spellings still work, with a ``DeprecationWarning``: sizes given positionally
    (``simulate(model, plan, 2, 512)``) and ``count_cost=`` for ``count_flops=``.
    """
    if legacy_sizes:
        if len(legacy_sizes) > 2:
            raise InvalidInputError(
                f"simulate() takes at most 4 positional arguments ({2 + len(legacy_sizes)} given)",
                "pass the sizes by name: simulate(model, plan, batch_size=2, seq_len=512)",
            )
        warnings.warn(
            "simulate(model, plan, batch, seq) is deprecated; pass batch_size= and seq_len= by name",
            DeprecationWarning,
            stacklevel=2,
        )
        batch_size = legacy_sizes[0]
        if len(legacy_sizes) == 2:
            seq_len = legacy_sizes[1]
    if "count_cost" in legacy:
        warnings.warn("simulate(count_cost=…) is deprecated; use count_flops=", DeprecationWarning, stacklevel=2)
        count_flops = bool(legacy.pop("count_cost"))
    fake_device = str(legacy.pop("fake_device", "auto"))
    if legacy:
        raise InvalidInputError(
            f"simulate() got unexpected argument{'s' if len(legacy) > 1 else ''} {', '.join(sorted(legacy))}",
            "arguments: model, plan, batch_size, seq_len, target, count_flops, warmup_steps, progress",
        )
    return run_simulation(
        model,
        plan,
        batch_size,
        seq_len,
        target=target,
        fake_device=fake_device,
        warmup_steps=warmup_steps,
        count_cost=count_flops,
        progress=progress,
    )
