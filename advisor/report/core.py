"""Recommendation reports: JSON for programs, Markdown for people, an SVG chart beside it.

The JSON carries ``schema_version`` and ``kind: "vram-advisor/recommendation"``, the
environment the numbers came from, and every figure as ``{"value", "unit", "provenance"}``.
:func:`load_report` checks a file is one of ours and gives one clear :class:`ReportError`
otherwise (not JSON, someone else's JSON, damaged); a newer ``schema_version`` loads with a
warning, and unknown keys are tolerated, so newer files still open in older code.

Rendering only: nothing here runs a model or computes a figure.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from advisor.catalog.gpus import GpuSpec
from advisor.core.errors import AdvisorError, ReportError
from advisor.core.io import SCHEMA_VERSION, atomic_write_text, write_json
from advisor.core.tables import table
from advisor.core.units import format_bytes, format_count, format_rate, format_seconds
from advisor.recommend import (
    ACTIVATIONS,
    ALLOCATOR,
    ATTENTION,
    CONTEXT,
    FAILED,
    GRADIENTS,
    NOT_EVALUATED,
    OPTIMIZER,
    PARAMETERS,
    TARGET,
    WORKSPACES,
    Mode,
    NeedPart,
    PathCost,
    PlanVerdict,
    PredictedNeed,
    Recommendation,
    ScratchComparison,
)
from advisor.recommend.workload import RankBy, Workload
from profilers.records import Provenance, TrialResult

log = logging.getLogger(__name__)

__all__ = [
    "KIND",
    "ReportVersionWarning",
    "chart_svg",
    "from_json",
    "load_report",
    "recommendation_from_dict",
    "recommendation_to_dict",
    "save_report",
    "to_json",
    "to_markdown",
    "to_text",
]

KIND = "vram-advisor/recommendation"
_OUR_KINDS_PREFIX = "vram-advisor/"
_REMAKE_HINT = "re-create it with `vram-advisor recommend … --report PATH`"

# provenance of figures that are inputs rather than results
INPUT = "input"  # given by the user (workload, a custom budget)
CATALOG = "catalog"  # from the GPU catalog (see gpu.sources)


class ReportVersionWarning(UserWarning):
    """A report written by a newer vram-advisor: loaded as far as this version understands."""


# -- to JSON ---------------------------------------------------------------------------------


def _fig(value: Any, unit: str, provenance: Provenance | str | None, **more: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    prov = provenance.value if isinstance(provenance, Provenance) else provenance
    return {"value": value, "unit": unit, "provenance": prov, **more}


def _need_to_dict(need: PredictedNeed | None) -> dict[str, Any] | None:
    if need is None:
        return None
    return {
        "value": need.total_bytes,
        "unit": "bytes",
        "provenance": need.provenance.value,
        "parts": [
            {"name": p.name, "value": p.size_bytes, "unit": "bytes", "provenance": p.provenance.value}
            for p in need.parts
        ],
    }


def _verdict_to_dict(v: PlanVerdict) -> dict[str, Any]:
    thr = v.throughput_provenance
    return {
        "rank": v.rank,
        "plan": v.plan,
        "cuts": list(v.cuts),
        "cut_settings": v.cut_settings,
        "fits": v.fits,
        "pareto": v.pareto,
        "why": v.why,
        "excluded_reason": v.excluded_reason,
        "exclusion": v.exclusion,
        "memory": _fig(v.memory_bytes, "bytes", CATALOG),
        "budget": _fig(v.budget_bytes, "bytes", INPUT, note="memory less the safety margin"),
        "need": _need_to_dict(v.need),
        "headroom": _fig(v.headroom_bytes, "bytes", v.need.provenance if v.need else None),
        "max_micro_batch": _fig(
            v.max_micro_batch, "samples", v.max_micro_batch_provenance, checked=v.max_micro_batch_checked
        ),
        "step_time": _fig(v.step_time_s, "s", thr),
        "tokens_per_s": _fig(v.tokens_per_s, "tokens/s", thr),
        "train_time": _fig(v.train_time_s, "s", thr),
        "cost": _fig(v.cost_usd, "USD", Provenance.ESTIMATED if v.cost_usd is not None else None),
        "trial": v.trial.to_dict() if v.trial is not None else None,
    }


def _path_to_dict(p: PathCost) -> dict[str, Any]:
    est = Provenance.ESTIMATED
    return {
        "label": p.label,
        "tokens": _fig(p.tokens, "tokens", INPUT if p.label == "fine-tune" else est),
        "tokens_basis": p.tokens_basis,
        "plan": p.plan,
        "fits": p.fits,
        "tokens_per_s": _fig(p.tokens_per_s, "tokens/s", p.throughput_provenance),
        "time": _fig(p.time_s, "s", p.throughput_provenance),
        "cost": _fig(p.cost_usd, "USD", est if p.cost_usd is not None else None),
        "note": p.note,
    }


def recommendation_to_dict(rec: Recommendation) -> dict[str, Any]:
    """The report as a JSON-safe dict (see the module docstring for the format)."""
    w = rec.workload
    cmp_ = rec.comparison
    best = rec.best
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "environment": rec.environment,
        "command": rec.command,
        "mode": rec.mode.value,
        "rank_by": rec.rank_by.value,
        "model": {
            "name": rec.model,
            "task": rec.model_task,
            "parameters": _fig(rec.model_parameters, "params", _params_provenance(rec)),
        },
        "gpu": rec.gpu.to_dict(),
        "workload": {
            "micro_batch": _fig(w.micro_batch, "samples", INPUT),
            "seq_len": _fig(w.seq_len, "tokens", INPUT),
            "dataset_tokens": _fig(w.dataset_tokens, "tokens", INPUT),
            "epochs": _fig(w.epochs, "epochs", INPUT),
            "margin": _fig(w.margin, "fraction", INPUT),
            "total_tokens": _fig(w.total_tokens, "tokens", INPUT),
        },
        "budget": _fig(rec.budget_bytes, "bytes", INPUT, memory_bytes=rec.gpu.memory_bytes),
        "best": best.plan if best is not None else None,
        "ranked": [_verdict_to_dict(v) for v in rec.ranked],
        "excluded": [_verdict_to_dict(v) for v in rec.excluded],
        "comparison": None
        if cmp_ is None
        else {
            "parameters": _fig(cmp_.parameters, "params", _params_provenance(rec)),
            "finetune": _path_to_dict(cmp_.finetune),
            "scratch": _path_to_dict(cmp_.scratch),
            "scratch_over_finetune": cmp_.ratio,
        },
        "notes": list(rec.notes),
    }


def _params_provenance(rec: Recommendation) -> str:
    for v in rec.ranked:
        if v.trial is not None and v.trial.params is not None:
            return v.trial.params.provenance.value
    return Provenance.SIMULATED.value if rec.mode is Mode.SIMULATE else Provenance.MEASURED.value


def to_json(rec: Recommendation) -> str:
    """The report as JSON text, keys sorted, with a trailing newline."""
    return json.dumps(recommendation_to_dict(rec), indent=2, sort_keys=True) + "\n"


# -- from JSON -------------------------------------------------------------------------------

_TOP_KEYS = {
    "schema_version", "kind", "environment", "command", "mode", "rank_by", "model", "gpu",
    "workload", "budget", "best", "ranked", "excluded", "comparison", "notes",
}  # fmt: skip


def _value(d: dict[str, Any] | None) -> Any:
    return None if d is None else d["value"]


def _prov(d: dict[str, Any] | None) -> Provenance | None:
    if d is None or d.get("provenance") in (None, INPUT, CATALOG):
        return None
    return Provenance(d["provenance"])


def _need_from_dict(d: dict[str, Any] | None) -> PredictedNeed | None:
    if d is None:
        return None
    return PredictedNeed(
        tuple(NeedPart(str(p["name"]), int(p["value"]), Provenance(p["provenance"])) for p in d["parts"])
    )


def _verdict_from_dict(d: dict[str, Any]) -> PlanVerdict:
    trial = d.get("trial")
    mmb = d.get("max_micro_batch")
    return PlanVerdict(
        plan=str(d["plan"]),
        cuts=tuple(d["cuts"]),
        cut_settings=dict(d.get("cut_settings") or {}),
        memory_bytes=int(_value(d["memory"])),
        budget_bytes=int(_value(d["budget"])),
        trial=TrialResult.from_dict(trial) if trial is not None else None,
        need=_need_from_dict(d.get("need")),
        fits=bool(d["fits"]),
        max_micro_batch=_value(mmb),
        max_micro_batch_provenance=_prov(mmb),
        max_micro_batch_checked=bool(mmb.get("checked", False)) if mmb else False,
        step_time_s=_value(d.get("step_time")),
        tokens_per_s=_value(d.get("tokens_per_s")),
        throughput_provenance=_prov(d.get("tokens_per_s")),
        train_time_s=_value(d.get("train_time")),
        cost_usd=_value(d.get("cost")),
        pareto=bool(d.get("pareto", False)),
        why=str(d.get("why", "")),
        rank=int(d.get("rank", 0)),
        excluded_reason=d.get("excluded_reason"),
        exclusion=d.get("exclusion"),
    )


def _path_from_dict(d: dict[str, Any]) -> PathCost:
    return PathCost(
        label=str(d["label"]),
        tokens=_value(d["tokens"]),
        tokens_basis=str(d.get("tokens_basis", "")),
        plan=d.get("plan"),
        fits=bool(d.get("fits", False)),
        tokens_per_s=_value(d.get("tokens_per_s")),
        throughput_provenance=_prov(d.get("tokens_per_s")),
        time_s=_value(d.get("time")),
        cost_usd=_value(d.get("cost")),
        note=str(d.get("note", "")),
    )


def recommendation_from_dict(data: dict[str, Any]) -> Recommendation:
    """Inverse of :func:`recommendation_to_dict` (raises ``KeyError``/``TypeError``/``ValueError``
    on a damaged dict; :func:`from_json` turns those into a :class:`ReportError`)."""
    w = data["workload"]
    cmp_ = data.get("comparison")
    model = data["model"]
    return Recommendation(
        model=str(model["name"]),
        gpu=GpuSpec.from_dict(data["gpu"]),
        workload=Workload(
            micro_batch=_value(w["micro_batch"]),
            seq_len=_value(w["seq_len"]),
            dataset_tokens=_value(w["dataset_tokens"]),
            epochs=_value(w["epochs"]),
            margin=_value(w["margin"]),
        ),
        rank_by=RankBy(data.get("rank_by", RankBy.TIME.value)),
        mode=Mode(data.get("mode", Mode.SIMULATE.value)),
        ranked=tuple(_verdict_from_dict(v) for v in data["ranked"]),
        excluded=tuple(_verdict_from_dict(v) for v in data.get("excluded", [])),
        comparison=None
        if cmp_ is None
        else ScratchComparison(
            parameters=int(_value(cmp_["parameters"])),
            finetune=_path_from_dict(cmp_["finetune"]),
            scratch=_path_from_dict(cmp_["scratch"]),
        ),
        model_parameters=_value(model.get("parameters")),
        model_task=str(model.get("task", "causal-lm")),
        environment=dict(data.get("environment") or {}),
        command=str(data.get("command", "")),
        notes=tuple(data.get("notes", [])),
    )


def from_json(text: str, source: str = "<string>") -> Recommendation:
    """Parse and check a report; a clear :class:`ReportError` for anything that is not ours."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            "the file is damaged or not a report",
            _REMAKE_HINT,
        ) from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind != KIND:
        if isinstance(kind, str) and kind.startswith(_OUR_KINDS_PREFIX):
            raise ReportError(
                f"{source} is a vram-advisor {kind.removeprefix(_OUR_KINDS_PREFIX)} file, not a "
                "recommendation report",
                "give a .json written by `vram-advisor recommend --report PATH`",
            )
        what = f"its kind is {kind!r}" if kind is not None else "it has no 'kind' field"
        raise ReportError(
            f"{source} is not a vram-advisor report ({what}; expected {KIND!r})",
            "give a .json written by `vram-advisor recommend --report PATH`",
        )
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ReportError(f"{source} is damaged: schema_version is {version!r}", _REMAKE_HINT)
    if version > SCHEMA_VERSION:
        warnings.warn(
            f"{source} has schema_version {version}, newer than this vram-advisor's "
            f"{SCHEMA_VERSION}: loading what this version understands (upgrade vram-advisor "
            "to see everything)",
            ReportVersionWarning,
            stacklevel=2,
        )
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown report keys: %s", source, ", ".join(unknown))
    try:
        return recommendation_from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, AdvisorError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ReportError(f"{source} is damaged: {detail}", _REMAKE_HINT) from None


def load_report(path: str | Path) -> Recommendation:
    """Load a report JSON written by :func:`save_report` or ``vram-advisor recommend --report``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(
            f"no report at {path}", "check the path; reports are written as PREFIX.json"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path} as text ({exc})", _REMAKE_HINT) from None
    return from_json(text, str(path))


# -- files -----------------------------------------------------------------------------------


def report_paths(prefix: str | Path) -> dict[str, Path]:
    """``reports/x`` (or ``reports/x.json``/``.md``) → the .json, .md and .svg paths."""
    prefix = Path(prefix)
    if prefix.suffix in (".json", ".md", ".svg"):
        prefix = prefix.with_suffix("")
    return {ext: prefix.with_name(prefix.name + "." + ext) for ext in ("json", "md", "svg")}


def save_report(rec: Recommendation, prefix: str | Path) -> dict[str, Path]:
    """Write PREFIX.json, PREFIX.svg and PREFIX.md (linking the chart), each atomically."""
    paths = report_paths(prefix)
    write_json(paths["json"], recommendation_to_dict(rec))
    atomic_write_text(paths["svg"], chart_svg(rec))
    atomic_write_text(paths["md"], to_markdown(rec, chart=paths["svg"].name))
    return paths


# -- shared formatting ----------------------------------------------------------------------


def _money(x: float | None) -> str:
    if x is None:
        return "–"
    if 0 < x < 0.01:
        return "<$0.01"
    if x >= 1e6:
        return f"${x / 1e6:,.2f}M"
    if x >= 100:
        return f"${x:,.0f}"
    return f"${x:,.2f}"


def _duration(s: float | None) -> str:
    if s is not None and s >= 365 * 86400:
        return f"{s / (365.25 * 86400):,.1f} years"
    return format_seconds(s)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _estimated(v: PlanVerdict) -> bool:
    """Whether the plan's tensor figures are the closed-form estimate (not replayable)."""
    return v.trial is not None and "estimate" in v.trial.extra


def _need_cell(v: PlanVerdict) -> str:
    if v.need is None:
        return "out of memory" if v.trial is not None and v.trial.status.value == "oom" else "–"
    mark = " *" if _estimated(v) else ""
    return f"{format_bytes(v.need.total_bytes)} ({_share(v.need.total_bytes, v.budget_bytes)}){mark}"


def _headroom_cell(v: PlanVerdict) -> str:
    h = v.headroom_bytes
    if h is None:
        return "–"
    return format_bytes(h) if h >= 0 else f"−{format_bytes(-h)} over"


def _batch_cell(v: PlanVerdict) -> str:
    if v.max_micro_batch is None:
        return "–"
    if v.max_micro_batch == 0:
        return "none"
    return f"{v.max_micro_batch}" + ("" if v.max_micro_batch_checked else " (est.)")


def _fits_cell(v: PlanVerdict) -> str:
    return "yes" if v.fits else "no"


def _rows(rec: Recommendation, with_why: bool) -> list[list[str]]:
    rows = []
    for v in rec.ranked:
        row = [
            str(v.rank),
            v.plan,
            _fits_cell(v),
            _need_cell(v),
            _headroom_cell(v),
            _batch_cell(v),
            format_rate(v.tokens_per_s, "tok/s"),
            _duration(v.train_time_s),
            _money(v.cost_usd),
            "★" if v.pareto else "",
        ]
        if with_why:
            row.append(v.why)
        rows.append(row)
    return rows


_HEADERS = [
    "#",
    "plan",
    "fits",
    "need (of budget)",
    "headroom",
    "max micro-batch",
    "speed",
    "time",
    "cost",
    "front",
]


def _summary(rec: Recommendation) -> list[str]:
    g, w = rec.gpu, rec.workload
    best = rec.best
    lines = [
        f"Target: {g.name}, {format_bytes(g.memory_bytes)}; usable {format_bytes(rec.budget_bytes)} "
        f"with a {w.margin:.0%} margin; {_money(g.price_usd_per_hour)}/h.",
        f"Workload: micro-batch {w.micro_batch} × {w.seq_len} tokens; {format_count(w.dataset_tokens)} "
        f"tokens × {w.epochs:g} epoch{'s' if w.epochs != 1 else ''} = {format_count(round(w.total_tokens))} tokens.",
    ]
    if best is None:
        closest = rec.ranked[0] if rec.ranked else None
        lines.append(
            "Nothing fits."
            + (
                f" Closest: {closest.plan}, needs {format_bytes(closest.need_bytes)}."
                if closest is not None and closest.need_bytes is not None
                else ""
            )
        )
    else:
        assert best.need is not None
        lines.append(
            f"Best: {best.plan} — needs {format_bytes(best.need.total_bytes)} of "
            f"{format_bytes(best.budget_bytes)} ({best.need.provenance.value}), "
            f"{format_rate(best.tokens_per_s, 'tok/s')}"
            + (f" ({best.throughput_provenance.value})" if best.throughput_provenance else "")
            + f", {_duration(best.train_time_s)} and {_money(best.cost_usd)} for the workload."
        )
    return lines


def to_text(rec: Recommendation) -> str:
    """Summary lines and the ranked table, for a terminal."""
    out = [f"{rec.model} on {rec.gpu.name} ({rec.mode.value})", *_summary(rec), ""]
    out.append(table(_HEADERS, _rows(rec, with_why=False)))
    if rec.excluded:
        out += ["", "excluded:"] + [f"  {v.plan}: {v.excluded_reason}" for v in rec.excluded]
    return "\n".join(out)


# -- Markdown --------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _sources_line(rec: Recommendation) -> str:
    best = rec.best or (rec.ranked[0] if rec.ranked else None)
    parts = []
    if best is not None and best.need is not None:
        by_prov: dict[str, list[str]] = {}
        for p in best.need.parts:
            by_prov.setdefault(p.provenance.value, []).append(p.name)
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
                    by_prov.setdefault(p.provenance.value, []).append(f"#{v.rank}")
        if len(by_prov) == 1:
            prov = next(iter(by_prov))
        else:
            prov = "; ".join(f"{k} ({', '.join(ranks)})" for k, ranks in by_prov.items())
        rows.append([name, *sizes, prov])
    rows.append(["**total**", *(f"**{format_bytes(v.need_bytes)}**" for v in top), ""])
    rows.append(["budget (usable)", *(format_bytes(v.budget_bytes) for v in top), INPUT])
    rows.append(["headroom", *(_headroom_cell(v) for v in top), ""])
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
                _duration(p.time_s),
                _money(p.cost_usd),
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
    from advisor.report.snippets import snippet

    g, w = rec.gpu, rec.workload
    how = "measured on the target GPU" if rec.mode is Mode.MEASURE else "simulated (no target GPU here)"
    out = [f"# {rec.model} on {g.name}", ""]
    out += [f"- {line}" for line in _summary(rec)]
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
        ["price", f"{_money(g.price_usd_per_hour)}/h", g.source("price_usd_per_hour")],
        ["micro-batch × sequence", f"{w.micro_batch} × {w.seq_len} tokens", INPUT],
        [
            "dataset × epochs",
            f"{w.dataset_tokens:,} tokens × {w.epochs:g} = {round(w.total_tokens):,} tokens",
            INPUT,
        ],
        ["model parameters", format_count(rec.model_parameters), _params_provenance(rec)],
    ]
    out += [table(["", "value", "source"], [[_md(c) for c in r] for r in rows], markdown=True), ""]
    out += [f"Environment: {_env_line(rec.environment)}.", ""]

    out += ["## Ranked plans", ""]
    if rec.ranked:
        rows2 = [[_md(c) for c in r] for r in _rows(rec, with_why=True)]
        out += [table([*_HEADERS, "why"], rows2, markdown=True), ""]
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
    if rec.command:
        out += ["## Reproduce this report", "", "```bash", rec.command, "```", ""]
    if rec.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in rec.notes] + [""]
    return "\n".join(out).rstrip() + "\n"


# -- the chart -------------------------------------------------------------------------------

_COLOURS = {
    PARAMETERS: "#4c72b0",
    GRADIENTS: "#dd8452",
    OPTIMIZER: "#55a868",
    ACTIVATIONS: "#c44e52",
    ALLOCATOR: "#8172b3",
    CONTEXT: "#937860",
    WORKSPACES: "#da8bc3",
    ATTENTION: "#ccb974",
}
_OTHER = "#8c8c8c"
_MAX_ROWS = 40


def _nice_step(span: float, target_ticks: int = 8) -> float:
    raw = span / target_ticks
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _n(x: float) -> str:
    """A coordinate with at most one decimal, no trailing zeros (deterministic text)."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def chart_svg(rec: Recommendation) -> str:
    """Memory by plan (stacked by part) with the usable budget and the GPU's memory as lines."""
    rows = [v for v in rec.ranked][:_MAX_ROWS]
    more = len(rec.ranked) - len(rows)
    memory, budget = rec.gpu.memory_bytes, rec.budget_bytes
    needs = [v.need_bytes for v in rows if v.need_bytes is not None]
    clip = memory * 2.5
    scale_max = max(memory * 1.1, min(max(needs, default=0), clip) * 1.02)
    gib = 2**30
    unit, unit_name = (gib, "GiB") if scale_max >= gib else (2**20, "MiB")
    step = _nice_step(scale_max / unit) * unit

    left, bar_w, right = 300, 520, 110
    row_h, bar_h = 24, 16
    width = left + bar_w + right
    legend_names: list[str] = []
    for v in rows:
        for p in v.need.parts if v.need else ():
            if p.name not in legend_names:
                legend_names.append(p.name)
    legend: list[tuple[float, int, str]] = []  # (x, line, name), wrapped to the chart's width
    lx, line = float(left), 0
    for name in legend_names:
        item_w = 20 + 6.2 * len(name)
        if lx + item_w > width - 8 and lx > left:
            lx, line = float(left), line + 1
        legend.append((lx, line, name))
        lx += item_w
    top = 64 + 16 * (max((ln for _, ln, _ in legend), default=0))
    height = top + row_h * max(1, len(rows)) + 56 + (16 if more else 0)

    def x(b: float) -> float:
        return left + bar_w * min(b, scale_max) / scale_max

    title = f"{rec.model} on {rec.gpu.name}: predicted memory per plan"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for lx, line, name in legend:
        colour = _COLOURS.get(name, _OTHER)
        ly = 28 + 16 * line
        out.append(f'<rect x="{_n(lx)}" y="{ly}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{_n(lx + 14)}" y="{ly + 9}" font-size="11">{escape(name)}</text>')
    # grid and axis
    axis_y = top + row_h * max(1, len(rows)) + 4
    tick = 0.0
    while tick <= scale_max + 1e-9:
        tx = x(tick)
        out.append(f'<line x1="{_n(tx)}" y1="{top - 6}" x2="{_n(tx)}" y2="{axis_y}" stroke="#e6e6e6"/>')
        out.append(
            f'<text x="{_n(tx)}" y="{axis_y + 14}" text-anchor="middle" font-size="10">{tick / unit:g}</text>'
        )
        tick += step
    out.append(
        f'<text x="{left + bar_w / 2:.0f}" y="{axis_y + 30}" text-anchor="middle" font-size="11">'
        f"predicted need ({unit_name})</text>"
    )
    for i, v in enumerate(rows):
        y = top + i * row_h
        mark = "✓" if v.fits else "✗"
        label = f"#{v.rank} {v.plan}"
        if len(label) > 44:
            label = label[:43] + "…"
        colour = "#1a7f37" if v.fits else "#b42318"
        out.append(
            f'<text x="{left - 8}" y="{y + bar_h - 3}" text-anchor="end">'
            f'<tspan fill="{colour}">{mark}</tspan> {escape(label)}</text>'
        )
        if v.need is None:
            text = (
                "out of memory (measured)" if v.trial is not None and v.trial.status.value == "oom" else "–"
            )
            out.append(f'<text x="{left + 4}" y="{y + bar_h - 3}" fill="#b42318">{escape(text)}</text>')
            continue
        acc = 0
        for p in v.need.parts:
            if p.size_bytes <= 0 or acc >= scale_max:
                acc += max(p.size_bytes, 0)
                continue
            x0, x1 = x(acc), x(acc + p.size_bytes)
            acc += p.size_bytes
            if x1 - x0 < 0.05:
                continue
            out.append(
                f'<rect x="{_n(x0)}" y="{y}" width="{_n(x1 - x0)}" height="{bar_h}" '
                f'fill="{_COLOURS.get(p.name, _OTHER)}"><title>{escape(p.name)}: '
                f"{escape(format_bytes(p.size_bytes))} ({p.provenance.value})</title></rect>"
            )
        total = v.need.total_bytes
        clipped = total > scale_max
        end = x(total)
        text = format_bytes(total) + (" ▶" if clipped else "")
        out.append(f'<text x="{_n(end + 4)}" y="{y + bar_h - 3}" font-size="11">{escape(text)}</text>')
    # the budget lines, drawn over the bars
    for value, style, text in (
        (budget, 'stroke="#b42318" stroke-dasharray="6 3"', f"usable {format_bytes(budget)}"),
        (memory, 'stroke="#222222"', f"GPU {format_bytes(memory)}"),
    ):
        bx = x(value)
        out.append(
            f'<line x1="{_n(bx)}" y1="{top - 8}" x2="{_n(bx)}" y2="{axis_y}" {style} stroke-width="1.5"/>'
        )
        anchor = "end" if value == budget else "start"
        dx = -3 if value == budget else 3
        out.append(
            f'<text x="{_n(bx + dx)}" y="{top - 10}" text-anchor="{anchor}" font-size="10">{escape(text)}</text>'
        )
    if more:
        out.append(
            f'<text x="{left}" y="{height - 8}" font-size="11">… and {more} more plans (see the table)</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ranked_names(verdicts: Sequence[PlanVerdict]) -> list[str]:
    """Plan names in order (a small helper for tests and front ends)."""
    return [v.plan for v in verdicts]
