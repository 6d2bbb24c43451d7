"""Benchmark: a simulated sweep of Llama-3.1-8B at seq 2048 on this machine (no GPU, no weights).

Acceptance (issue #4): at least 12 plans complete in under 3 minutes on a 2-core machine, with
the process's peak RSS under 4 GiB. Run it as::

    python benchmarks/simulate_8b.py [--batch 4] [--seq 2048] [--json benchmarks/results/simulate_8b.json]

It prints one line per plan (status, simulated tensor peak, predicted GPU need, FLOPs) and then
the wall time and peak RSS of the whole sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from advisor.core.units import format_bytes
from advisor.engines.flops import step_cost_of
from advisor.engines.overheads import predict_gpu_need
from advisor.engines.simulate import simulate_plans
from advisor.plans.cuts import parse_plans

PLANS = (
    "baseline; lora; grad-ckpt; bf16; bf16-weights; sgd; adafactor; frozen-emb; freeze-layers(k=8); "
    "accum(steps=4); eager-attn; lora+grad-ckpt; lora+grad-ckpt+bf16; bf16-weights+grad-ckpt; "
    "bf16-weights+grad-ckpt+sgd; lora+bf16-weights+grad-ckpt"
)
TIME_LIMIT_S = 180.0
RSS_LIMIT_BYTES = 4 * 2**30


def _peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-8b")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--plans", default=PLANS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    plans = parse_plans(args.plans)
    started = time.perf_counter()
    rows = []

    def show(result) -> None:  # type: ignore[no-untyped-def]
        peak = result.tensor_peak.peak_bytes if result.tensor_peak else None
        need = predict_gpu_need(result, architecture="Hopper").total_bytes if result.ok else None
        cost = step_cost_of(result)
        flops = cost.total_flops if cost else None
        print(
            f"{result.plan:34s} {result.status.value:11s} peak {format_bytes(peak):>10s}  "
            f"H100 need {format_bytes(need):>10s}  {flops or 0:.3e} FLOP  {result.wall_time_s:5.1f} s"
            + (f"  ({result.reason[:80]})" if result.reason else ""),
            flush=True,
        )
        rows.append(
            {
                "plan": result.plan,
                "status": result.status.value,
                "tensor_peak_bytes": peak,
                "peak_phase": result.tensor_peak.peak_phase if result.tensor_peak else None,
                "predicted_h100_need_bytes": need,
                "flops_per_step": flops,
                "wall_time_s": round(result.wall_time_s, 2),
            }
        )

    simulate_plans(args.model, plans, args.batch, args.seq, on_result=show)
    wall = time.perf_counter() - started
    rss = _peak_rss_bytes()
    ok = sum(r["status"] == "ok" for r in rows)
    print(
        f"\n{len(rows)} plans ({ok} ok) of {args.model}, batch {args.batch} × seq {args.seq}: "
        f"{wall:.1f} s wall (limit {TIME_LIMIT_S:.0f} s), peak RSS {format_bytes(rss)} "
        f"(limit {format_bytes(RSS_LIMIT_BYTES)}) on {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    if args.json:
        doc = {
            "benchmark": "simulate_8b",
            "model": args.model,
            "batch_size": args.batch,
            "seq_len": args.seq,
            "plans": len(rows),
            "wall_time_s": round(wall, 2),
            "peak_rss_bytes": rss,
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return 0 if (len(rows) >= 12 and wall < TIME_LIMIT_S and rss < RSS_LIMIT_BYTES) else 1


if __name__ == "__main__":
    sys.exit(main())
