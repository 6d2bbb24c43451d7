"""The plans :func:`advisor.advise` evaluates by default: the baseline, every single cut that
is a candidate (a cut's ``candidate`` trait), and curated combinations on top."""

from __future__ import annotations

from advisor.plans import Plan
from advisor.plans.cuts import default_cuts, parse_plan, singles

__all__ = ["BATCHING_PARTNERS", "CANDIDATE_COMBOS", "batching_plans", "candidate_plans"]

# Curated combinations tried on top of every single cut: the families that make big models fit.
CANDIDATE_COMBOS: tuple[str, ...] = (
    "grad-ckpt+bf16",
    "grad-ckpt+bf16-weights",
    "grad-ckpt+bf16+adafactor",
    "grad-ckpt+bf16-weights+adafactor",
    "grad-ckpt+bf16-weights+sgd",
    "grad-ckpt+bf16+adamw8bit",
    "grad-ckpt+bf16-weights+adamw8bit",
    "lora+bf16",
    "lora+grad-ckpt",
    "lora+grad-ckpt+bf16",
    "lora+bf16-weights",
    "lora+grad-ckpt+bf16-weights",
    "qlora+grad-ckpt",
    "qlora+grad-ckpt+bf16",
    # QLoRA as run when memory is tight: loaded in bf16, no fp32 upcast of embeddings/head/norms
    "qlora(compute_dtype=bfloat16,upcast=false)+grad-ckpt",
    "lora+grad-ckpt+fp16",
    "grad-ckpt+fp16",
)


def candidate_plans() -> list[Plan]:
    """The plans :func:`advisor.advise` evaluates by default: baseline, singles, known combos.

    Cuts whose ``candidate`` trait is off are left out: scratch (same memory per step as
    fine-tuning; its total cost is the fine-tune vs from-scratch comparison), accum (its memory
    is the smaller micro-batch's, which the largest-micro-batch figure already answers), compile.
    """
    cuts = [c for c in default_cuts() if c.candidate]
    plans = list(singles(cuts).plans)
    seen = {p.name for p in plans}
    for text in CANDIDATE_COMBOS:
        plan = parse_plan(text)
        if plan.name not in seen and plan.conflict() is None:
            plans.append(plan)
            seen.add(plan.name)
    return plans


# the plans each batching policy is also tried with (alone, and on top of these), when the
# workload has real sequence lengths; any other combination can be asked for with ``plans``
BATCHING_PARTNERS: tuple[str, ...] = ("lora",)


def batching_plans(max_len: int, micro_batch: int, max_positions: int | None = None) -> list[Plan]:
    """The batching policies for a workload with real lengths: group by length, and packing and
    token-budget batches of as many tokens as the padded micro-batch holds
    (``micro_batch`` × the longest sample, at most the model's positions), alone and with each
    of :data:`BATCHING_PARTNERS`. Plans without a batching cut pad to the longest sample."""
    tokens = micro_batch * max_len
    if max_positions is not None:
        tokens = max(max_len, min(tokens, max_positions))
    policies = ["group-by-length", f"pack(max_tokens={tokens})", f"token-budget(tokens={tokens})"]
    plans = []
    for policy in policies:
        plans.append(parse_plan(policy))
        plans += [parse_plan(f"{partner}+{policy}") for partner in BATCHING_PARTNERS]
    return plans
