"""A real DeepSpeed ZeRO run on this CPU against the simulated ZeRO rank and DeepSpeed's estimators.

One ``torchrun`` job of N ranks (gloo) per plan runs it under DeepSpeed
(:mod:`advisor.engines.zero_measure`: ``deepspeed.initialize`` around the plan's model and
AdamW, one warm-up step, one step measured with the exact tensor tracker). For each plan it
prints, per rank (the highest rank):

* **measured peak** — the measured step's tensor peak, and the phase it fell in;
* **simulated peak** — ``advisor.simulate(..., gpus=N, target="cpu")`` of the same plan;
* **measured states** — what DeepSpeed keeps on the rank after the optimizer step (parameters
  or their partitions, fp32 master and Adam partitions, persistent buffers), batch excluded;
* **simulated states** — :func:`profilers.simulate.zero.zero_layout`'s model states at the step
  (``model_state_bytes``: with the gradient partitions, which DeepSpeed frees after the step);
* **DS estimator** — ``estimate_zero2/zero3_model_states_mem_needs`` for the same counts.

Writes ``benchmarks/results/zero-measured.md``.

    PYTHONPATH=. .venv/bin/python benchmarks/zero_measured.py [--model tiny-llama] [--nproc 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from advisor import api
from advisor.core.tables import table
from advisor.core.units import format_bytes
from advisor.engines.distributed import measure_distributed_plans
from advisor.engines.zero import zero_layout_for
from advisor.models import resolve_model
from advisor.plans import parse_plan
from profilers.simulate.zero import ZeroLayout, deepspeed_estimate_bytes, largest_layer_params

OUT = Path(__file__).parent / "results" / "zero-measured.md"
PLANS = [
    "zero(stage=1)+bf16", "zero(stage=2)+bf16", "zero(stage=2)", "zero(stage=2)+lora+bf16",
    "zero(stage=3)+bf16", "zero(stage=3)+lora+bf16",
]  # fmt: skip
# the measured roles after the step, and the layout's terms that model each (stage 3)
_ROLES = (
    ("parameters", "partitions + persistent (≤ 1e5 elements) whole"),
    ("gradients", "16-bit gradient partition"),
    ("optimizer", "fp32 master + Adam partitions"),
    ("deepspeed buffers", "reduce bucket (kept between steps)"),
)


_STAGE3_READING = """How the stage-3 rows are modelled, term by term (`advisor/engines/zero.py::_stage3_peak`,
DeepSpeed 0.19.8):

* **optimizer phase** (full fine-tuning's peak): the parameter, 16-bit gradient, fp32 master and Adam
  partitions, the reduce bucket (`reduce_bucket_size` × 2 B, kept between steps), one sub-group's fp32
  gradient (`_prepare_fp32_grad_for_sub_group`) and AdamW's two fp32 temporaries of the partition
  (`_single_tensor_adam`: `exp_avg_sq.sqrt()` and its quotient); the persistent parameters are released
  for the step (`_partition_all_parameters`); or the step's start, with them still whole (LoRA's optimizer
  phase: its sub-group is small). Measured − modelled: Adam's 4-byte step counter, DeepSpeed's 1-byte
  `inf_or_nan_tracker` and a few 4–8-byte scalars.
* **forward, at the prefetched all-gather** (LoRA's peak): the gathered parameters twice (the flat
  all-gather output and each parameter's `torch.cat` copy out of it, `AllGatherCoalescedHandle.wait`) beside
  the partitions, the persistent parameters whole and the bucket; measured − modelled: the activations
  already live then (LoRA: the embedding's output; full fine-tuning's forward phase peaks a little later,
  when the first layers' activations, 1.7 MB, are live beside the flat output, which the handle keeps until
  the batch's last parameter is fetched).
* **backward**: the larger of the step with the replay's activations, the gathered parameters and the
  largest module's 16-bit gradients, and the gradients' reduce-scatter (`reduce_scatter_coalesced`: a
  `torch.cat` copy of the bucket's padded gradients, and gloo's copy of its input): with every gradient in
  one bucket it runs once after backward, with the last module still gathered and no activation left
  (full fine-tuning's measured backward, to a few bytes). LoRA's measured backward is below the modelled
  one: there the real backward releases each module's gathered parameters as it goes, while the model
  keeps all of the prefetch window beside all of the activations.
"""


def _modelled_roles(layout: ZeroLayout) -> dict[str, int]:
    """What the stage-3 layout says each measured role holds after the step."""
    return {
        "parameters": layout.parameter_bytes + layout.persistent_parameter_bytes,
        "gradients": layout.gradient_bytes - layout.module_gradient_bytes,
        "optimizer": layout.master_bytes + layout.optimizer_state_bytes,
        "deepspeed buffers": layout.communication_buffer_bytes,
    }


def _pct(a: int, b: int) -> str:
    return f"{100.0 * (a - b) / b:+.2f}%" if b else "—"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--plans", default=";".join(PLANS))
    args = ap.parse_args()
    plans = args.plans.split(";")
    source = resolve_model(args.model)
    started = time.perf_counter()
    measured = measure_distributed_plans(args.model, plans, args.batch, args.seq, nproc=args.nproc, device="cpu")
    took = time.perf_counter() - started
    rows: list[list[str]] = []
    role_rows: list[list[str]] = []
    phase_rows: list[list[str]] = []
    for text, m in zip(plans, measured, strict=True):
        plan = parse_plan(text)
        sim = api.simulate(args.model, text, batch_size=args.batch, seq_len=args.seq, target="cpu", gpus=args.nproc)
        layout, params = zero_layout_for(plan, source, args.batch, args.seq, args.nproc)
        p = sum(x.numel for x in params)
        ds = deepspeed_estimate_bytes(layout.stage, p, largest_layer_params(params), args.nproc)
        if not m.ok or m.tensor_peak is None or sim.tensor_peak is None:
            rows.append([text, f"{m.status.value}: {m.reason}"[:80], "", "", "", "", "", ""])
            continue
        mp, sp = m.tensor_peak.peak_bytes, sim.tensor_peak.peak_bytes
        states = int(m.extra["zero_model_state_bytes"])
        spread = m.distributed.spread if m.distributed is not None else None
        if layout.stage == 3:
            got = m.extra["zero_model_state_roles"]
            for role, what in _ROLES:
                want = _modelled_roles(layout)[role]
                role_rows.append([text, role, what, f"{got[role]:,}", f"{want:,}", f"{want - got[role]:+,}"])
            phases = m.extra.get("zero_phase_peaks", {})
            modelled = sim.distributed.layout if sim.distributed is not None else {}
            for phase in ("forward", "backward", "optimizer"):
                if phase in phases:
                    want = int(modelled.get(f"{phase} peak", 0))
                    peak = " (the peak)" if phase == sim.tensor_peak.peak_phase else ""
                    phase_rows.append([text, phase, f"{phases[phase]:,}", f"{want:,}{peak}",
                                       f"{want - phases[phase]:+,}"])  # fmt: skip
        rows.append([
            text, f"{format_bytes(mp, 2)} ({m.tensor_peak.peak_phase})", format_bytes(sp, 2), _pct(sp, mp),
            f"{spread:.1%}" if spread is not None else "—",
            format_bytes(states, 2), format_bytes(layout.model_state_bytes, 2), format_bytes(ds, 2),
        ])  # fmt: skip
    headers = ["plan", "measured peak (phase)", "simulated peak", "sim − meas", "rank spread",
               "measured states after step", "simulated states at step", "DS estimator"]  # fmt: skip
    print(table(headers, rows))
    role_headers = ["plan", "role after the step", "modelled as", "measured B", "modelled B", "modelled − measured"]
    phase_headers = ["plan", "phase", "measured peak B", "modelled B", "modelled − measured"]
    print(table(role_headers, role_rows))
    print(table(phase_headers, phase_rows))
    load = os.getloadavg()[0]
    print(f"\n{len(rows)} plans, a torchrun job of {args.nproc} ranks each: {took:.0f} s (load {load:.1f})")
    OUT.write_text(
        "# A real DeepSpeed ZeRO run on this CPU vs the simulated ZeRO rank\n\n"
        f"Printed by `benchmarks/zero_measured.py` (deepspeed 0.19.8, torch {_torch()}, gloo; "
        f"{args.model}, micro-batch {args.batch} × {args.seq}, N = {args.nproc} ranks, AdamW, every ZeRO "
        "bucket at DeepSpeed's default). Measured: the exact tensor tracker on every rank, the "
        "highest rank shown (the ranks agree to the spread given). Simulated: `advisor.simulate(..., "
        f"gpus={args.nproc}, target='cpu')`. One torchrun job per plan, all in {took:.0f} s "
        f"(2-core machine shared with other jobs, load {load:.1f}).\n\n"
        + table(headers, rows, markdown=True) + "\n"
        + ("\n## ZeRO-3: model states after the step, by role\n\n"
           "Measured: the tracker's roles on the highest rank after the step (batch excluded); modelled: "
           "`zero_layout`'s terms (module doc of `profilers/simulate/zero.py`).\n\n"
           + table(role_headers, role_rows, markdown=True) + "\n" if role_rows else "")
        + ("\n## ZeRO-3: measured peak of each phase of the step\n\n"
           + table(phase_headers, phase_rows, markdown=True) + "\n\n" + _STAGE3_READING if phase_rows else "")
    )
    print(f"wrote {OUT}")


def _torch() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
