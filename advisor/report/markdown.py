"""A recommendation as Markdown for people: target and workload, the ranked table, the
breakdown of the top plans, the plans left out, fine-tune vs scratch, a snippet, the command."""

from __future__ import annotations

from typing import Any

from advisor.core.tables import table
from advisor.core.units import format_bytes, format_count, format_rate
from advisor.recommend import (
    CATALOG,
    FAILED,
    INPUT,
    NOT_EVALUATED,
    TARGET,
    Mode,
    PlanVerdict,
    RankBy,
    Recommendation,
    ScratchComparison,
)
from advisor.report.configs import config_plan_for, configs_markdown
from advisor.report.launch import launch_markdown, launch_snippets
from advisor.report.snippets import snippet
from advisor.report.text import (
    HEADERS,
    duration,
    headroom_cell,
    host_lines,
    money,
    ranked_rows,
    summary_lines,
)
from profilers.records import Provenance

__all__ = ["closest_at_smaller_batch", "to_markdown"]


def closest_at_smaller_batch(rec: Recommendation) -> PlanVerdict | None:
    """When nothing fits: the first-ranked plan that fits at a smaller micro-batch, else None."""
    return next((v for v in rec.ranked if v.max_micro_batch), None)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _sources_line(rec: Recommendation) -> str:
    best = rec.best or (rec.ranked[0] if rec.ranked else None)
    parts = []
    if best is not None and best.need is not None:
        by_prov: dict[str, list[str]] = {}
        for p in best.need.parts:
            by_prov.setdefault(p.source_text, []).append(p.name)
        detail = "; ".join(f"{', '.join(names)}: {prov}" for prov, names in by_prov.items())
        parts.append(f"need — {detail}")
    if best is not None and best.throughput_provenance is not None:
        how = (
            "measured on the target"
            if best.throughput_provenance is Provenance.MEASURED
            else ("estimated from the step's FLOPs and the GPU's peak rate")
        )
        parts.append(f"speed, time and cost — {how}")
    checked = [str(v.rank) for v in rec.ranked if v.max_micro_batch_checked]
    if checked:
        parts.append(
            f"max micro-batch — found by trials (b fits, b + 1 does not) for #{', #'.join(checked)}"
            + (
                "; “(est.)”: estimated from one trial, activations growing with the micro-batch"
                if len(checked) < len(rec.ranked)
                else ""
            )
        )
    sims = [v.trial.simulation for v in rec.ranked if v.trial is not None and v.trial.simulation]
    policies = sorted({s.autocast_policy for s in sims if s is not None and s.autocast_policy})
    if policies:
        parts.append(f"autocast — {', '.join(policies)} op lists")
    return "Sources: " + "; ".join(parts) + "." if parts else ""


def _breakdown_table(rec: Recommendation) -> str:
    top = [v for v in rec.ranked if v.need is not None][:3]
    base = next((v for v in rec.ranked if not v.cuts and v.need is not None), None)
    if base is not None and base not in top:
        top.append(base)
    if not top:
        return "_No plan has a memory figure._"
    names: list[str] = []
    for v in top:
        assert v.need is not None
        for p in v.need.parts:
            if p.name not in names:
                names.append(p.name)
    headers = ["part", *(f"#{v.rank} {v.plan}" for v in top), "source"]
    rows = []
    for name in names:
        sizes = [format_bytes(v.need.part(name)) if v.need else "–" for v in top]
        by_prov: dict[str, list[str]] = {}
        for v in top:
            for p in v.need.parts if v.need else ():
                if p.name == name:
                    by_prov.setdefault(p.source_text, []).append(f"#{v.rank}")
        if len(by_prov) == 1:
            prov = next(iter(by_prov))
        else:
            prov = "; ".join(f"{k} ({', '.join(ranks)})" for k, ranks in by_prov.items())
        rows.append([name, *sizes, prov])
    rows.append(["**total**", *(f"**{format_bytes(v.need_bytes)}**" for v in top), ""])
    rows.append(["budget (usable)", *(format_bytes(v.budget_bytes) for v in top), INPUT])
    rows.append(["headroom", *(headroom_cell(v) for v in top), ""])
    return table(headers, [[_md(c) for c in r] for r in rows], markdown=True)


def _comparison_md(c: ScratchComparison) -> str:
    rows = []
    for p in (c.finetune, c.scratch):
        rows.append(
            [
                p.label,
                format_count(round(p.tokens)),
                p.tokens_basis,
                p.plan or "–",
                format_rate(p.tokens_per_s, "tok/s"),
                duration(p.time_s),
                money(p.cost_usd),
                p.note,
            ]
        )
    text = table(
        ["path", "tokens", "basis", "plan", "speed", "time", "cost", "note"],
        [[_md(x) for x in r] for r in rows],
        markdown=True,
    )
    if c.ratio:
        text += f"\n\nFrom scratch costs about **{c.ratio:,.0f}×** the fine-tune on this GPU."
    return text


def _env_line(env: dict[str, Any]) -> str:
    bits = [f"torch {env.get('torch', '?')}", f"transformers {env.get('transformers', '?')}"]
    if env.get("peft"):
        bits.append(f"peft {env['peft']}")
    bits.append(f"device: {env.get('gpu') or 'CPU only (no CUDA)'}")
    bits.append(f"vram-advisor {env.get('vram_advisor', '?')}")
    return ", ".join(bits)


def to_markdown(rec: Recommendation, chart: str | None = None) -> str:
    """The report for people: target and workload, ranked table, breakdown, chart, snippet."""
    g, w = rec.gpu, rec.workload
    how = "measured on the target GPU" if rec.mode is Mode.MEASURE else "simulated (no target GPU here)"
    out = [f"# {rec.model} on {g.name}", ""]
    out += [f"- {line}" for line in summary_lines(rec)]
    out += [f"- Trials: {how}; ranked by {rec.rank_by.value} to train the workload.", ""]

    out += ["## Target and workload", ""]
    rows = [
        ["GPU", f"{g.name} (`{g.key}`, {g.architecture})", CATALOG],
        ["memory", format_bytes(g.memory_bytes), g.source("memory_bytes")],
        ["safety margin", f"{w.margin:.0%}", INPUT],
        ["usable budget", format_bytes(rec.budget_bytes), INPUT],
        ["bf16 support", "yes" if g.supports_bf16 else "no", CATALOG],
        [
            "peak rate (bf16 / fp16 / fp32)",
            f"{g.bf16_tflops or '–'} / {g.fp16_tflops} / {g.fp32_tflops} TFLOPS",
            CATALOG,
        ],
        ["price", f"{money(g.price_usd_per_hour)}/h", g.source("price_usd_per_hour")],
        ["micro-batch × sequence", f"{w.micro_batch} × {w.seq_len} tokens", INPUT],
        [
            "dataset × epochs",
            f"{w.dataset_tokens:,} tokens × {w.epochs:g} = {round(w.total_tokens):,} tokens",
            INPUT,
        ],
        ["model parameters", format_count(rec.model_parameters), rec.parameters_provenance],
    ]
    if w.lengths is not None:
        rows.insert(-1, ["sequence lengths", w.lengths.summary(), INPUT])
    out += [table(["", "value", "source"], [[_md(c) for c in r] for r in rows], markdown=True), ""]
    out += [f"Environment: {_env_line(rec.environment)}.", ""]

    out += ["## Ranked plans", ""]
    if rec.ranked:
        rows2 = [[_md(c) for c in r] for r in ranked_rows(rec, with_why=True)]
        out += [table([*HEADERS, "why"], rows2, markdown=True), ""]
        out += [
            "Fitting plans come first, by "
            + ("cost" if rec.rank_by is RankBy.COST else "time")
            + " to train the workload; ★ marks the memory–throughput Pareto front. "
            "Need is the predicted peak on the GPU, as a share of the usable budget.",
            "",
        ]
        src = _sources_line(rec)
        if src:
            out += [src, ""]
        hosts = host_lines(rec)
        if hosts:
            out += ["Host memory beside the device's:", ""] + [f"- {_md(line)}" for line in hosts] + [""]
    else:
        out += ["_No plan could run._", ""]
    if chart:
        out += [f"![memory by plan against the {format_bytes(rec.budget_bytes)} budget]({chart})", ""]

    out += ["## Memory of the top plans against the budget", "", _breakdown_table(rec), ""]

    if rec.excluded:
        out += ["## Plans left out", ""]
        groups = (
            (TARGET, f"Cannot run on the {g.name}"),
            (NOT_EVALUATED, "Not evaluated here (no number without the hardware)"),
            (FAILED, "Failed"),
            (None, "Other"),
        )
        for kind, title in groups:
            left = [v for v in rec.excluded if v.exclusion == kind]
            if left:
                out += [f"{title}:", ""]
                out += [f"- `{v.plan}` — {_md(v.excluded_reason or '')}" for v in left]
                out += [""]

    if rec.comparison is not None:
        out += ["## Fine-tune vs from scratch", "", _comparison_md(rec.comparison), ""]

    best = rec.best
    if best is not None:
        out += [f"## How to run the best plan: {best.plan}", ""]
        out += [snippet(rec, best), ""]
        if rec.model_task != "custom":  # a transformers model: the same plan in training tools' configs
            out += ["### The same plan as a training config", ""]
            out += [configs_markdown(config_plan_for(rec, best)), ""]
        launch = launch_snippets(best.cut_settings, best.gpus, best.nodes, micro_batch=rec.workload.micro_batch)
        if launch is not None:  # a distributed plan: its launch command and config
            out += [f"### Launch on {best.gpus} GPUs", "", launch_markdown(launch)]
    else:
        closest = closest_at_smaller_batch(rec)
        if closest is not None and closest.max_micro_batch:
            out += [f"## How to run the closest plan: {closest.plan}", ""]
            out += [
                f"Nothing fits at micro-batch {rec.workload.micro_batch}; `{closest.plan}` fits at micro-batch "
                f"{closest.max_micro_batch} (gradient accumulation keeps the effective batch).",
                "",
                snippet(rec, closest, closest.max_micro_batch),
                "",
            ]
    if rec.command:
        out += ["## Reproduce this report", "", "```bash", rec.command, "```", ""]
    if rec.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in rec.notes] + [""]
    return "\n".join(out).rstrip() + "\n"

