"""The ``vram-advisor`` command line. The only place (with the TUI) that talks to the person."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advisor.core.errors import AdvisorError

log = logging.getLogger("advisor.cli")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressLine:
    """Progress on stderr: one line rewritten in a terminal, plain lines otherwise."""

    def __init__(self, prefix: str = "", stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.started = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = ""

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        line = f"{self.prefix}{message} [{elapsed:.1f} s]"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = line

    def done(self) -> None:
        if self.tty and self._last:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {value}")
    return value


def add_model_args(p: argparse.ArgumentParser, default_seq: int = 128) -> None:
    """--model, --batch, --seq: shared by every subcommand that runs a model."""
    from advisor.models import DEFAULT_MODEL

    p.add_argument(
        "--model", "-m", default=DEFAULT_MODEL,
        help="built-in name (see `vram-advisor models`), a Hugging Face model directory or "
        "config.json, or module.path:factory (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--batch", "-b", type=_positive_int, default=4, help="micro-batch size (default: %(default)s)"
    )
    p.add_argument(
        "--seq",
        "-s",
        type=_positive_int,
        default=default_seq,
        help="sequence length in tokens (default: %(default)s)",
    )


# -- profile ---------------------------------------------------------------------------------


def cmd_profile(args: argparse.Namespace) -> int:
    from advisor.api import profile
    from advisor.core.io import SCHEMA_VERSION, environment, write_json
    from advisor.plans import Plan
    from advisor.plans.cuts import parse_cuts
    from advisor.report.trial import trial_text

    plan = Plan.of(parse_cuts(args.cuts)) if args.cuts else Plan()
    progress = ProgressLine(f"{args.model}: ")
    result = profile(
        args.model,
        plan=plan,
        batch_size=args.batch,
        seq_len=args.seq,
        device=args.device,
        steps=args.steps,
        warmup_steps=args.warmup,
        progress=progress,
    )
    progress.done()
    print(trial_text(result))
    if args.json:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "vram-advisor/profile",
            "environment": environment(),
            "result": result.to_dict(),
        }
        path = write_json(args.json, doc)
        print(f"\nwrote {path}")
    if args.markdown:
        from advisor.core.io import atomic_write_text

        md = f"# Profile of {result.model}\n\n" + trial_text(result, markdown=True) + "\n"
        path = atomic_write_text(args.markdown, md)
        print(f"wrote {path}")
    return EXIT_OK if result.ok else EXIT_ERROR


def add_profile(sub: Any) -> None:
    p = sub.add_parser(
        "profile",
        help="measure one training configuration on this machine",
        description="Run warm-up steps, timed steps and one memory-tracked step of the model's "
        "real training step (full fine-tuning, fp32, AdamW) and print peak memory with its "
        "breakdown, step time, throughput and parameter counts.",
    )
    add_model_args(p)
    p.add_argument(
        "--cuts", "-c", default="",
        help="cuts of the plan, comma-separated, e.g. lora(r=16),grad-ckpt (see `sweep --list-cuts`); "
        "default: none, full fine-tuning in fp32 with AdamW",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=5, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=_non_negative_int, default=1, help="warm-up steps (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the result as JSON to this path")
    p.add_argument("--markdown", type=Path, help="also write the result as Markdown to this path")
    p.set_defaults(func=cmd_profile)


# -- models ----------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from advisor.core.tables import table
    from advisor.models import builtin_models

    rows = [(m.name, m.kind, m.description) for m in builtin_models()]
    print(table(("name", "kind", "description"), rows))
    return EXIT_OK


def add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list the built-in model names")
    p.set_defaults(func=cmd_models)


# -- sweep -----------------------------------------------------------------------------------


def _default_sweep_out(model: str, batch: int, seq: int) -> Path:
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).name if "/" in model else model).strip("-")
    return Path("reports") / f"sweep-{slug or 'model'}-b{batch}-s{seq}.jsonl"


def cmd_sweep(args: argparse.Namespace) -> int:
    from advisor.api import sweep
    from advisor.core.tables import table
    from advisor.engines.sweep import SweepProgress, change_table

    if args.list_cuts:
        from advisor.plans.cuts import describe_cuts

        print(table(("cut", "parameters (defaults)", "what it does"), describe_cuts()))
        return EXIT_OK
    out = args.out or _default_sweep_out(args.model, args.batch, args.seq)
    line = ProgressLine()
    finished = 0

    def progress(event: SweepProgress) -> None:
        nonlocal finished
        if event.kind in ("done", "reused"):
            finished += 1
            line.done()
            print(str(event), file=sys.stderr, flush=True)
        else:
            line(str(event))

    try:
        result = sweep(
            args.model,
            cuts=args.cuts if args.plans is None else None,
            plans=args.plans,
            max_combo=args.max_combo,
            batch_size=args.batch,
            seq_len=args.seq,
            device=args.device,
            steps=args.steps,
            warmup_steps=args.warmup,
            out=out,
            progress=progress,
            retry_failed=args.retry_failed,
        )
    except KeyboardInterrupt:
        line.done()
        print(
            f"\ninterrupted: {finished} finished results are in {out}; run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    line.done()
    print(
        f"{result.model}: batch {result.batch_size} × seq {result.seq_len} on {result.device}, "
        f"{len(result.results)} plans ({len(result.reused)} reused from {out})\n"
    )
    print(change_table(result))
    if result.pruned:
        print(f"\npruned ({len(result.pruned)}):")
        for p in result.pruned:
            print(f"  {p.plan}: {p.reason}")
    print(f"\nresults in {out} (re-run the same command to resume; --retry-failed to re-run failures)")
    if args.markdown:
        from advisor.core.io import atomic_write_text

        md = f"# Sweep of {result.model}\n\n" + change_table(result, markdown=True) + "\n"
        print(f"wrote {atomic_write_text(args.markdown, md)}")
    return EXIT_OK


def add_sweep(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="measure the baseline and many combinations of cuts, resumably",
        description="Run the baseline and each plan (a set of cuts) as a trial, one after another. "
        "A plan that fails is recorded with its reason and the sweep goes on; each result is "
        "appended to --out as it arrives, and re-running the same command skips what is done. "
        "Cut syntax: name or name(key=value,...), list values with '|', e.g. "
        "--cuts 'lora(r=16,targets=q_proj|v_proj),grad-ckpt,bf16'. Plan syntax: cuts joined by "
        "'+', plans separated by ';', e.g. --plans 'lora+grad-ckpt;sgd'. Quote both for the shell. "
        "See --list-cuts.",
    )
    add_model_args(p)
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--cuts", "-c",
        help="comma-separated cuts to combine (default: every cut except opt-in ones like compile)",
    )  # fmt: skip
    choice.add_argument("--plans", help="a list of plans instead: 'lora+grad-ckpt;sgd;baseline'")
    p.add_argument(
        "--max-combo", type=_positive_int, default=1,
        help="largest number of cuts in one plan, for --cuts (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=3, help="timed steps per plan (default: %(default)s)")
    p.add_argument("--warmup", type=_non_negative_int, default=1, help="warm-up steps (default: %(default)s)")
    p.add_argument(
        "--out", "-o", type=Path,
        help="results file (JSON Lines); default reports/sweep-MODEL-bBATCH-sSEQ.jsonl",
    )  # fmt: skip
    p.add_argument("--retry-failed", action="store_true", help="re-run plans recorded as failed")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown to this path")
    p.add_argument("--list-cuts", action="store_true", help="list the cuts and their parameters, then exit")
    p.set_defaults(func=cmd_sweep)


# -- convergence -----------------------------------------------------------------------------


def cmd_convergence(args: argparse.Namespace) -> int:
    from advisor.engines.convergence import convergence_probe, convergence_text

    line = ProgressLine(f"{args.model}: ")
    result = convergence_probe(
        args.model,
        text=args.text,
        steps=args.steps,
        batch_size=args.batch,
        seq_len=args.seq,
        lr=args.lr,
        threshold=args.threshold,
        seed=args.seed,
        device=args.device,
        progress=line,
    )
    line.done()
    print(f"Fine-tune vs train from scratch: {result.model}, {result.steps} steps each\n")
    print(convergence_text(result))
    if args.json:
        from advisor.core.io import SCHEMA_VERSION, environment, write_json

        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "vram-advisor/convergence",
            "environment": environment(),
            "result": result.to_dict(),
        }
        print(f"\nwrote {write_json(args.json, doc)}")
    return EXIT_OK


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_convergence(sub: Any) -> None:
    p = sub.add_parser(
        "convergence",
        help="fine-tune vs from scratch: loss curves and steps to a threshold",
        description="Train the model N steps from its pretrained weights and N steps from random "
        "init on the same batches (the built-in English sample or --text, tokenized with the "
        "model's tokenizer), and report both loss curves and the steps each needs to reach a "
        "loss threshold (default: the best loss the random-init run reached). Per-step memory is "
        "the same either way; this is the compute side.",
    )
    p.add_argument(
        "--model", "-m", default="minilm",
        help="a model with pretrained weights: minilm, a Hugging Face directory with weights, or "
        "module.path:factory loading your checkpoint (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--batch", "-b", type=_positive_int, default=4, help="batch size (default: %(default)s)")
    p.add_argument("--seq", "-s", type=_positive_int, default=64, help="sequence length (default: %(default)s)")
    p.add_argument("--steps", type=_positive_int, default=30, help="steps per run (default: %(default)s)")
    p.add_argument("--lr", type=_learning_rate, default=1e-4, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--threshold", type=float, help="loss threshold (default: the random-init run's best)")
    p.add_argument("--text", type=Path, help="a UTF-8 text file to train on (default: built-in sample)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, masking and dropout (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the result as JSON to this path")
    p.set_defaults(func=cmd_convergence)


# -- recommend, report, gpus -----------------------------------------------------------------


def _count(text: str) -> int:
    from advisor.recommend.workload import parse_count

    try:
        return parse_count(text)
    except AdvisorError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.1, got {text!r}") from None


def _positive_float(text: str) -> float:
    value = _fraction(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def cmd_recommend(args: argparse.Namespace) -> int:
    from advisor.api import advise
    from advisor.recommend import Mode, reproduce_command
    from advisor.recommend.workload import RankBy, Workload

    workload = Workload(
        micro_batch=args.batch,
        seq_len=args.seq,
        dataset_tokens=args.dataset_tokens,
        epochs=args.epochs,
        margin=args.margin,
    )
    mode = "simulate" if args.simulate else "measure" if args.measure else "auto"
    progress = ProgressLine(f"{args.model}: ")
    rec = advise(
        args.model,
        gpu=args.gpu,
        gpu_mem=args.gpu_mem,
        price_usd_per_hour=args.price,
        workload=workload,
        plans=args.plans,
        rank_by=args.rank_by,
        mode=mode,
        check_top=args.check_top,
        progress=progress,
    )
    progress.done()
    report = str(args.report) if args.report else None
    command = reproduce_command(
        args.model, rec.gpu, workload, rank_by=RankBy(args.rank_by), mode=Mode(mode), plans=args.plans,
        report=report,
    )  # fmt: skip
    import dataclasses

    rec = dataclasses.replace(rec, command=command)
    print(rec.to_text())
    if args.report:
        paths = rec.save(args.report)
        print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def add_recommend(sub: Any) -> None:
    p = sub.add_parser(
        "recommend",
        help="rank training plans for a target GPU and workload",
        description="Run the model's real training step under each plan (measured on the target "
        "GPU when it is this machine's, else simulated on fake tensors), predict the memory each "
        "needs on the target, and rank: what fits first, then by time (or cost) to train the "
        "workload. Writes PREFIX.json, PREFIX.md and PREFIX.svg with --report PREFIX.",
    )
    add_model_args(p)
    p.add_argument("--gpu", "-g", help="target GPU from the catalog (see `vram-advisor gpus`; default rtx-4090)")
    p.add_argument(
        "--gpu-mem",
        help="memory budget such as 22GiB or 24000MiB: alone, a budget-only target; with --gpu, "
        "that GPU with this much memory",
    )
    p.add_argument("--price", type=_positive_float, help="your price per GPU-hour in USD (default: catalog)")
    p.add_argument(
        "--dataset-tokens", type=_count, default=10_000_000,
        help="tokens in one pass over your data, e.g. 50M (default: 10M)",
    )  # fmt: skip
    p.add_argument("--epochs", type=_positive_float, default=1.0, help="passes over the data (default: 1)")
    p.add_argument(
        "--margin", type=_fraction, default=0.10,
        help="share of GPU memory kept free, 0 to <1 (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--rank-by", choices=("time", "cost"), default="time", help="order of the plans that fit")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--simulate", action="store_true", help="simulate even when the target GPU is here")
    how.add_argument("--measure", action="store_true", help="measure on this machine's GPU (must be the target)")
    p.add_argument("--plans", help='plans to rank, e.g. "lora+grad-ckpt;bf16" (default: singles and known combos)')
    p.add_argument(
        "--check-top", type=_non_negative_int, default=3,
        help="find the largest micro-batch by trials for this many top plans (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--report", type=Path, metavar="PREFIX", help="write PREFIX.json, PREFIX.md and PREFIX.svg")
    p.set_defaults(func=cmd_recommend)


def cmd_report_show(args: argparse.Namespace) -> int:
    from advisor.report import load_report, save_report

    rec = load_report(args.file)
    if args.out:
        paths = save_report(rec, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return EXIT_OK
    if args.format == "text":
        print(rec.to_text())
    elif args.format == "json":
        print(rec.to_json(), end="")
    else:
        print(rec.to_markdown(), end="")
    return EXIT_OK


def add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="work with saved recommendation reports")
    actions = p.add_subparsers(dest="report_command", metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="re-render a saved report (FILE.json)",
        description="Load a report written by `vram-advisor recommend --report`, check it, and print "
        "it as Markdown (or text or JSON), or write PREFIX.md/.json/.svg again with --out.",
    )
    show.add_argument("file", type=Path, metavar="FILE.json")
    show.add_argument("--format", choices=("markdown", "text", "json"), default="markdown")
    show.add_argument("--out", type=Path, metavar="PREFIX", help="write PREFIX.md, PREFIX.json and PREFIX.svg")
    show.set_defaults(func=cmd_report_show)
    p.set_defaults(func=lambda _args: (p.print_help(), EXIT_USAGE)[1])


def cmd_gpus(args: argparse.Namespace) -> int:
    from advisor.catalog.gpus import list_gpus
    from advisor.core.tables import table
    from advisor.core.units import format_bytes

    rows = [
        (
            g.key,
            g.name,
            format_bytes(g.memory_bytes, 0),
            "yes" if g.supports_bf16 else "no",
            f"{g.bf16_tflops or g.fp16_tflops:g}",
            f"{g.fp32_tflops:g}",
            f"{g.bandwidth_bytes_per_s / 1e9:,.0f} GB/s",
            f"${g.price_usd_per_hour:.2f}",
        )
        for g in list_gpus()
    ]
    print(table(("key", "name", "memory", "bf16", "16-bit TFLOPS", "fp32 TFLOPS", "bandwidth", "$/h"), rows))
    print("\nPrices are typical on-demand rates (estimates); override with --price. "
          "Any budget: --gpu-mem 22GiB.")  # fmt: skip
    return EXIT_OK


def add_gpus(sub: Any) -> None:
    p = sub.add_parser("gpus", help="list the GPU catalog (memory, throughput, price)")
    p.set_defaults(func=cmd_gpus)


# -- entry point -----------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Any], None]] = [add_profile, add_models, add_sweep, add_convergence]
SUBCOMMANDS += [add_recommend, add_report, add_gpus]


# -- tui -------------------------------------------------------------------------------------


def cmd_tui(args: argparse.Namespace) -> int:
    if args.report is not None and not Path(args.report).is_file():
        raise AdvisorError(f"no report at {args.report}", "give a .json report written by `recommend` or the TUI")
    from advisor.tui import run_tui  # the only import of textual, and only here

    run_tui(model=args.model, gpu=args.gpu, report=args.report)
    return EXIT_OK


def add_tui(sub: Any) -> None:
    p = sub.add_parser(
        "tui",
        help="open the terminal UI: pick a model and GPU, watch the sweep, browse and export",
        description="Interactive terminal UI. Press ? inside for help.",
    )
    p.add_argument("--model", "-m", help="model to preselect (default: tiny-llama)")
    p.add_argument("--gpu", "-g", help="target GPU to preselect (default: rtx-4090)")
    p.add_argument("--report", type=Path, help="open a saved report (.json) to browse it")
    p.set_defaults(func=cmd_tui)


SUBCOMMANDS.append(add_tui)


# -- simulate --------------------------------------------------------------------------------


def _simulate_target_gpu(args: argparse.Namespace) -> Any:
    from advisor.catalog.gpus import custom_gpu, get_gpu
    from advisor.core.units import parse_memory

    gpu = get_gpu(args.gpu) if args.gpu else None
    if args.gpu_mem:
        gpu = custom_gpu(parse_memory(args.gpu_mem), base=gpu)
    return gpu


def _simulate_plans(args: argparse.Namespace) -> Any:
    from advisor.plans import Plan
    from advisor.plans.cuts import combinations, default_cuts, parse_cuts, parse_plans, user_plans

    if args.sweep:
        if args.plans:
            return user_plans(parse_plans(args.plans))
        cuts = parse_cuts(args.cuts) if args.cuts else default_cuts()
        return combinations(cuts, args.max_combo)
    if args.plans:
        plans = parse_plans(args.plans)
        if len(plans) != 1:
            from advisor.core.errors import InvalidInputError

            raise InvalidInputError(
                f"--plans names {len(plans)} plans but one is simulated without --sweep",
                "add --sweep, or give one plan (cuts joined by '+')",
            )
        return user_plans(plans, baseline=False)
    return user_plans([Plan.of(parse_cuts(args.cuts or ""))], baseline=False)


def _need_rows(result: Any, gpu: Any) -> list[tuple[str, str, str]]:
    from advisor.core.units import format_bytes, format_rate, format_seconds
    from advisor.engines.flops import estimate_for_gpu, step_cost_of
    from advisor.engines.overheads import predict_gpu_need
    from profilers.records import Provenance

    rows: list[tuple[str, str, str]] = []
    cost = step_cost_of(result)
    if cost is not None:
        rows.append(("FLOPs per step", f"{cost.total_flops:.3e}", cost.provenance.value))
    if result.tensor_peak is None:
        return rows
    need = predict_gpu_need(result, gpu)
    est = Provenance.ESTIMATED.value
    where = gpu.name if gpu is not None else "a CUDA GPU"
    rows += [
        (f"GPU need on {where}", format_bytes(need.total_bytes, 2), est),
        ("  tensor peak", format_bytes(need.tensor_peak_bytes, 2), need.tensor_peak_source.value),
        ("  caching allocator", format_bytes(need.allocator_overhead_bytes, 2), need.allocator_source.value),
        ("  CUDA context", format_bytes(need.cuda_context_bytes, 2), est),
        ("  cuBLAS workspaces", format_bytes(need.workspace_bytes, 2), est),
    ]
    if need.attention_workspace_bytes:
        rows.append(("  attention backward scratch", format_bytes(need.attention_workspace_bytes, 2), est))
    if gpu is not None:
        verdict = "fits" if need.fits(gpu.memory_bytes) else "does not fit"
        rows.append((f"on {format_bytes(gpu.memory_bytes)}", verdict, est))
        timing = estimate_for_gpu(result, gpu)
        if timing is not None:
            rows += [
                ("step time", f"{format_seconds(timing.step_time_s)} ({timing.bound}-bound)", est),
                ("throughput", format_rate(timing.tokens_per_s, "tok/s"), est),
            ]
        if cost is not None and cost.flops_by_dtype.get("bfloat16") and not gpu.supports_bf16:
            rows.append(("note", f"{gpu.name} has no bf16 support: use fp16 there", ""))
    return rows


def _growth_rows(args: argparse.Namespace, plan: Any, gpu: Any, base: Any) -> list[tuple[str, str, str]]:
    from advisor.engines.growth import simulate_growth
    from advisor.engines.overheads import predict_gpu_need
    from profilers.records import Provenance

    line = ProgressLine(f"{args.model} growth: ")
    fit = simulate_growth(args.model, plan, batch_size=args.batch, seq_len=args.seq, target=args.target, progress=line)
    line.done()
    est = Provenance.ESTIMATED.value
    held = fit.holdout
    rows = []
    if held is not None and fit.holdout_error is not None:
        rows.append(
            (
                "growth fit, held-out size",
                f"batch {held.batch_size} × seq {held.seq_len}: {fit.holdout_error * 100:+.2f}% error",
                est,
            )
        )
    if gpu is not None:
        # the overheads found at the simulated size, added to the fitted peak at other sizes
        offset = predict_gpu_need(base, gpu).total_bytes - base.tensor_peak.peak_bytes
        budget = gpu.memory_bytes

        def need(peak: int) -> int:
            return peak + offset

        rows += [
            (f"largest micro-batch at seq {args.seq}", str(fit.max_batch_that_fits(budget, args.seq, need=need)), est),
            (f"longest sequence at batch {args.batch}", str(fit.max_seq_that_fits(budget, args.batch, need=need)), est),
        ]
    return rows


def cmd_simulate(args: argparse.Namespace) -> int:
    from advisor.api import simulate
    from advisor.core.io import SCHEMA_VERSION, environment, write_json
    from advisor.core.tables import table
    from advisor.core.units import format_bytes
    from advisor.report.trial import trial_text

    gpu = _simulate_target_gpu(args)
    space = _simulate_plans(args)
    results = []
    for i, plan in enumerate(space.plans, 1):
        prefix = f"{args.model} [{i}/{len(space.plans)}] {plan.name}: " if args.sweep else f"{args.model}: "
        line = ProgressLine(prefix)
        result = simulate(
            args.model, batch_size=args.batch, seq_len=args.seq, plan=plan, target=args.target, progress=line
        )
        line.done()
        results.append(result)
        if args.sweep:
            print(f"{plan.name}: {result.status.value} ({result.wall_time_s:.1f} s)", file=sys.stderr, flush=True)

    if not args.sweep:
        result = results[0]
        print(trial_text(result))
        need_rows = _need_rows(result, gpu) if result.ok else []
        if need_rows:
            print()
            print(table(("figure", "value", "source"), need_rows))
        if args.growth and result.ok:
            print()
            print(table(("figure", "value", "source"), _growth_rows(args, space.plans[0], gpu, result)))
    else:
        from advisor.core.units import format_seconds
        from advisor.engines.flops import estimate_for_gpu, step_cost_of
        from advisor.engines.overheads import predict_gpu_need

        base = next((r for r in results if r.plan == "baseline" and r.ok and r.tensor_peak), None)
        rows = []
        for r in results:
            peak = r.tensor_peak.peak_bytes if r.tensor_peak else None
            change = "–"
            if peak is not None and base is not None and r is not base and base.tensor_peak is not None:
                change = f"{(peak / base.tensor_peak.peak_bytes - 1) * 100:+.1f}%"
            need = predict_gpu_need(r, gpu) if r.ok and r.tensor_peak else None
            fits = "–" if need is None or gpu is None else ("yes" if need.fits(gpu.memory_bytes) else "no")
            cost = step_cost_of(r)
            timing = estimate_for_gpu(r, gpu) if gpu is not None and r.ok else None
            note = r.reason or ""
            rows.append(
                (
                    r.plan,
                    r.status.value,
                    format_bytes(peak, 2),
                    change,
                    format_bytes(need.total_bytes if need else None, 2),
                    fits,
                    f"{cost.total_flops:.2e}" if cost else "–",
                    format_seconds(timing.step_time_s) if timing else "–",
                    note if len(note) <= 100 else note[:97] + "…",
                )
            )
        where = f"on {gpu.name}" if gpu is not None else "on a CUDA GPU (give --gpu for fit and speed)"
        print(f"{args.model}: batch {args.batch} × seq {args.seq}, {len(results)} plans simulated, need {where}\n")
        headers = ("plan", "status", "tensor peak", "Δ peak", "GPU need", "fits", "FLOP/step", "step time", "note")
        print(table(headers, rows))
        if space.pruned:
            print(f"\npruned ({len(space.pruned)}):")
            for p in space.pruned:
                print(f"  {p.plan}: {p.reason}")
        print("\ntensor peaks: simulated (exact); GPU need and step time: estimated")
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


def add_simulate(sub: Any) -> None:
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
        "--max-combo", type=_positive_int, default=1,
        help="with --sweep --cuts: largest number of cuts in one plan (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--gpu", "-g", help="target GPU from the catalog, for fit and speed (e.g. h100, rtx-4090)")
    p.add_argument("--gpu-mem", help="memory budget instead of (or overriding) the GPU's, e.g. 22GiB")
    p.add_argument(
        "--target", choices=("cuda", "cpu"), default="cuda",
        help="run the step as on CUDA (default) or exactly as on this CPU",
    )  # fmt: skip
    p.add_argument(
        "--growth", action="store_true",
        help="also fit memory over batch and sequence sizes: the largest batch and longest sequence that fit",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.set_defaults(func=cmd_simulate)


SUBCOMMANDS.append(add_simulate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vram-advisor",
        description="Which memory-saving techniques let your model train on your GPU budget, "
        "how fast, at what batch size and cost — from real measurements.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:  # optional-kernel notices from bitsandbytes are noise to a user
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
