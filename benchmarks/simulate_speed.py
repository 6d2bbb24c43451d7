"""Benchmark: repeat-block simulation and worker processes against the full replay, same run.

Issue #14's targets on a 2-core machine: a 24-plan simulated sweep of Llama-3.1-8B at 1 × 2048
under 15 s, 24 plans of Llama-3.1-70B under 30 s, one Llama-3.1-405B plan under 5 s, peak RSS
under 2 GiB. Each case is timed the new way (a few repeats of the block, extrapolated; plans in
worker processes) and the old way (every layer replayed, one plan after another), and the
tensor peaks are compared. Where the old way would take many minutes (24 plans of 70B) it is
timed on one plan and multiplied, and the table says so. Run it as::

    python benchmarks/simulate_speed.py [--workers N] [--skip-full] [--models 8b,70b,405b] [--out benchmarks/results/simulate_speed]

Wall time on a shared machine follows its load; the table also gives the CPU time (this
process and its workers) and the load average, so a figure can be judged.
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
from typing import Any

import torch

from advisor.core.errors import UnknownModelError
from advisor.core.tables import table
from advisor.core.units import format_bytes
from advisor.engines.simulate import default_workers, simulate, simulate_plans
from advisor.models import HFModelSource, ModelSource, resolve_model
from advisor.plans import parse_plan, parse_plans
from profilers.records import TrialResult

PLANS_24 = (
    "baseline; lora; grad-ckpt; bf16; bf16-weights; sgd; adafactor; frozen-emb; freeze-layers(k=8); "
    "lora(r=32); eager-attn; lora+grad-ckpt; lora+grad-ckpt+bf16; bf16-weights+grad-ckpt; "
    "bf16-weights+grad-ckpt+sgd; lora+bf16-weights+grad-ckpt; lora+bf16; lora(r=16); lora(r=64)+grad-ckpt; "
    "grad-ckpt+sgd; grad-ckpt+adafactor; bf16-weights+lora; bf16-weights+adafactor; lora+eager-attn"
)
ONE_PLAN = "lora+grad-ckpt+bf16-weights"
BATCH, SEQ = 1, 2048
TARGETS_S = {"llama-3.1-8b ×24": 15.0, "llama-3.1-70b ×24": 30.0, "llama-3.1-405b ×1": 5.0}
RSS_LIMIT_BYTES = 2 * 2**30

# published config.json values (meta-llama/Llama-3.1-70B, meta-llama/Llama-3.1-405B), used
# until the presets of the same names are in the catalog
_SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.1-70b": {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                      "num_attention_heads": 64},
    "llama-3.1-405b": {"hidden_size": 16384, "intermediate_size": 53248, "num_hidden_layers": 126,
                       "num_attention_heads": 128},
}  # fmt: skip


def model_source(name: str) -> ModelSource:
    """The preset when there is one, else a Llama-3.1 config of the published shape."""
    try:
        return resolve_model(name)
    except UnknownModelError:
        from transformers import LlamaConfig

        cfg = LlamaConfig(
            vocab_size=128256, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
            rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192},
            **_SHAPES[name],
        )  # fmt: skip
        cfg.architectures = ["LlamaForCausalLM"]
        return HFModelSource(name, cfg, description=f"{name} shape from its config.json (benchmark)")


def _rss() -> tuple[int, int]:
    """Peak RSS of this process and the largest of its finished child processes (bytes).

    The sweep's workers are forks of this process (no other thread runs here, so
    :func:`advisor.engines.simulate._fork_is_safe` holds), reaped when each sweep's pool
    shuts down: the kernel's figures for children cover them, without a sampling thread
    (which would make the sweep start a fork server instead).
    """
    scale = 1 if sys.platform == "darwin" else 1024
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return int(me), int(kids)


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its finished children (the workers): the
    figure that load on a shared machine does not inflate as it does wall time."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        use = resource.getrusage(who)
        total += use.ru_utime + use.ru_stime
    return total


def _peaks(results: list[TrialResult]) -> list[int | None]:
    return [r.tensor_peak.peak_bytes if r.tensor_peak else None for r in results]


def _sweep(source: ModelSource, plans: str, *, fast: bool, workers: int) -> tuple[float, float, list[TrialResult]]:
    """(wall s, CPU s, results)."""
    started, cpu = time.perf_counter(), _cpu_s()
    results = simulate_plans(
        source, parse_plans(plans), BATCH, SEQ, extrapolate=fast, workers=workers if fast else 1
    )
    return time.perf_counter() - started, _cpu_s() - cpu, results


def _one(source: ModelSource, plan: str, *, fast: bool) -> tuple[float, float, TrialResult]:
    """(wall s, CPU s, result)."""
    started, cpu = time.perf_counter(), _cpu_s()
    result = simulate(source, parse_plan(plan), BATCH, SEQ, extrapolate=fast)
    return time.perf_counter() - started, _cpu_s() - cpu, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--skip-full", action="store_true", help="time only the new way")
    parser.add_argument("--models", default="8b,70b,405b", help="which cases: 8b, 70b, 405b (comma-separated)")
    parser.add_argument("--out", type=Path, help="write PREFIX.txt (the table) and PREFIX.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    load_start = os.getloadavg()[0]

    def add(case: str, plans: int, fast: tuple[float, float], full: tuple[float, float] | None, full_how: str,
            same: bool | None, results: list[TrialResult]) -> None:  # fmt: skip
        ok = sum(r.ok for r in results)
        how = sorted({r.simulation.repeats.detail for r in results if r.simulation and r.simulation.repeats})
        rows.append({
            "case": case, "plans": plans, "ok": ok, "new_s": round(fast[0], 2), "new_cpu_s": round(fast[1], 2),
            "full_s": None if full is None else round(full[0], 2),
            "full_cpu_s": None if full is None else round(full[1], 2), "full_how": full_how,
            "speedup": None if not full else round(full[0] / fast[0], 1),
            "cpu_speedup": None if not full else round(full[1] / fast[1], 1),
            "target_s": TARGETS_S.get(case), "same_peaks": same, "rss_bytes": max(_rss()),
            "load_average": round(os.getloadavg()[0], 1), "how": how[:3],
        })  # fmt: skip
        print(f"{case}: new {fast[0]:.1f} s ({fast[1]:.1f} s CPU), full {full} ({full_how}), "
              f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

    if "8b" in args.models:
        src8 = model_source("llama-3.1-8b")
        fast_s, fast_cpu, fast = _sweep(src8, PLANS_24, fast=True, workers=args.workers)
        full8: tuple[float, float] | None = None
        same = None
        if not args.skip_full:
            full_s, full_cpu, full = _sweep(src8, PLANS_24, fast=False, workers=1)
            full8, same = (full_s, full_cpu), _peaks(fast) == _peaks(full)
        add("llama-3.1-8b ×24", 24, (fast_s, fast_cpu), full8, "timed", same, fast)

    if "70b" in args.models:
        src70 = model_source("llama-3.1-70b")
        one_s, one_cpu, one = _one(src70, ONE_PLAN, fast=True)
        one_full: tuple[float, float] | None = None
        same = None
        if not args.skip_full:
            full_s, full_cpu, full_one = _one(src70, ONE_PLAN, fast=False)
            one_full, same = (full_s, full_cpu), _peaks([one]) == _peaks([full_one])
        add("llama-3.1-70b ×1", 1, (one_s, one_cpu), one_full, "timed", same, [one])

        fast_s, fast_cpu, fast = _sweep(src70, PLANS_24, fast=True, workers=args.workers)
        full24 = None if one_full is None else (one_full[0] * 24, one_full[1] * 24)
        add("llama-3.1-70b ×24", 24, (fast_s, fast_cpu), full24, "one plan's full replay × 24", None, fast)

    if "405b" in args.models:
        src405 = model_source("llama-3.1-405b")
        one_s, one_cpu, one = _one(src405, ONE_PLAN, fast=True)
        full405: tuple[float, float] | None = None
        same = None
        if not args.skip_full:
            full_s, full_cpu, full_one = _one(src405, ONE_PLAN, fast=False)
            full405, same = (full_s, full_cpu), _peaks([one]) == _peaks([full_one])
        add("llama-3.1-405b ×1", 1, (one_s, one_cpu), full405, "timed", same, [one])

    headers = ("case", "plans ok", "new (s)", "new CPU (s)", "full replay (s)", "full CPU (s)", "speed-up (CPU)",
               "target", "same peaks", "peak RSS", "load")  # fmt: skip
    body = [
        (
            r["case"], f"{r['ok']}/{r['plans']}", f"{r['new_s']:.1f}", f"{r['new_cpu_s']:.1f}",
            "–" if r["full_s"] is None else f"{r['full_s']:.1f}" + ("*" if r["full_how"] != "timed" else ""),
            "–" if r["full_cpu_s"] is None else f"{r['full_cpu_s']:.1f}" + ("*" if r["full_how"] != "timed" else ""),
            "–" if r["speedup"] is None else f"{r['speedup']}× ({r['cpu_speedup']}×)",
            "–" if r["target_s"] is None else f"< {r['target_s']:.0f} s " + ("met" if r["new_s"] < r["target_s"] else "MISSED"),
            "–" if r["same_peaks"] is None else ("yes" if r["same_peaks"] else "NO"),
            format_bytes(r["rss_bytes"]), f"{r['load_average']:.1f}",
        )
        for r in rows
    ]  # fmt: skip
    me, kids = _rss()
    text = "\n".join([
        f"simulate speed: batch {BATCH} × seq {SEQ}, target cuda, {args.workers} workers, {os.cpu_count()} CPUs, "
        f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, torch {torch.__version__}",
        "",
        table(headers, body),
        "",
        "* one plan's full replay × 24 (the full sweep would take many minutes)",
        f"peak RSS: this process {format_bytes(me)}, largest worker {format_bytes(kids)} (limit {format_bytes(RSS_LIMIT_BYTES)})",
        "new: a few repeats of the block replayed and extrapolated exactly, plans in worker processes",
        "(forks of this process: no fork server re-imports torch, transformers and PEFT first);",
        "full replay: every layer, one plan after another. 'same peaks': tensor peaks equal to the byte.",
        "CPU: user + system seconds of this process and its workers (the kernel's count), which load on",
        "a shared machine inflates far less than wall time; 'load': the 1-minute load average after the case.",
    ])  # fmt: skip
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".txt").write_text(text + "\n")
        doc = {"benchmark": "simulate_speed", "cpus": os.cpu_count(), "workers": args.workers,
               "torch": torch.__version__, "python": platform.python_version(), "rows": rows}  # fmt: skip
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    met = all(r["new_s"] < r["target_s"] for r in rows if r["target_s"]) and max(me, kids) < RSS_LIMIT_BYTES
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
