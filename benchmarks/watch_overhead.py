"""What does ``advisor.watch`` cost the loop it watches? Median step time with and without.

One run, one model, steps interleaved in rounds (bare, then each watched mode, round after
round) so that machine load hits all alike. Modes:

* ``bare``: a plain PyTorch loop (forward, backward, AdamW step, zero_grad), no advisor code;
* ``watch timing``: ``advisor.watch`` with the exact tracker sampled on 1 step in 1000 (so the
  steps timed here are hooked and timed only: the cost of watching on CUDA, where the
  allocator counts memory for free, is of this kind plus one synchronize);
* ``watch exact 1/N``: the exact CPU tracker on one step in N (the rest timed only); the ratio
  is for the mean step, amortised;
* ``watch exact every``: the exact CPU tracker on every step (a TorchDispatchMode sees every
  aten op).

Target: under 2% for the watched steps that are timed only. Prints a table; ``--json PATH`` saves it.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/watch_overhead.py [--rounds 5] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import advisor
from advisor.core.tables import table


def build(hidden: int, layers: int, vocab: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=1024,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="steps per mode per round")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    model = build(args.hidden, args.layers, args.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))

    def one_step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def bare(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            one_step()
            out.append(time.perf_counter() - t0)
        return out

    def watched(every: int) -> Callable[[int], list[float]]:
        def run(n: int) -> list[float]:
            out = []
            with advisor.watch(model, opt, exact_every=every):
                for _ in range(n):
                    t0 = time.perf_counter()
                    one_step()
                    out.append(time.perf_counter() - t0)
            return out

        return run

    every_n = args.steps  # one exact step per round
    modes: dict[str, Callable[[int], list[float]]] = {
        "bare": bare,
        "watch timing": watched(1000),
        f"watch exact 1/{every_n}": watched(every_n),
        "watch exact every": watched(1),
    }
    bare(2)  # warm-up: AdamW's state, allocator, caches
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for name, run in modes.items():
            ts = run(args.steps)
            if name == "watch timing":
                ts = ts[1:]  # the first step of a watch is the exact one (1 in 1000)
            times[name].extend(ts)
    base = statistics.median(times["bare"])
    rows: list[list[str]] = []
    result: dict[str, Any] = {
        "model": f"llama hidden={args.hidden} layers={args.layers} vocab={args.vocab}",
        "batch": args.batch, "seq": args.seq, "rounds": args.rounds, "steps_per_round": args.steps,
        "torch_threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0], "modes": {},
    }  # fmt: skip
    for name, ts in times.items():
        med = statistics.median(ts)
        mean = statistics.fmean(ts)
        rows.append([name, str(len(ts)), f"{med * 1e3:.1f} ms", f"{mean * 1e3:.1f} ms", f"{med / base:.3f}", f"{mean / statistics.fmean(times['bare']):.3f}"])
        result["modes"][name] = {"steps": len(ts), "median_s": med, "mean_s": mean, "median_ratio": med / base}
    print(
        f"watch overhead: {result['model']}, batch {args.batch} × {args.seq}, CPU, "
        f"{torch.get_num_threads()} torch thread(s), load average {result['load_avg_1min']:.1f}"
    )
    print(table(["mode", "steps", "median step", "mean step", "median ratio", "mean ratio"], rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2, sort_keys=True)
            fh.write("\n")


if __name__ == "__main__":
    main()
