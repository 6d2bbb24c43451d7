"""The advisor's predictions against published GPU measurements, each with its own figure kind.

The cases live in ``benchmarks/published/cases.json`` as data: model (a ``config.json`` or a
built-in preset), plan in the advisor's cut language, sizes, GPU, the software stack, what the
published figure is (``nvml_used``, ``max_memory_allocated`` or ``max_memory_reserved``), its
unit, the source and its caveats. Each case is simulated for a CUDA target (or, for plans the
replay cannot run yet, estimated in closed form — the table says which) and turned into the
figure the source measured:

* ``max_memory_allocated`` — the simulated tensor peak;
* ``max_memory_reserved`` — the replayed caching allocator's reserved peak;
* ``nvml_used`` — the whole predicted device need (:func:`advisor.predict_gpu_need`: tensor
  peak, allocator slack, CUDA context, workspaces). A second column swaps in the context the
  source itself measured on its stack, where it gives one, to show what the context explains.

A source may state its stack only in part. What had to be inferred about it goes in the source's
``inferred_cuts`` (added to each case's plan), with the evidence in ``inferred_because``; the
table then also shows the prediction without them, so what the inference changes stays visible.

Prints a table per source and a summary (median and max absolute error per figure kind) and
writes them to ``benchmarks/results/published.md``::

    .venv/bin/python benchmarks/published.py [--cases hf-guide,litgpt/tinyllama-full]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = HERE / "published" / "cases.json"
RESULTS = HERE / "results" / "published.md"
UNITS = {"MiB": 2**20, "GB": 10**9}

log = logging.getLogger("benchmarks.published")


@dataclass(frozen=True)
class Row:
    case: str
    plan: str
    kind: str
    unit: str
    published: float
    predicted: float | None  # in ``unit``
    with_their_context: float | None  # nvml_used only, where the source measured its context
    engine: str  # simulated / estimated / failed: reason
    seconds: float
    without_inferred: float | None = None  # the plan without the source's inferred cuts, if any

    def error(self, value: float | None) -> float | None:
        return None if value is None else (value - self.published) / self.published


def _model(name: str, spec: dict[str, Any], workdir: Path) -> str:
    if "preset" in spec:
        return str(spec["preset"])
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(spec["config"]))
    return str(folder)


def _context_bytes(source: dict[str, Any]) -> int | None:
    """The bare CUDA context a source measured on its own stack (``cuda_context_mib``), if any."""
    mib = source.get("cuda_context_mib")
    return None if mib is None else int(mib) * 2**20


def case_plan(case: dict[str, Any], source: dict[str, Any]) -> str:
    """The case's plan with the cuts inferred for its source's stack (``inferred_cuts``)."""
    inferred = source.get("inferred_cuts", "")
    return f"{case['plan']}+{inferred}" if inferred else str(case["plan"])


def predict(case: dict[str, Any], model: str, source: dict[str, Any]) -> Row:
    """The case predicted with its source's inferred cuts, and (where there are any) without."""
    row = _predict(case, case_plan(case, source), model, source)
    if source.get("inferred_cuts") and row.predicted is not None:
        bare = _predict(case, case["plan"], model, source)
        row = dataclasses.replace(row, without_inferred=bare.predicted)
    return row


def _predict(case: dict[str, Any], plan_text: str, model: str, source: dict[str, Any]) -> Row:
    from advisor import api
    from advisor.catalog.gpus import get_gpu
    from advisor.engines.overheads import predict_gpu_need
    from advisor.models import resolve_model
    from advisor.plans import parse_plan
    from advisor.recommend.backends import estimated_trial
    from profilers.records import TrialStatus

    unit = source["unit"]
    scale = UNITS[unit]
    gpu = get_gpu(source["gpu"])
    plan = parse_plan(plan_text)
    started = time.perf_counter()
    result = api.simulate(model, plan, batch_size=case["batch"], seq_len=case["seq"], target="cuda")
    engine = "simulated"
    if result.status is TrialStatus.UNSUPPORTED:
        engine = "estimated"
        result = estimated_trial(resolve_model(model), plan, case["batch"], case["seq"], result.reason or "")
    seconds = time.perf_counter() - started
    if result.tensor_peak is None:
        return Row(case["id"], plan_text, case["figure_kind"], unit, case["value"], None, None,
                   f"failed: {result.reason}", seconds)  # fmt: skip
    kind = case["figure_kind"]
    ours: float | None
    theirs: float | None = None
    if kind == "max_memory_allocated":
        ours = result.tensor_peak.peak_bytes / scale
    elif kind == "max_memory_reserved":
        replay = result.simulation.cuda_allocator if result.simulation else None
        ours = replay.max_reserved_bytes / scale if replay else None
    else:
        loading = source.get("module_loading", "lazy")  # the stack's CUDA module loading
        ours = predict_gpu_need(result, gpu, module_loading=loading).total_bytes / scale
        context = _context_bytes(source)
        if context is not None:
            theirs = predict_gpu_need(result, gpu, context_bytes=context).total_bytes / scale
    return Row(case["id"], plan_text, kind, unit, case["value"], ours, theirs, engine, seconds)


def _context_line(source: dict[str, Any]) -> str:
    """Which CUDA context the predicted column takes, and where it comes from."""
    from advisor.engines.overheads import CONSTANTS

    loading = source.get("module_loading", "lazy")
    name = "cuda_context_bytes_eager_loading" if loading == "eager" else "cuda_context_bytes"
    mib = CONSTANTS[name].value / 2**20
    line = f"CUDA context in 'predicted': the catalog's, {loading} module loading ({mib:g} MiB: {name})"
    if source.get("cuda_context_mib") is not None:
        line += f"; 'their context': the {source['cuda_context_mib']} MiB the source measured on its stack"
    return line + "  "


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.1f}%"


def render(rows: list[Row], data: dict[str, Any]) -> str:
    from advisor.core.tables import table

    out: list[str] = []
    for key, source in data["sources"].items():
        mine = [r for r in rows if r.case.startswith(key + "/")]
        if not mine:
            continue
        out += [f"## {source['title']}", "", f"Source: {source['url']}  ",
                f"GPU: {source['gpu']}; stack: {source['stack']}  ", f"Setup: {source['setup']}  ",
                _context_line(source),
                "Caveats: " + "; ".join(source["caveats"]), ""]  # fmt: skip
        inferred = source.get("inferred_cuts")
        if inferred:
            out[-1:] = [f"Inferred for this stack: {inferred}, added to every plan. Why: {source['inferred_because']}  ",
                        "'without inferred': the error of the prediction from the plan as the source states it", ""]  # fmt: skip
        headers = ["case", "plan", "figure", f"published ({source['unit']})",
                   f"predicted ({source['unit']})", "error", "error, their context",
                   *(["error, without inferred"] if inferred else []), "engine", "s"]  # fmt: skip
        body = [
            (r.case.split("/", 1)[1], r.plan, r.kind, f"{r.published:g}",
             "–" if r.predicted is None else f"{r.predicted:.2f}", _pct(r.error(r.predicted)),
             _pct(r.error(r.with_their_context)),
             *([_pct(r.error(r.without_inferred))] if inferred else []), r.engine, f"{r.seconds:.1f}")
            for r in mine
        ]  # fmt: skip
        out += [table(headers, body, markdown=True), ""]
    summary = []
    for kind in [*sorted({r.kind for r in rows}), "all kinds"]:
        mine = [r for r in rows if kind in ("all kinds", r.kind)]
        errors = [abs(e) for r in mine if (e := r.error(r.predicted)) is not None]
        sim = [abs(e) for r in mine if r.engine == "simulated" and (e := r.error(r.predicted)) is not None]
        theirs = [abs(e) for r in mine if (e := r.error(r.with_their_context)) is not None]
        bare = [abs(e) for r in mine if (e := r.error(r.without_inferred if r.without_inferred is not None
                                                      else r.predicted)) is not None]  # fmt: skip
        if errors:
            summary.append((kind, str(len(errors)), f"{statistics.median(errors) * 100:.1f}%",
                            f"{max(errors) * 100:.1f}%",
                            f"{statistics.median(sim) * 100:.1f}% ({len(sim)})" if sim else "–",
                            f"{statistics.median(theirs) * 100:.1f}% / {max(theirs) * 100:.1f}%" if theirs else "–",
                            f"{statistics.median(bare) * 100:.1f}% / {max(bare) * 100:.1f}%"))  # fmt: skip
    out += ["## Summary (absolute error of the prediction)", "",
            table(["figure kind", "cases", "median", "max", "median, simulated only (cases)",
                   "median / max with the context the source measured",
                   "median / max without the inferred cuts"], summary, markdown=True),
            ""]  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="", help="comma-separated case ids or id prefixes (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    data = json.loads(CASES.read_text())
    wanted = [w for w in args.cases.split(",") if w]
    cases = [c for c in data["cases"] if not wanted or any(c["id"].startswith(w) for w in wanted)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases, 1):
            print(f"[{i}/{len(cases)}] {case['id']}", file=sys.stderr, flush=True)
            model = _model(case["model"], data["models"][case["model"]], Path(tmp))
            rows.append(predict(case, model, data["sources"][case["source"]]))
    import torch

    import advisor

    text = (f"# Predictions against published GPU measurements\n\n"
            f"vram-advisor {advisor.__version__}, torch {torch.__version__}, "
            f"{_dt.date.today().isoformat()}; cases: benchmarks/published/cases.json\n\n" + render(rows, data))  # fmt: skip
    print(text)
    if not args.no_write and not wanted:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
