"""Does profiling slow the steps it times? Bare training loop vs the profiler's timed steps.

Prints a table: median step time of a plain PyTorch loop (no advisor code at all) and of the
timed steps of ``advisor.profile`` on the same model, batch and device, over several
interleaved rounds. The profiler times uninstrumented steps (memory is tracked in a separate
step), so the two should agree within noise; the target is within 5%.

    .venv/bin/python benchmarks/overhead.py [--model tiny-llama] [--rounds 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import advisor
from advisor.core.tables import table
from advisor.models import resolve_model


def bare_loop(model_name: str, batch: int, seq: int, steps: int) -> float:
    """Median step time of a plain loop: forward, backward, AdamW step, zero_grad."""
    source = resolve_model(model_name)
    model = source.build("cpu")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = source.make_batch(batch, seq, "cpu")
    times = []
    for i in range(steps + 1):  # the first is warm-up
        t0 = time.perf_counter()
        model(**data).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profiled(model_name: str, batch: int, seq: int, steps: int) -> float:
    result = advisor.profile(model_name, batch_size=batch, seq_len=seq, device="cpu", steps=steps)
    assert result.timing is not None, result.reason
    return result.timing.median_step_time_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    bare, prof = [], []
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both alike
        bare.append(bare_loop(args.model, args.batch, args.seq, args.steps))
        prof.append(profiled(args.model, args.batch, args.seq, args.steps))
    b, p = statistics.median(bare), statistics.median(prof)
    rows = [
        ("bare PyTorch loop", f"{b * 1e3:.2f}", "measured"),
        ("advisor.profile timed steps", f"{p * 1e3:.2f}", "measured"),
        ("difference", f"{(p - b) / b * 100:+.1f}%", "measured"),
    ]
    print(f"{args.model}, batch {args.batch} × seq {args.seq}, CPU, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds × {args.steps} steps")
    print(table(("loop", "median step time (ms)", "source"), rows))
    print("within 5%" if abs(p - b) / b <= 0.05 else "NOT within 5%")


if __name__ == "__main__":
    main()
