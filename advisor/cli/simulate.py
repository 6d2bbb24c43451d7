"""``vram-advisor simulate``: replay training on fake tensors, for one plan or many, and show
what each needs on a target GPU."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisor.catalog.gpus import GpuSpec
from advisor.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    ProgressLine,
    add_margin_arg,
    add_model_args,
    add_moe_arg,
    add_quiet_arg,
    add_timeline_args,
    api,
    check_outputs,
    note_gpu,
    positive_int,
    report_text,
    trial_view,
)
from advisor.cli.lengths import add_lengths_args, lengths_from_args
from advisor.core.budget import DEFAULT_MARGIN
from advisor.core.errors import InvalidInputError
from advisor.core.io import SCHEMA_VERSION, environment, write_json
from advisor.core.tables import Column, table, terminal_width, wrap_text
from advisor.core.units import format_bytes, format_rate, format_seconds
from profilers.records import Provenance, TrialResult

__all__ = ["SWEEP_COLUMNS", "add_parser", "growth_rows", "need_rows", "run", "sweep_rows"]

Row = tuple[str, str, str]
_EST = Provenance.ESTIMATED.value


def need_rows(result: TrialResult, gpu: GpuSpec | None, margin: float = DEFAULT_MARGIN) -> list[Row]:
    """(figure, value, source) rows: FLOPs, the GPU need by part, the fit (against the memory
    less ``margin``, the recommender's rule) and the speed."""
    figures = api.gpu_figures(result, gpu, margin=margin)
    rows: list[Row] = []
    cost = figures.cost
    if cost is not None:
        rows.append(("FLOPs per step", f"{cost.total_flops:.3e}", cost.provenance.value))
    need = figures.need
    if need is None:
        return rows
    where = gpu.name if gpu is not None else "a CUDA GPU"
    rows += [
        (f"GPU need on {where}", format_bytes(need.total_bytes, 2), _EST),
        ("  tensor peak", format_bytes(need.tensor_peak_bytes, 2), need.tensor_peak_source.value),
        ("  caching allocator", format_bytes(need.allocator_overhead_bytes, 2), need.allocator_source.value),
        ("  CUDA context", format_bytes(need.cuda_context_bytes, 2), _EST),
        ("  cuBLAS workspaces", format_bytes(need.workspace_bytes, 2), _EST),
    ]
    if need.attention_workspace_bytes:
        rows.append(("  attention backward scratch", format_bytes(need.attention_workspace_bytes, 2), _EST))
    if gpu is not None:
        rows.append(("fit", report_text.fit_text(need.total_bytes, gpu.memory_bytes, margin, 2), _EST))
        timing = figures.timing
        if timing is not None:
            rows += [
                ("step time", f"{format_seconds(timing.step_time_s)} ({timing.bound}-bound)", _EST),
                ("throughput", format_rate(timing.tokens_per_s, "tok/s"), _EST),
            ]
        if cost is not None and cost.flops_by_dtype.get("bfloat16") and not gpu.supports_bf16:
            rows.append(("note", f"{gpu.name} has no bf16 support: use fp16 there", ""))
    return rows


def growth_rows(limits: api.GrowthLimits, gpu: GpuSpec | None, margin: float = DEFAULT_MARGIN) -> list[Row]:
    """(figure, value, source) rows: the growth fit's held-out error and the largest sizes."""
    fit = limits.fit
    held = fit.holdout
    rows: list[Row] = []
    if held is not None and fit.holdout_error is not None:
        rows.append(
            (
                "growth fit, held-out size",
                f"batch {held.batch_size} × seq {held.seq_len}: {fit.holdout_error * 100:+.2f}% error",
                _EST,
            )
        )
    if gpu is not None:
        rows += [
            ("fit within", report_text.budget_text(gpu.memory_bytes, margin, 2), _EST),
            (f"largest micro-batch at seq {limits.seq_len}", str(limits.max_batch), _EST),
            (f"longest sequence at batch {limits.batch_size}", str(limits.max_seq), _EST),
        ]
    return rows


# the simulated sweep's columns; on a narrow terminal the highest priority numbers go first
SWEEP_COLUMNS = (
    Column("plan"),
    Column("status"),
    Column("tensor peak"),
    Column("Δ peak", priority=1),
    Column("GPU need"),
    Column("fits"),
    Column("FLOP/step", priority=3),
    Column("step time", priority=2),
    Column("note", wrap=True, min_width=20),
)


def sweep_rows(
    results: tuple[TrialResult, ...], gpu: GpuSpec | None, margin: float = DEFAULT_MARGIN
) -> list[tuple[str, ...]]:
    """One table row per simulated plan: peak, change against the baseline, need, fit, speed."""
    base = next((r for r in results if r.plan == "baseline" and r.ok and r.tensor_peak), None)
    rows: list[tuple[str, ...]] = []
    for r in results:
        peak = r.tensor_peak.peak_bytes if r.tensor_peak else None
        change = "–"
        if peak is not None and base is not None and r is not base and base.tensor_peak is not None:
            change = f"{(peak / base.tensor_peak.peak_bytes - 1) * 100:+.1f}%"
        figures = api.gpu_figures(r, gpu, margin=margin)
        need, cost, timing = figures.need, figures.cost, figures.timing
        note = r.reason or trial_view.simulation_note(r)
        rows.append(
            (
                r.plan,
                r.status.value,
                format_bytes(peak, 2),
                change,
                format_bytes(need.total_bytes if need else None, 2),
                "–" if figures.fits is None else ("yes" if figures.fits else "no"),
                f"{cost.total_flops:.2e}" if cost else "–",
                format_seconds(timing.step_time_s) if timing else "–",
                note if len(note) <= 100 else note[:97] + "…",
            )
        )
    return rows


def _one(args: argparse.Namespace, gpu: GpuSpec | None) -> list[TrialResult]:
    plan = api.one_plan(cuts=args.cuts, plans=args.plans)
    lengths = lengths_from_args(args)
    line = ProgressLine(f"{args.model}: ", quiet=args.quiet)
    result = api.simulate(
        args.model, plan, batch_size=args.batch, seq_len=args.seq, target=args.target, progress=line,
        extrapolate=not args.full_replay,
        lengths=lengths,
        moe_imbalance=args.moe_imbalance,
        gpus=args.gpus,
        nodes=args.nodes,
    )  # fmt: skip
    line.done()
    width = terminal_width()
    print(trial_view.trial_text(result, width=width))
    rows = need_rows(result, gpu, args.margin) if result.ok else []
    if rows:
        print()
        print(table(trial_view.FIGURE_COLUMNS, rows, width=width))
    if args.growth and result.ok:
        line = ProgressLine(f"{args.model} growth: ", quiet=args.quiet)
        limits = api.growth_limits(
            args.model, plan, batch_size=args.batch, seq_len=args.seq, target=args.target, gpu=gpu,
            base=result, margin=args.margin, progress=line, moe_imbalance=args.moe_imbalance,
        )  # fmt: skip
        line.done()
        print()
        print(table(trial_view.FIGURE_COLUMNS, growth_rows(limits, gpu, args.margin), width=width))
    if args.timeline or args.memory_snapshot:
        _timeline(args, plan, gpu)
    return [result]


def _timeline(args: argparse.Namespace, plan: Any, gpu: GpuSpec | None) -> None:
    """The step replayed once more in full, for its memory over time (chart and/or snapshot)."""
    line = ProgressLine(f"{args.model} timeline: ", quiet=args.quiet)
    tl_result = api.timeline(
        args.model, plan, batch_size=args.batch, seq_len=args.seq, target=args.target,
        chart=args.timeline, memory_snapshot=args.memory_snapshot, gpu=gpu, margin=args.margin, progress=line,
    )  # fmt: skip
    line.done()
    tl = tl_result.timeline
    if tl is None:
        print(f"\nno timeline: {tl_result.reason}")
        return
    alive = ", ".join(f"{format_bytes(t.nbytes)} {t.category} ({t.op})" for t in tl.top_tensors[:3])
    print(f"\nmemory over the step: peak {format_bytes(tl.peak_bytes)} in {tl.peak_phase}; largest alive: {alive}")
    for path, what in ((args.timeline, "chart"), (args.memory_snapshot, "memory_viz snapshot")):
        if path is not None:
            print(f"wrote {what} {path}")


def _many(args: argparse.Namespace, gpu: GpuSpec | None) -> list[TrialResult]:
    if args.dataset is not None or args.lengths is not None:
        raise InvalidInputError(
            "--dataset/--lengths shape one batching plan's worst batch; a sweep runs fixed batches",
            "drop --sweep and give the plan, e.g. --plans 'pack(max_tokens=4096)'",
        )
    line = ProgressLine(quiet=args.quiet)
    sims = api.simulate_plans(
        args.model,
        moe_imbalance=args.moe_imbalance,
        cuts=args.cuts,  # not given: every cut but the opt-in ones; given but empty: an error
        plans=args.plans,  # given but empty is an error, not "every cut"
        max_combo=args.max_combo,
        batch_size=args.batch,
        seq_len=args.seq,
        target=args.target,
        progress=line,
        extrapolate=not args.full_replay,
        workers=args.workers,
        gpus=args.gpus,
        nodes=args.nodes,
    )
    line.done()
    where = (
        f"on {gpu.name}, fit within {report_text.budget_text(gpu.memory_bytes, args.margin)}"
        if gpu is not None
        else "on a CUDA GPU (give --gpu for fit and speed)"
    )
    width = terminal_width()
    head = f"{args.model}: batch {args.batch} × seq {args.seq}, {len(sims.results)} plans simulated, need {where}\n"
    print(wrap_text(head, width))
    print(table(SWEEP_COLUMNS, sweep_rows(sims.results, gpu, args.margin), width=width))
    if sims.pruned:
        print(f"\npruned ({len(sims.pruned)}):")
        for p in sims.pruned:
            print(wrap_text(f"  {p.plan}: {p.reason}", width))
    print("\ntensor peaks: simulated (exact); GPU need and step time: estimated")
    return list(sims.results)


def run(args: argparse.Namespace) -> int:
    """Simulate one plan (with its need, and its growth if asked) or, with ``--sweep``, many."""
    api.check_margin(args.margin)  # before any work
    gpu = api.target_gpu(args.gpu, args.gpu_mem) if args.gpu or args.gpu_mem else None
    check_outputs(args.json, args.timeline, args.memory_snapshot)
    note_gpu(args.gpu)
    results = _many(args, gpu) if args.sweep else _one(args, gpu)
    if args.json:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "vram-advisor/simulate",
            "environment": environment(),
            "gpu": gpu.key if gpu is not None else None,
            "results": [r.to_dict() for r in results],
        }
        print(f"\nwrote {write_json(args.json, doc)}")
    return EXIT_OK if args.sweep or results[0].ok else EXIT_ERROR


def add_parser(sub: Any) -> None:
    """The ``simulate`` command's parser."""
    p = sub.add_parser(
        "simulate",
        help="replay training on fake tensors: any model, any GPU, no weights or hardware",
        description="Build the model on the meta device, apply the plan, and replay its real "
        "training step on fake tensors: the tensor peak and its breakdown are exact, with no "
        "compute and no weights, so an 8B model simulates in seconds on a laptop. Then the "
        "target GPU's overheads (caching allocator, CUDA context, cuBLAS workspaces) give the "
        "memory it needs, and the step's counted FLOPs an estimated step time. Works with the "
        "architecture presets (see `vram-advisor models`) and any config.json. Cut and plan "
        "syntax as in `vram-advisor sweep`.",
    )
    add_model_args(p)
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--cuts", "-c",
        help="cuts of the plan, comma-separated, e.g. lora,grad-ckpt,bf16 (with --sweep: cuts to "
        "combine; default every cut except opt-in ones)",
    )  # fmt: skip
    choice.add_argument("--plans", help="a plan ('lora+grad-ckpt'), or with --sweep a list: 'lora;sgd'")
    p.add_argument("--sweep", action="store_true", help="simulate many plans, as the sweep command runs them")
    p.add_argument(
        "--max-combo", type=positive_int, default=1,
        help="with --sweep --cuts: largest number of cuts in one plan (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--gpu", "-g", help="target GPU from the catalog, for fit and speed (e.g. h100, rtx-4090)")
    p.add_argument("--gpu-mem", help="memory budget instead of (or overriding) the GPU's, e.g. 22GiB")
    add_margin_arg(p, DEFAULT_MARGIN)
    p.add_argument(
        "--target", choices=("cuda", "cpu"), default="cuda",
        help="run the step as on CUDA (default) or exactly as on this CPU",
    )  # fmt: skip
    p.add_argument(
        "--growth", action="store_true",
        help="also fit memory over batch and sequence sizes: the largest batch and longest sequence that fit",
    )  # fmt: skip
    p.add_argument(
        "--full-replay", action="store_true",
        help="replay every layer, not a few repeats of the model's block extrapolated exactly "
        "(the default for models of 8 or more repeating blocks)",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=positive_int, default=None,
        help="with --sweep: worker processes simulating plans side by side (default: one per core; 1: one at a time)",
    )  # fmt: skip
    add_moe_arg(p)
    add_lengths_args(p)
    p.add_argument(
        "--gpus", type=int, default=1,
        help="GPUs the plan's strategy (ddp, fsdp2, hsdp) shards over: simulates one rank of them "
        "(--batch is each GPU's micro-batch; default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--nodes", type=int, default=1, help="machines the GPUs are spread over (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    add_timeline_args(p, "the simulated step")
    add_quiet_arg(p)
    p.set_defaults(func=run)
