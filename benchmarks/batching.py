"""Batching policies on a real length distribution: the worst batch each forms, its peak
measured on this CPU (exact tracker) against the simulated one, and the padding it computes.

For ``tests/fixtures/skewed_lengths.jsonl`` (64 samples, skewed; counted without a tokenizer:
4 bytes a token) and a model (default ``tiny-llama``) at micro-batch 4, each policy —
``pad-to-max``, ``group-by-length``, ``pack(max_tokens=…)``, ``token-budget(tokens=…)`` — forms
the epoch's batches from the real lengths; the worst batch (most tokens in one step) is measured
(``advisor.profile``: one warm-up step, then one tracked step) and simulated (``advisor.simulate``,
``target="cpu"``), and the table shows both peaks, their difference, the padding waste and the
real tokens per worst-step time (what tokens/s counts).

    .venv/bin/python benchmarks/batching.py [--model tiny-llama] [--budget 512]

Writes ``benchmarks/results/batching-cpu.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advisor.api import profile, simulate  # noqa: E402
from advisor.core.units import format_bytes  # noqa: E402
from advisor.models import resolve_model  # noqa: E402
from advisor.models.datasets import dataset_lengths  # noqa: E402
from advisor.plans import parse_plan  # noqa: E402
from advisor.plans.cuts.batching import resolve_batching  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "skewed_lengths.jsonl"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-llama")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--budget", type=int, default=512, help="max_tokens / tokens of pack and token-budget")
    args = parser.parse_args()
    lengths = dataset_lengths(FIXTURE, resolve_model(args.model))
    policies = ["pad-to-max", "group-by-length", f"pack(max_tokens={args.budget})", f"token-budget(tokens={args.budget})"]
    header = ["policy", "worst batch", "measured peak", "simulated peak", "sim − meas", "padding", "real tok/step"]
    rows = []
    for text in policies:
        plan, b, s = resolve_batching(parse_plan(text), lengths, args.batch, lengths.max_len)
        layout = plan.cuts[0].layout(args.batch, lengths.max_len)  # type: ignore[attr-defined]
        meas = profile(args.model, plan=text, batch_size=args.batch, seq_len=lengths.max_len, device="cpu",
                       steps=0, lengths=lengths)  # fmt: skip
        sim = simulate(args.model, text, batch_size=args.batch, seq_len=lengths.max_len, target="cpu",
                       count_flops=False, lengths=lengths, fake_device="cpu")  # fmt: skip
        m, p = meas.tensor_peak.peak_bytes, sim.tensor_peak.peak_bytes  # type: ignore[union-attr]
        rows.append([
            text, f"{b}×{s}", f"{m:,} B ({format_bytes(m)})", f"{p:,} B", f"{(p - m) / m:+.3%}",
            f"{layout.padding_waste:.1%}", str(layout.real_tokens_per_step),
        ])  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    intro = (
        f"{args.model}, micro-batch {args.batch}, {lengths.summary()} — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {load:.1f} (peaks are byte counts: load does not change them)"
    )
    table = markdown_table(header, rows)
    print(intro)
    print(table)
    out = ROOT / "benchmarks" / "results" / "batching-cpu.md"
    out.write_text(f"# Batching policies: worst-batch peaks\n\n{intro}\n\n{table}\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
