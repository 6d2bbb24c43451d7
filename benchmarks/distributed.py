"""Beyond one GPU: a simulated rank against the measured ranks of a real torchrun job.

For the tiny Llama- and GPT-2-shaped models, each strategy plan (fsdp2, fsdp2(reshard=false),
fsdp2+grad-ckpt, fsdp2+lora, ddp) on N CPU processes (gloo):

* **simulated** — ``advisor.engines.simulate.simulate(..., gpus=N, target="cpu")``: rank 0 of N
  on torch's fake process group and fake tensors;
* **measured** — ``advisor.engines.distributed.measure_distributed_plans``: a real
  ``torchrun --nproc_per_node N`` job running every plan's trial on every rank with the exact
  tensor tracker, ``--runs`` times; the maximum over ranks and runs, and the ranks' spread.

Then it times one rank of a 64-GPU FSDP2 run of llama-3.1-70b (batch 1 × 2048, CUDA target,
repeat-block extrapolation): the target is under 30 s.

Prints the tables and writes them to ``benchmarks/results/distributed.txt`` (and ``.json``).

    PYTHONPATH=. .venv/bin/python benchmarks/distributed.py [--models tiny-llama,tiny-gpt2]
        [--worlds 2,4] [--runs 1] [--batch 2] [--seq 32] [--no-70b]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from advisor.core.tables import Column, table
from advisor.core.units import format_bytes
from advisor.engines.distributed import measure_distributed_plans
from advisor.engines.simulate import simulate

PLANS = ["fsdp2", "fsdp2(reshard=false)", "fsdp2+grad-ckpt", "fsdp2+lora", "ddp"]
RESULTS = Path(__file__).resolve().parent / "results"


def compare(models: list[str], worlds: list[int], runs: int, batch: int, seq: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for model in models:
        for world in worlds:
            measured = measure_distributed_plans(model, PLANS, batch, seq, nproc=world, steps=0, runs=runs)
            for plan, m in zip(PLANS, measured, strict=True):
                started = time.perf_counter()
                s = simulate(model, plan, batch, seq, gpus=world, target="cpu", count_cost=False)
                sim_s = time.perf_counter() - started
                sim = s.tensor_peak.peak_bytes if s.ok and s.tensor_peak else None
                peak = m.tensor_peak.peak_bytes if m.ok and m.tensor_peak else None
                d = m.distributed
                rows.append({
                    "model": model, "gpus": world, "plan": plan, "simulated_bytes": sim, "measured_max_bytes": peak,
                    "rank_peak_bytes": list(d.rank_peak_bytes) if d else None, "spread": d.spread if d else None,
                    "runs": runs, "error": (sim - peak) / peak if sim and peak else None,
                    "comm_buffer_bytes": s.tensor_peak.breakdown.communication_buffer_bytes if s.tensor_peak else None,
                    "simulate_s": sim_s, "status": m.status.value if not m.ok else s.status.value,
                })  # fmt: skip
    return rows


def time_70b() -> dict[str, object]:
    started = time.perf_counter()
    r = simulate("llama-3.1-70b", "fsdp2", 1, 2048, gpus=64, target="cuda")
    took = time.perf_counter() - started
    repeats = r.simulation.repeats.detail if r.simulation and r.simulation.repeats else ""
    return {
        "status": r.status.value, "seconds": took, "peak_bytes": r.tensor_peak.peak_bytes if r.tensor_peak else None,
        "parameter_bytes": r.tensor_peak.breakdown.parameter_bytes if r.tensor_peak else None,
        "comm_buffer_bytes": r.tensor_peak.breakdown.communication_buffer_bytes if r.tensor_peak else None,
        "repeats": repeats,
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny-llama,tiny-gpt2")
    ap.add_argument("--worlds", default="2,4")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument(
        "--no-70b", action="store_true", help="skip the 70B timing; keep the last one in the results"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = compare(
        args.models.split(","), [int(w) for w in args.worlds.split(",")], args.runs, args.batch, args.seq
    )
    cols = [
        Column(n)
        for n in ("model", "N", "plan", "simulated", "measured max", "sim − meas", "ranks", "spread")
    ]
    body = []
    for r in rows:
        err = r["error"]
        body.append((
            str(r["model"]), str(r["gpus"]), str(r["plan"]),
            format_bytes(r["simulated_bytes"], 2) if r["simulated_bytes"] else str(r["status"]),  # type: ignore[arg-type]
            format_bytes(r["measured_max_bytes"], 2) if r["measured_max_bytes"] else "–",  # type: ignore[arg-type]
            f"{100 * err:+.2f}%" if isinstance(err, float) else "–",
            ", ".join(format_bytes(b, 2) for b in r["rank_peak_bytes"] or []),  # type: ignore[attr-defined]
            f"{100 * r['spread']:.1f}%" if isinstance(r["spread"], float) else "–",
        ))  # fmt: skip
    head = (
        f"# simulated rank vs measured torchrun ranks (gloo, CPU), batch {args.batch} × seq {args.seq}, "
        f"{args.runs} run(s); {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC, load {load:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    text = head + "\n" + table(cols, body, width=200)
    big = None
    if args.no_70b:  # keep the last 70B timing (taken on an idle machine), saying it is older
        old_txt = RESULTS / "distributed.txt"
        old_json = RESULTS / "distributed.json"
        kept = [ln for ln in (old_txt.read_text().splitlines() if old_txt.exists() else [])
                if ln.startswith("# one rank of 64")]  # fmt: skip
        if kept:
            text += (
                "\n\n"
                + kept[0].split(" [kept from")[0]
                + " [kept from an earlier run: not rerun with --no-70b]"
            )
            if old_json.exists():
                big = json.loads(old_json.read_text()).get("llama-3.1-70b")
    else:
        big = time_70b()
        text += (
            f"\n\n# one rank of 64 under FSDP2, llama-3.1-70b, batch 1 × 2048, CUDA target: {big['status']}, "
            f"{big['seconds']:.1f} s ({big['repeats']}); tensor peak "
            f"{format_bytes(big['peak_bytes'], 2) if big['peak_bytes'] else '–'}, parameter shards "  # type: ignore[arg-type]
            f"{format_bytes(big['parameter_bytes'], 2) if big['parameter_bytes'] else '–'}, "  # type: ignore[arg-type]
            f"communication buffers {format_bytes(big['comm_buffer_bytes'], 2) if big['comm_buffer_bytes'] else '–'}"  # type: ignore[arg-type]
        )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.txt").write_text(text + "\n")
    (RESULTS / "distributed.json").write_text(
        json.dumps({"rows": rows, "llama-3.1-70b": big, "load": load}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
