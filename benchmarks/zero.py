"""DeepSpeed ZeRO per-rank model states: the advisor's layout against DeepSpeed's own estimators.

For each preset (built on the meta device, in bf16 as DeepSpeed's bf16 mode runs it), plan (full
fine-tuning; LoRA r=8 on q_proj/v_proj, the default targets), stage (1, 2, 3) and world size N,
prints:

* **ours** — :func:`profilers.simulate.zero.zero_layout`'s device model states per rank (without
  padding, buckets and activations: what the estimators count);
* **DeepSpeed** — ``estimate_zero2_model_states_mem_needs`` (stages 1 and 2; DeepSpeed has no
  stage-1 estimator) and ``estimate_zero3_model_states_mem_needs``, no offload, called from the
  installed deepspeed with the model's total and largest-layer parameter counts;
* **ours − DS** and its explanation, checked exactly: for full fine-tuning −2·P/N (stage 2: the
  16-bit gradient partition the estimator counts, which a measured DeepSpeed 0.19.8 bf16 run
  does not allocate: ``benchmarks/zero_measured.py``), the
  unpartitioned 16-bit gradients 2·P·(1 − 1/N) (stage 1), the 16-bit gradient partition the
  stage-3 estimator leaves out, with the fp32 gradient of one sub-group, and in place of its
  4 × largest layer the persistent parameters (≤ 1e5 elements) whole, the gathered ones (the
  largest module's and the 5e7-element prefetch window) and the largest module's 16-bit
  gradients (stage 3); for LoRA the
  same less the frozen parameters' optimizer and gradient bytes (DeepSpeed issue #5304).

Writes ``benchmarks/results/zero.md``.

    PYTHONPATH=. .venv/bin/python benchmarks/zero.py [--models llama-3.1-8b,llama-3.1-70b] [--gpus 2,8,64]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from advisor.core.tables import table
from advisor.core.units import format_bytes
from advisor.engines.zero import plan_params
from advisor.models import resolve_model
from advisor.plans import parse_plan
from profilers.simulate.zero import (
    ZERO_DEFAULTS,
    ParamInfo,
    ZeroConfig,
    deepspeed_estimate_bytes,
    largest_layer_params,
    zero_layout,
)

OUT = Path(__file__).parent / "results" / "zero.md"


def _gathered(released: list[ParamInfo], window: int) -> int:
    """Elements gathered at once: at each module of the trace (definition order, then its
    reverse), its own and the following parameters until ``window`` elements are prefetched."""
    mods: dict[str, int] = {}
    for x in released:
        mods[x.module] = mods.get(x.module, 0) + x.numel
    sizes = list(mods.values())
    counts = [[x.numel for x in released if x.module == m] for m in mods]
    best = 0
    for order in (range(len(sizes)), range(len(sizes) - 1, -1, -1)):
        seq = list(order)
        for k, i in enumerate(seq):
            ahead = 0
            for j in seq[k + 1:]:
                for c in counts[j]:
                    if ahead >= window:
                        break
                    ahead += c
            best = max(best, sizes[i] + ahead)
    return best


def _explained(stage: int, params: list[ParamInfo], n: int) -> int:
    """ours − DeepSpeed, from the counts alone (module doc)."""
    p = sum(x.numel for x in params)
    t = sum(x.numel for x in params if x.trainable)
    by_module: dict[str, list[ParamInfo]] = {}
    for x in params:
        by_module.setdefault(x.module, []).append(x)
    big = max(by_module.values(), key=lambda xs: sum(x.numel for x in xs))
    big_frozen = sum(x.numel for x in big if not x.trainable)
    if stage == 2:  # no 16-bit gradient partition under bf16 (measured: zero_measured.py)
        return 16 * t // n - 18 * p // n
    if stage == 1:
        return 2 * t + 16 * t // n - 18 * p // n
    fp32_grad = min(ZERO_DEFAULTS["sub_group_size"], math.ceil(t / n)) * 4
    # DeepSpeed's rules (parameter_offload.py mark_persistent_parameters; the coordinator's
    # prefetch): parameters of ≤ 1e5 elements whole on every rank; of the others, the largest
    # module's and up to stage3_prefetch_bucket_size (5e7) elements ahead gathered at once
    persistent = sum(x.numel for x in params if x.numel <= ZERO_DEFAULTS["stage3_param_persistence_threshold"])
    released = [x for x in params if x.numel > ZERO_DEFAULTS["stage3_param_persistence_threshold"]]
    gathered = _gathered(released, ZERO_DEFAULTS["stage3_prefetch_bucket_size"])
    ours = 2 * p // n + 2 * t // n + 4 * t // n + 8 * t // n + fp32_grad + 2 * persistent + 2 * gathered + 2 * (
        sum(x.numel for x in big) - big_frozen
    )
    return ours - (4 * sum(x.numel for x in big) + 18 * p // n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="llama-3.1-8b,llama-3.1-70b")
    ap.add_argument("--gpus", default="2,8,64")
    args = ap.parse_args()
    counts = [int(x) for x in args.gpus.split(",")]
    rows: list[list[str]] = []
    started = time.perf_counter()
    for name in args.models.split(","):
        source = resolve_model(name)
        for label, text in (("full FT", "zero+bf16"), ("LoRA", "zero+lora+bf16")):
            params = plan_params(parse_plan(text), source, 1, 128)
            p = sum(x.numel for x in params)
            t = sum(x.numel for x in params if x.trainable)
            largest = largest_layer_params(params)
            for stage in (1, 2, 3):
                for n in counts:
                    ours = zero_layout(params, ZeroConfig(stage=stage, world_size=n)).model_state_bytes
                    ds = deepspeed_estimate_bytes(stage, p, largest, n)
                    diff = ours - ds
                    ok = diff == _explained(stage, params, n)
                    rows.append([
                        name, label, f"{p / 1e9:.2f}B / {t / 1e6:,.1f}M", str(stage), str(n),
                        format_bytes(ours, 2), format_bytes(ds, 2), format_bytes(diff, 2),
                        "exact" if ok else "MISMATCH",
                    ])  # fmt: skip
    headers = ["model", "plan", "params / trainable", "stage", "N", "ours", "DeepSpeed", "ours − DS", "as explained"]
    md = table(headers, rows, markdown=True)
    took = time.perf_counter() - started
    print(table(headers, rows))
    print(f"\n{len(rows)} rows in {took:.1f} s")
    OUT.write_text(
        "# ZeRO model states per rank: ours vs DeepSpeed's estimators\n\n"
        "Printed by `benchmarks/zero.py` (deepspeed 0.19.8 installed; bf16, AdamW, no offload; model "
        "states only: no padding, buckets or activations). Stage 1 and 2 compare with "
        "`estimate_zero2_model_states_mem_needs`, stage 3 with `estimate_zero3_model_states_mem_needs`. "
        "\"as explained\": the difference equals, byte for byte, the stage's structural term "
        "(stage 2: less the 16-bit gradient partition the estimator counts and a measured DeepSpeed run does not "
        "allocate under bf16, see zero-measured.md; stage 1: unpartitioned 16-bit gradients; stage 3: the 16-bit gradient partition and one "
        "sub-group's fp32 gradient in place of the estimator's 18/N, and in place of its 4 × largest layer the parameters of "
        "≤ 1e5 elements kept whole on every rank (`stage3_param_persistence_threshold`), the gathered ones (largest module "
        "plus the 5e7-element `stage3_prefetch_bucket_size` window, a limit, not a buffer) and the largest module's 16-bit "
        "gradients) less, for LoRA, the frozen "
        "parameters' optimizer and gradient bytes the estimators count (DeepSpeed issue #5304).\n\n"
        + md + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
