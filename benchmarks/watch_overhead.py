"""What does ``advisor.watch`` cost the loop it watches? Median step time with and without.

One run, one model. The modes alternate step by step (bare, watched timing-only, watched exact,
bare, …) so that the machine's load, which varies on a shared box, hits all alike; each watched
step is its own ``with advisor.watch(model, opt, …)`` block, so the watcher's set-up and the
next step's registration (done inside ``optimizer.step``'s hook) are inside the timed step. Modes:

* ``bare``: a plain PyTorch loop (forward, backward, AdamW step, zero_grad), no advisor code;
* ``watch timing``: ``exact_every=0``: hooks and step timing only. This is the cost of watching
  on CUDA, where the allocator counts memory for free, less one ``synchronize``, and of the
  CPU steps between exact ones;
* ``watch exact``: the exact CPU tracker on the step (a TorchDispatchMode sees every aten op).

With ``exact_every=N`` the mean step costs ((N − 1) × timing + exact) / N. Target: under 2% for
the watched steps that are timed only. Prints a table; ``--json PATH`` saves it.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/watch_overhead.py [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
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
    parser.add_argument("--steps", type=int, default=30, help="steps per mode")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    model = build(args.hidden, args.layers, args.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))

    def one_step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def timed(every: int | None) -> float:
        if every is None:
            t0 = time.perf_counter()
            one_step()
            return time.perf_counter() - t0
        t0 = time.perf_counter()
        with advisor.watch(model, opt, exact_every=every):
            one_step()
        return time.perf_counter() - t0

    modes: dict[str, int | None] = {"bare": None, "watch timing": 0, "watch exact": 1}
    for every in (None, 0, 1):  # warm-up: AdamW's state, allocator, caches, the advisor's imports
        timed(every)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.steps):
        for name, every in modes.items():
            times[name].append(timed(every))
    base = statistics.median(times["bare"])
    rows: list[list[str]] = []
    result: dict[str, Any] = {
        "model": f"llama hidden={args.hidden} layers={args.layers} vocab={args.vocab}",
        "batch": args.batch, "seq": args.seq, "steps_per_mode": args.steps,
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
