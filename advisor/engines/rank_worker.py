"""One rank of a measured distributed trial: the entry point ``torchrun`` starts N times.

``python -m torch.distributed.run --nproc_per_node N -m advisor.engines.rank_worker JOB_DIR``:
each process joins the process group (gloo on CPU, NCCL on GPUs), runs the plan's trial
(:func:`profilers.trial.run_trial`, the exact tensor tracker; a ``zero`` plan under
DeepSpeed: :func:`advisor.engines.zero_measure.measure_zero_rank`) and writes its result to
``JOB_DIR/rank<R>.json``. :mod:`advisor.engines.distributed` writes the job and reads the ranks.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from advisor.core.io import atomic_write_text
from advisor.engines.zero import zero_cut_of
from advisor.engines.zero_measure import measure_zero_rank
from advisor.models import resolve_model
from advisor.plans import parse_plan, program_builder, trial_spec
from profilers.trial import run_trial

__all__ = ["main"]

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run this rank's trials of the job in ``argv[0]`` (one per plan, in order) and write
    their results, a JSON list, to ``rank<R>.json`` there."""
    job_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    job = json.loads((job_dir / "job.json").read_text())
    model = pickle.loads((job_dir / "model.pickle").read_bytes())
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = job["device"]
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        torch.manual_seed(0)
        source = resolve_model(model)
        results = []
        for text in job["plans"]:
            plan = parse_plan(text)
            if zero_cut_of(plan) is not None:  # DeepSpeed ZeRO: its engine wraps the step
                results.append(measure_zero_rank(plan, source, job["batch_size"], job["seq_len"], device,
                                                 warmup_steps=job["warmup_steps"]))  # fmt: skip
                dist.barrier()
                continue
            spec = trial_spec(plan, source, job["batch_size"], job["seq_len"], device=device,
                              steps=job["steps"], warmup_steps=job["warmup_steps"])  # fmt: skip
            results.append(run_trial(spec, program_builder(plan, source, job["batch_size"], job["seq_len"])))
            dist.barrier()  # the ranks start each plan together
    finally:
        dist.destroy_process_group()
    atomic_write_text(job_dir / f"rank{rank}.json", json.dumps([r.to_dict() for r in results]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
