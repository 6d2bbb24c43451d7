"""How long the advisor takes, and how much memory it needs itself, for its three ways to a number.

Each part runs in a fresh Python process, so its wall time includes nothing of the others and
its peak RSS (``resource.getrusage(...).ru_maxrss``) is that part's own:

* ``import`` — ``import advisor`` alone (the floor every other part starts from);
* ``measured-sweep`` — a full measured sweep of ``tiny-llama`` over the default cuts on this
  CPU (``advisor.api.sweep``: the baseline and every non-opt-in cut on its own, 1 warm-up and
  3 timed steps each, plus the tracked step);
* ``simulated-sweep`` — a simulated sweep of ``llama-3.1-8b`` (no weights, no GPU) at seq 2048
  over 16 plans, targeting CUDA (``advisor.engines.simulate.simulate_plans``);
* ``estimated-sweep`` — the same 8B plans by closed-form accounting
  (``advisor.estimate.estimate_peak``).

Prints a table (wall time, plans, plans/s, peak RSS, provenance of the figures each part makes)
and writes it to ``benchmarks/results/speed-<device>.md`` (and ``.json``).

    .venv/bin/python benchmarks/speed.py [--parts import,measured-sweep,simulated-sweep,estimated-sweep]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.accuracy import RESULTS_DIR, machine_lines

PARTS = ("import", "measured-sweep", "simulated-sweep", "estimated-sweep")
SIM_MODEL = "llama-3.1-8b"
SIM_PLANS = (
    "baseline; lora; grad-ckpt; bf16; bf16-weights; sgd; adafactor; frozen-emb; freeze-layers(k=8); "
    "accum(steps=4); eager-attn; lora+grad-ckpt; lora+grad-ckpt+bf16; bf16-weights+grad-ckpt; "
    "bf16-weights+grad-ckpt+sgd; lora+bf16-weights+grad-ckpt"
)
PROVENANCE = {
    "import": "–",
    "measured-sweep": "measured",
    "simulated-sweep": "simulated",
    "estimated-sweep": "estimated",
}


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


# -- one part, in this process -----------------------------------------------------------------------


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def run_part(part: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one part here; returns its figures (wall time is the work only, imports included)."""
    started = time.perf_counter()
    out: dict[str, Any] = {"part": part}
    if part == "import":
        import advisor  # noqa: F401

        out["plans"] = 0
    elif part == "measured-sweep":
        _quiet()
        from advisor.api import sweep

        with tempfile.TemporaryDirectory() as tmp:
            work = time.perf_counter()
            result = sweep(
                args.model, batch_size=args.batch, seq_len=args.seq, device="cpu",
                steps=args.steps, warmup_steps=1, out=Path(tmp) / "sweep.jsonl",
            )  # fmt: skip
            out["work_s"] = time.perf_counter() - work
        out["plans"] = len(result.results)
        out["plan_s"] = [r.wall_time_s for r in result.results]
        out["ok"] = sum(1 for r in result.results if r.ok)
        out["not_ok"] = [f"{r.plan}: {r.status.value}" for r in result.results if not r.ok]
        out["what"] = f"{args.model}, batch {args.batch} × seq {args.seq}, CPU, default cuts one at a time"
    elif part == "simulated-sweep":
        _quiet()
        from advisor.engines.simulate import simulate_plans
        from advisor.plans.cuts import parse_plans

        plans = parse_plans(args.sim_plans)
        work = time.perf_counter()
        results = simulate_plans(args.sim_model, plans, args.sim_batch, args.sim_seq, target="cuda")
        out["work_s"] = time.perf_counter() - work
        out["plans"] = len(results)
        out["plan_s"] = [r.wall_time_s for r in results]
        out["ok"] = sum(1 for r in results if r.ok)
        out["not_ok"] = [f"{r.plan}: {r.status.value}" for r in results if not r.ok]
        out["what"] = (
            f"{args.sim_model}, batch {args.sim_batch} × seq {args.sim_seq}, fake tensors, CUDA target"
        )
    elif part == "estimated-sweep":
        _quiet()
        from advisor.engines.estimate import estimate_peak
        from advisor.plans.cuts import parse_plans

        plans = parse_plans(args.sim_plans)
        work = time.perf_counter()
        estimates, plan_s = [], []
        for plan in plans:
            t0 = time.perf_counter()
            estimates.append(estimate_peak(args.sim_model, plan, batch_size=args.sim_batch, seq_len=args.sim_seq))
            plan_s.append(time.perf_counter() - t0)
        out["work_s"] = time.perf_counter() - work
        out["plan_s"] = plan_s
        out["plans"] = len(estimates)
        out["ok"] = len(estimates)
        out["not_ok"] = []
        out["what"] = (
            f"{args.sim_model}, batch {args.sim_batch} × seq {args.sim_seq}, closed form, CUDA target"
        )
    else:
        raise SystemExit(f"unknown part '{part}'; parts: {', '.join(PARTS)}")
    out["wall_s"] = time.perf_counter() - started
    out["peak_rss_bytes"] = peak_rss_bytes()
    return out


# -- every part, each in a fresh process -----------------------------------------------------------


def run_isolated(part: str, argv: Sequence[str]) -> dict[str, Any]:
    """Run one part in a fresh interpreter and read back its figures."""
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part, "--part-out", fh.name, *argv]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return {
                "part": part,
                "error": f"exit {proc.returncode}: " + " / ".join(tail),
                "process_s": elapsed,
            }
        data: dict[str, Any] = json.loads(Path(fh.name).read_text())
    data["process_s"] = elapsed
    return data


def plans_per_s(figures: dict[str, Any]) -> float | None:
    plans, work = figures.get("plans"), figures.get("work_s")
    return plans / work if plans and work else None


def rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in results:
        if "error" in r:
            out.append([r["part"], "failed", "", "", "", "", "", "", r["error"][:120]])
            continue
        rate = plans_per_s(r)
        work = r.get("work_s")
        per_plan = r.get("plan_s") or []
        out.append(
            [
                r["part"],
                f"{r['process_s']:.1f}",
                "–" if work is None else f"{work:.1f}",
                str(r.get("plans", "–")) + (f" ({r['ok']} ok)" if "ok" in r else ""),
                "–" if rate is None else (f"{rate:.2f}" if rate < 100 else f"{rate:.0f}"),
                f"{statistics.median(per_plan):.3g}" if per_plan else "–",
                f"{max(per_plan):.3g}" if per_plan else "–",
                f"{r['peak_rss_bytes'] / 2**20:.0f}",
                PROVENANCE.get(r["part"], "–"),
            ]
        )
    return out


HEADERS = (
    "part", "process wall s", "sweep s", "plans", "plans/s", "median s/plan", "max s/plan",
    "peak RSS MiB", "figures are",
)  # fmt: skip


def render(results: Sequence[dict[str, Any]], markdown: bool, command: str = "") -> str:
    from advisor.core.tables import table

    bullet = "- " if markdown else ""
    parts: list[str] = []
    if markdown:
        parts += [
            "# Speed and footprint of the advisor",
            "",
            "Produced by `benchmarks/speed.py`" + (f" (`{command}`)" if command else "") + ". Each part "
            "runs in a fresh process: *process wall s* includes starting Python and importing torch; "
            "*sweep s* is the sweep call alone (what *plans/s* is computed from, the first plan's "
            "one-time costs included); *s/plan* is each plan's own wall time (`TrialResult.wall_time_s`, "
            "build and warm-up included); *peak RSS* is that process's `ru_maxrss`. The machine is "
            "shared: times are what it gave at that moment.",
            "",
        ]
    parts += [bullet + line for line in machine_lines()]
    parts += [""]
    parts.append(table(HEADERS, rows(results), markdown=markdown))
    parts.append("")
    for r in results:
        if "what" in r:
            line = f"{bullet}{r['part']}: {r['what']}"
            if r.get("not_ok"):
                line += "; not ok: " + ", ".join(r["not_ok"])
            parts.append(line)
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--model", default="tiny-llama", help="model of the measured sweep")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measured plan")
    ap.add_argument("--sim-model", default=SIM_MODEL)
    ap.add_argument("--sim-batch", type=int, default=4)
    ap.add_argument("--sim-seq", type=int, default=2048)
    ap.add_argument("--sim-plans", default=SIM_PLANS)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    ap.add_argument("--part-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    raw = list(argv if argv is not None else sys.argv[1:])

    if args.part:
        figures = run_part(args.part, args)
        Path(args.part_out).write_text(json.dumps(figures))
        return 0

    # the children get the same options, minus the choice of parts and the output
    child_argv: list[str] = []
    items = iter(raw)
    for item in items:
        if item in ("--parts", "--out"):
            next(items, None)  # and its value
        elif not item.startswith(("--parts=", "--out=")) and item != "--no-write":
            child_argv.append(item)
    results = []
    for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
        print(f"running {part} …", file=sys.stderr, flush=True)
        results.append(run_isolated(part, child_argv))
    command = ("python benchmarks/speed.py " + " ".join(raw)).strip()
    print(render(results, markdown=False))
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        md = args.out / "speed-cpu.md"
        tmp = md.with_suffix(".md.tmp")
        tmp.write_text(render(results, markdown=True, command=command))
        tmp.replace(md)
        js = args.out / "speed-cpu.json"
        tmp = js.with_suffix(".json.tmp")
        payload = {
            "kind": "vram-advisor/speed",
            "schema_version": 1,
            "machine": machine_lines(),
            "parts": results,
        }
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        tmp.replace(js)
        print(f"written to {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
