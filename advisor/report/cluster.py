"""Rendering a cluster-shape recommendation: the fewest GPUs per plan, and every shape tried."""

from __future__ import annotations

from pathlib import Path

from advisor.core.io import atomic_write_text, write_json
from advisor.core.tables import Column, table, wrap_text
from advisor.core.units import format_budget, format_bytes, format_seconds
from advisor.recommend.cluster import ClusterRecommendation
from advisor.recommend.types import PlanVerdict
from advisor.report.launch import launch_markdown, launch_snippets

__all__ = ["cluster_markdown", "cluster_paths", "cluster_text", "save_cluster"]


def _money(x: float | None) -> str:
    return "—" if x is None else f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def _row(v: PlanVerdict) -> list[str]:
    if v.excluded_reason is not None:
        return [v.plan, str(v.gpus), str(v.nodes), "—", "—", "—", "—", "—", v.excluded_reason]
    fits = "yes" if v.fits else "no"
    comm = "—" if v.comm_bytes_per_step is None else f"{format_bytes(v.comm_bytes_per_step)} / {format_seconds(v.comm_time_s)}"
    return [
        v.plan,
        str(v.gpus),
        str(v.nodes),
        format_bytes(v.need_bytes),
        fits,
        comm,
        format_seconds(v.step_time_s),
        format_seconds(v.train_time_s),
        _money(v.cost_usd),
    ]


_HEADERS = [
    Column("plan", wrap=True, min_width=14),
    Column("GPUs"),
    Column("nodes", priority=3),
    Column("need per GPU"),
    Column("fits"),
    Column("comm per step (sent / time)", priority=2, wrap=True, min_width=12),
    Column("step time", priority=1),
    Column("train time", priority=2),
    Column("cost"),
]


def _summary(rec: ClusterRecommendation) -> list[tuple[str, str]]:
    out = []
    for plan, v in rec.smallest().items():
        if v is None:
            tried = [s.gpus for s in rec.shapes if s.plan == plan]
            most = max(tried) if tried else 0
            out.append((plan, f"does not fit on up to {most} GPUs"))
        else:
            out.append((plan, f"{v.gpus} GPU{'' if v.gpus == 1 else 's'} ({format_bytes(v.need_bytes)} per GPU), {_money(v.cost_usd)} for the run"))
    return out


def _head(rec: ClusterRecommendation) -> list[str]:
    w = rec.workload
    return [
        f"{rec.model} on {rec.gpu.name} ({format_budget(rec.gpu.memory_bytes)} each, "
        f"${rec.gpu.price_usd_per_hour:.2f}/GPU-hour), {rec.gpus_per_node} GPUs per node; "
        f"micro-batch {w.micro_batch} × {w.seq_len} tokens per GPU, {w.total_tokens:,.0f} tokens to train",
    ]


def cluster_text(rec: ClusterRecommendation, width: int | None = None) -> str:
    """The fewest GPUs that fit each plan, then every shape tried, for a terminal."""
    lines = [wrap_text(line, width) for line in _head(rec)]
    lines.append("")
    lines.append("Fewest GPUs that fit:")
    lines += [wrap_text(f"  {plan}: {text}", width) for plan, text in _summary(rec)]
    lines.append("")
    lines.append(table(_HEADERS, [_row(v) for v in rec.shapes], width=width))
    lines.append("")
    lines.append(
        wrap_text(
            "need: one rank's peak (simulated local step; ZeRO's layout estimated from DeepSpeed's code) "
            "plus the GPU's overheads; step time: compute estimated from FLOPs + communication estimated "
            "from the interconnect (not overlapped); cost: N GPUs × price × train time.",
            width,
        )
    )
    lines += [wrap_text(f"note: {n}", width) for n in rec.notes]
    return "\n".join(lines)


def cluster_markdown(rec: ClusterRecommendation) -> str:
    """The same as Markdown."""
    out = ["## Cluster shapes", "", *_head(rec), "", "**Fewest GPUs that fit**", ""]
    out += [f"- `{plan}`: {text}" for plan, text in _summary(rec)]
    out += ["", table(_HEADERS, [_row(v) for v in rec.shapes], markdown=True)]
    launches = [
        (plan, v, launch_snippets(v.cut_settings, v.gpus, v.nodes, micro_batch=rec.workload.micro_batch))
        for plan, v in rec.smallest().items()
        if v is not None and v.gpus > 1
    ]
    if launches:
        out += ["", "## Launch", ""]
        for plan, v, snippets in launches:
            if snippets is not None:
                out += [f"### `{plan}` on {v.gpus} GPUs", "", launch_markdown(snippets)]
    return "\n".join(out) + "\n"


def cluster_paths(prefix: str | Path) -> dict[str, Path]:
    """``reports/x`` (or ``reports/x.json``/``.md``) → the .json and .md paths."""
    base = Path(prefix)
    if base.suffix in (".json", ".md"):
        base = base.with_suffix("")
    return {ext: base.with_name(base.name + "." + ext) for ext in ("json", "md")}


def save_cluster(rec: ClusterRecommendation, prefix: str | Path) -> dict[str, Path]:
    """Write ``PREFIX.json`` and ``PREFIX.md`` (atomically)."""
    paths = cluster_paths(prefix)
    return {
        "json": write_json(paths["json"], rec.to_dict()),
        "md": atomic_write_text(paths["md"], cluster_markdown(rec)),
    }
