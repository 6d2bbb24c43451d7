"""What the fused-kernel and pruning cuts save on Llama-3.2-1B (128k vocabulary), simulated.

For batch 1 × seq 8192 on a CUDA target (the replay: no GPU, no weights), each plan's simulated
tensor peak and parameter count beside the baseline's, and the fp32 logits' size
(batch × seq × vocab × 4 B) for scale. Writes ``benchmarks/results/fused_prune.txt``.

    PYTHONPATH=. .venv/bin/python benchmarks/fused_prune.py [--seq 8192]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from advisor.core.units import format_bytes, format_count
from advisor.engines.simulate import simulate
from advisor.models import resolve_model
from advisor.plans import parse_plan

PLANS = (
    "baseline",
    "fused-linear-ce",
    "fused-linear-ce+fused-rmsnorm+fused-swiglu",
    "prune",
    "grad-ckpt",
    "grad-ckpt+fused-linear-ce",
    "grad-ckpt+bf16-weights+fused-linear-ce",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=8192)
    args = parser.parse_args()
    source = resolve_model("llama-3.2-1b")
    logits = args.seq * int(source.config.vocab_size) * 4  # type: ignore[attr-defined]
    lines = [
        f"llama-3.2-1b, batch 1 × seq {args.seq}, CUDA target, simulated; fp32 logits {format_bytes(logits)}",
        "",
        f"{'plan':45} {'peak':>10} {'vs baseline':>12} {'params':>8} {'sim s':>6}",
    ]
    base = 0
    for name in PLANS:
        started = time.perf_counter()
        result = simulate(source, parse_plan(name), 1, args.seq, count_cost=False)
        took = time.perf_counter() - started
        if result.tensor_peak is None or result.params is None:
            lines.append(f"{name:45} {result.status.value}: {result.reason}")
            continue
        peak = result.tensor_peak.peak_bytes
        base = base or peak
        delta = f"{(peak - base) / 1e9:+.2f} GB"
        lines.append(f"{name:45} {format_bytes(peak):>10} {delta:>12} {format_count(result.params.total):>8} {took:6.1f}")
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "fused_prune.txt"
    out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
