"""Measured distributed trials: a real ``torchrun`` job, one trial per rank, the ranks gathered.

:func:`measure_distributed` writes the job (plan, sizes, the model as given) to a temporary
folder, starts ``python -m torch.distributed.run --standalone --nproc_per_node N -m
advisor.engines.rank_worker`` (gloo on CPU, NCCL on GPUs), and reads back each rank's
:class:`~profilers.records.TrialResult`. It can repeat the job: gloo's collectives release their
buffers at moments that vary between ranks and runs, so the figure is the maximum over ranks and
runs, and the record keeps every rank's peak (its spread).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advisor.core.errors import InvalidInputError
from advisor.engines.simulate import with_rank_record
from advisor.engines.zero import zero_cut_of
from advisor.models import ModelSource, resolve_model
from advisor.plans import Plan, parse_plan
from advisor.plans.cuts.distributed import check_world
from profilers.records import TrialResult, TrialStatus

__all__ = ["LAUNCHER", "gather_ranks", "launcher_reason", "measure_distributed", "measure_distributed_plans"]

log = logging.getLogger(__name__)

LAUNCHER = "torch.distributed.run"  # what the torchrun script runs
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def launcher_reason() -> str | None:
    """Why a ``torchrun`` job cannot be started here, or ``None`` when it can."""
    if not torch.distributed.is_available():
        return f"this torch build ({torch.__version__}) has no torch.distributed"
    if importlib.util.find_spec(LAUNCHER) is None:
        return f"torchrun ({LAUNCHER}) is not importable with this torch ({torch.__version__})"
    return None


def _payload(model: str | nn.Module | ModelSource) -> bytes:
    source = model if isinstance(model, str) else resolve_model(model)
    for candidate in (model, source):
        try:
            return pickle.dumps(candidate)
        except Exception as exc:  # pickle raises many kinds
            log.debug("cannot send %r to the ranks: %s", candidate, exc)
    raise InvalidInputError(
        "the model cannot be sent to the torchrun ranks (it does not pickle: a closure or a lambda?)",
        "give the model as a built-in name, a Hugging Face directory, or 'module.path:factory'",
    )


def gather_ranks(
    results: list[list[TrialResult]], plan: Plan, world_size: int, *, backend: str
) -> TrialResult:
    """One result from the ranks' results of one or more runs (``results[run][rank]``): the
    rank and run with the highest tensor peak, with every rank's maximum over the runs."""
    flat = [r for run in results for r in run]
    failed = next((r for r in flat if not r.ok), None)
    if failed is not None:
        return failed

    def peak(r: TrialResult) -> int:
        return r.tensor_peak.peak_bytes if r.tensor_peak is not None else 0

    per_rank = [max(peak(run[rank]) for run in results) for rank in range(world_size)]
    worst_run, worst_rank = max(
        ((i, k) for i, run in enumerate(results) for k in range(world_size)),
        key=lambda ik: peak(results[ik[0]][ik[1]]),
    )
    out = with_rank_record(
        results[worst_run][worst_rank], plan, world_size, backend=backend, rank=worst_rank,
        rank_peaks=tuple(per_rank), runs=len(results),
    )  # fmt: skip
    if out.distributed is not None and not out.distributed.rank_peak_bytes:  # a ZeRO rank's own record
        record = dataclasses.replace(out.distributed, rank=worst_rank, rank_peak_bytes=tuple(per_rank), runs=len(results))
        out = dataclasses.replace(out, distributed=record)
    return out


def measure_distributed(
    model: str | nn.Module | ModelSource,
    plan: Plan | str,
    batch_size: int,
    seq_len: int,
    *,
    nproc: int,
    device: str = "cpu",
    steps: int = 1,
    warmup_steps: int = 1,
    runs: int = 1,
    timeout_s: float = 900.0,
    progress: Callable[[str], None] | None = None,
) -> TrialResult:
    """Measure ``plan`` (with its strategy cut) on ``nproc`` local processes under ``torchrun``.

    ``device`` ``"cpu"`` runs every rank on the CPU with gloo; ``"cuda"`` one GPU per rank with
    NCCL. ``batch_size`` is each rank's micro-batch. Repeats the job ``runs`` times; the result
    is the rank (and run) with the highest tensor peak, its ``distributed`` record holding every
    rank's peak. A job that fails comes back as a result with the reason, like any trial.
    """
    return measure_distributed_plans(
        model, [plan], batch_size, seq_len, nproc=nproc, device=device, steps=steps,
        warmup_steps=warmup_steps, runs=runs, timeout_s=timeout_s, progress=progress,
    )[0]  # fmt: skip


def measure_distributed_plans(
    model: str | nn.Module | ModelSource,
    plans: Sequence[Plan | str],
    batch_size: int,
    seq_len: int,
    *,
    nproc: int,
    device: str = "cpu",
    steps: int = 1,
    warmup_steps: int = 1,
    runs: int = 1,
    timeout_s: float = 900.0,
    progress: Callable[[str], None] | None = None,
) -> list[TrialResult]:
    """:func:`measure_distributed` for several plans, one after the other in each ``torchrun``
    job (starting the ranks costs more than a small model's trials). A DeepSpeed ZeRO plan gets
    a job of its own: DeepSpeed keeps process-wide state (its communication backend, ZeRO-3's
    parameter hooks and persistence counters) that a second plan in the same ranks would see."""
    todo = [parse_plan(p) if isinstance(p, str) else p for p in plans]
    kw: dict[str, Any] = dict(nproc=nproc, device=device, steps=steps, warmup_steps=warmup_steps, runs=runs,
                              timeout_s=timeout_s, progress=progress)  # fmt: skip
    zero = [i for i, p in enumerate(todo) if zero_cut_of(p) is not None]
    if zero and len(todo) > 1:
        rest = [p for i, p in enumerate(todo) if i not in zero]
        out: dict[int, TrialResult] = {}
        if rest:
            done = measure_distributed_plans(model, rest, batch_size, seq_len, **kw)
            out.update(zip([i for i in range(len(todo)) if i not in zero], done, strict=True))
        for i in zero:
            out[i] = measure_distributed_plans(model, [todo[i]], batch_size, seq_len, **kw)[0]
        return [out[i] for i in range(len(todo))]
    for plan in todo:
        check_world(plan, nproc)
    if runs < 1:
        raise InvalidInputError(f"runs must be ≥ 1, got {runs}", "pass runs=1 or more")
    why = launcher_reason()
    if why is not None:
        raise InvalidInputError(
            f"cannot launch a distributed trial: {why}", "install a torch with torch.distributed"
        )
    if device.startswith("cuda") and torch.cuda.device_count() < nproc:
        raise InvalidInputError(
            f"{nproc} ranks on CUDA need {nproc} GPUs, this machine has {torch.cuda.device_count()}",
            "pass a smaller nproc, or device='cpu' (gloo)",
        )
    say = progress or (lambda _msg: None)
    payload = _payload(model)
    name = model if isinstance(model, str) else resolve_model(model).name
    job: dict[str, Any] = {
        "plans": [p.name for p in todo], "batch_size": batch_size, "seq_len": seq_len, "device": device,
        "steps": steps, "warmup_steps": warmup_steps,
    }  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_PROJECT_ROOT, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    runs_done: list[list[list[TrialResult]]] = []  # [run][rank][plan]
    for run in range(runs):
        say(f"torchrun job {run + 1}/{runs}: {nproc} ranks, {len(todo)} plan(s)")
        with tempfile.TemporaryDirectory(prefix="vram-advisor-ranks-") as tmp:
            job_dir = Path(tmp)
            (job_dir / "job.json").write_text(json.dumps(job))
            (job_dir / "model.pickle").write_bytes(payload)
            cmd = [sys.executable, "-m", LAUNCHER, "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "advisor.engines.rank_worker", str(job_dir)]  # fmt: skip
            try:
                proc = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
                )
            except subprocess.TimeoutExpired:
                why = f"the torchrun job took more than {timeout_s:.0f} s"
                return [_failed(name, p, batch_size, seq_len, why) for p in todo]
            ranks = [job_dir / f"rank{k}.json" for k in range(nproc)]
            if proc.returncode != 0 or not all(p.exists() for p in ranks):
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                log.debug("torchrun failed:\n%s", proc.stderr)
                why = f"the torchrun job failed (exit {proc.returncode}): {' | '.join(tail)[:500]}"
                return [_failed(name, p, batch_size, seq_len, why) for p in todo]
            runs_done.append([[TrialResult.from_dict(d) for d in json.loads(p.read_text())] for p in ranks])
    backend = "nccl" if device.startswith("cuda") else "gloo"
    return [
        gather_ranks([[ranks[i] for ranks in run] for run in runs_done], plan, nproc, backend=backend)
        for i, plan in enumerate(todo)
    ]


def _failed(model: str, plan: Plan, batch_size: int, seq_len: int, reason: str) -> TrialResult:
    return TrialResult(model=model, plan=plan.name, cuts=plan.cut_names, device="torchrun",
                       batch_size=batch_size, seq_len=seq_len, status=TrialStatus.ERROR, reason=reason)  # fmt: skip
