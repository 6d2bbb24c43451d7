"""How close each way to a step's peak memory comes to the measured truth, side by side.

For the built-in tiny models under a range of plans, micro-batches and sequence lengths, the
exact measured peak of live tensor bytes on this machine (``advisor.profile``: one warm-up step,
then one tracked step) is the truth. Against it:

* **simulated** — ``advisor.engines.simulate.simulate(..., target="cpu")``: the same step on fake tensors;
* **estimated** — ``advisor.estimate.estimate_peak(..., target="cpu")``: closed-form accounting;
* **Accelerate** — what ``accelerate estimate-memory`` reports as "Training using Adam" for the
  model: ``create_empty_model``'s transformers branch (``AutoModel.from_config(config,
  dtype=float32)`` under ``init_empty_weights``, given the config directly instead of fetching it
  from the Hub), then ``accelerate.utils.calculate_maximum_sizes`` and
  ``accelerate.commands.estimate.estimate_training_usage(total_size, dtype)``, the largest of its
  figures, exactly as ``estimate_command`` prints it. ``dtype`` is ``"float32"`` for fp32 plans
  and ``"float16"`` (its mixed-precision row) for bf16 plans. It knows nothing of LoRA, batch or
  sequence length;
* **16 B/param** — the rule of thumb: 16 bytes per parameter (fp32 weights, gradients and the two
  AdamW moments), whatever the plan.

Prints a table (each method's prediction and error in %), a summary (median and max absolute
error per method, and on how many cases our simulation and our estimate are closer than each
rival), and writes both to ``benchmarks/results/accuracy-<device>.md`` (and ``.json``).

Then (unless ``--no-8b``) it times the simulation of Llama-3.1-8B (batch 1 × 2048, CUDA target)
under the QLoRA and 8-bit AdamW plans: each must come back simulated, in under 10 s.

    .venv/bin/python benchmarks/accuracy.py [--models tiny-llama,tiny-gpt2,tiny-bert]
        [--plans "baseline;lora;grad-ckpt;sgd;lora+grad-ckpt;bf16"] [--sizes 1x64,4x128,2x256]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = ("tiny-llama", "tiny-gpt2", "tiny-bert")
DEFAULT_PLANS = (
    "baseline;lora;grad-ckpt;sgd;lora+grad-ckpt;bf16;"
    # bitsandbytes' plans (issue 12): simulated with stand-ins, measured with bitsandbytes on CPU
    "qlora;qlora(bits=8);qlora+grad-ckpt;lora+adamw8bit;adamw8bit"
)
# simulated for an 8B model on a CUDA target, timed: each should take under 10 s here
TIMED_8B_MODEL = "llama-3.1-8b"
TIMED_8B_PLANS = ("qlora+grad-ckpt", "qlora(bits=8)", "lora+adamw8bit")
TIMED_8B_BATCH, TIMED_8B_SEQ = 1, 2048
TIMED_8B_LIMIT_S = 10.0
DEFAULT_SIZES = "1x64,4x128,2x256"
METHODS = ("simulated", "estimated", "accelerate", "16B/param")
OURS = ("simulated", "estimated")
RIVALS = ("accelerate", "16B/param")
RULE_BYTES_PER_PARAM = 16
MIB = 2**20
_HALF_PRECISION_CUTS = {"bf16", "fp16", "bf16-weights"}

log = logging.getLogger("benchmarks.accuracy")


# -- the pure part: errors, summaries, rendering ----------------------------------------------------


def percent_error(predicted: float | None, truth: float | None) -> float | None:
    """Signed error of ``predicted`` against ``truth`` in percent (``None`` when unknown)."""
    if predicted is None or truth is None or truth <= 0:
        return None
    return (predicted - truth) / truth * 100.0


def rule_of_thumb_bytes(parameters: int) -> int:
    """The 16-bytes-per-parameter rule: fp32 weights + gradients + AdamW's two moments."""
    return RULE_BYTES_PER_PARAM * parameters


@dataclass
class Case:
    """One model × plan × size, the truth and every method's prediction (bytes)."""

    model: str
    plan: str
    batch_size: int
    seq_len: int
    measured: int | None = None
    status: str = "ok"
    reason: str | None = None
    activation_bytes: int | None = None  # measured, at the peak
    predictions: dict[str, int | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def error(self, method: str) -> float | None:
        return percent_error(self.predictions.get(method), self.measured)

    @property
    def has_activations(self) -> bool:
        return bool(self.activation_bytes)


@dataclass(frozen=True)
class MethodSummary:
    method: str
    cases: int
    median_abs_error: float | None
    max_abs_error: float | None
    max_case: str | None  # where the max is
    mean_error: float | None = None  # signed: the bias (under- or over-estimates)


def summarize(cases: Sequence[Case], methods: Iterable[str] = METHODS) -> list[MethodSummary]:
    """Median and max absolute error per method over the cases that have both figures."""
    out = []
    for method in methods:
        errs = [(abs(e), c) for c in cases if (e := c.error(method)) is not None]
        if not errs:
            out.append(MethodSummary(method, 0, None, None, None))
            continue
        worst, where = max(errs, key=lambda x: x[0])
        signed = [e for c in cases if (e := c.error(method)) is not None]
        out.append(
            MethodSummary(
                method,
                len(errs),
                statistics.median(e for e, _ in errs),
                worst,
                f"{where.model} {where.plan} {where.batch_size}×{where.seq_len}",
                statistics.mean(signed),
            )
        )
    return out


@dataclass(frozen=True)
class Beats:
    ours: str
    rival: str
    closer: int  # cases where ours is strictly closer to the truth
    of: int  # cases with activations where both have a figure
    losses: tuple[str, ...]  # the cases where it is not closer


def beats(cases: Sequence[Case], ours: str, rival: str) -> Beats:
    """On how many cases with activations ``ours`` is closer to the measured peak than ``rival``."""
    closer, of, losses = 0, 0, []
    for c in cases:
        a, b = c.error(ours), c.error(rival)
        if not c.has_activations or a is None or b is None:
            continue
        of += 1
        if abs(a) < abs(b):
            closer += 1
        else:
            losses.append(f"{c.model} {c.plan} {c.batch_size}×{c.seq_len} ({a:+.1f}% vs {b:+.1f}%)")
    return Beats(ours, rival, closer, of, tuple(losses))


def _mib(n: int | None) -> str:
    return "–" if n is None else f"{n / MIB:.2f}"


def _pct(e: float | None) -> str:
    return "–" if e is None else f"{e:+.2f}%"


def case_rows(cases: Sequence[Case]) -> list[list[str]]:
    rows = []
    for c in cases:
        row = [
            c.model,
            c.plan,
            f"{c.batch_size}×{c.seq_len}",
            _mib(c.measured) if c.status == "ok" else c.status,
        ]
        for m in METHODS:
            row += [_mib(c.predictions.get(m)), _pct(c.error(m))]
        rows.append(row)
    return rows


CASE_HEADERS = (
    "model", "plan", "batch×seq", "measured MiB",
    "simulated MiB", "sim err", "estimated MiB", "est err",
    "Accelerate MiB", "Accel err", "16 B/param MiB", "16B err",
)  # fmt: skip


def summary_rows(summaries: Sequence[MethodSummary]) -> list[list[str]]:
    def pct(x: float | None, sign: str = "") -> str:
        return "–" if x is None else f"{x:{sign}.3f}%"

    return [
        [
            s.method,
            str(s.cases),
            pct(s.median_abs_error),
            pct(s.max_abs_error),
            s.max_case or "–",
            pct(s.mean_error, "+"),
        ]
        for s in summaries
    ]


SUMMARY_HEADERS = ("method", "cases", "median abs error", "max abs error", "max at", "mean error (bias)")


def beats_lines(cases: Sequence[Case]) -> list[str]:
    lines = []
    for ours in OURS:
        for rival in RIVALS:
            b = beats(cases, ours, rival)
            line = f"{ours} closer than {rival}: {b.closer}/{b.of} cases with activations"
            if b.losses:
                line += " — not on: " + "; ".join(b.losses)
            lines.append(line)
    return lines


def machine_lines() -> list[str]:
    """What this ran on: CPU model, cores, OS, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"torch {torch.__version__}"]
    for name in ("transformers", "peft", "accelerate"):
        try:
            module = __import__(name)
            versions.append(f"{name} {module.__version__}")
        except Exception:  # not installed, or broken: leave it out
            continue
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine: {cpu}, {cores} cores available ({os.cpu_count()} logical), "
        f"torch threads {torch.get_num_threads()}, {platform.system()} {platform.release()}",
        f"software: Python {platform.python_version()}, " + ", ".join(versions),
        f"date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def render(
    cases: Sequence[Case], device: str, markdown: bool, command: str = "", elapsed_s: float | None = None
) -> str:
    from advisor.core.tables import table

    summaries = summarize(cases)
    bullet = "- " if markdown else ""
    parts = []
    if markdown:
        parts += [
            f"# Peak memory of a training step: accuracy on {device}",
            "",
            "Produced by `benchmarks/accuracy.py`"
            + (f" (`{command}`)" if command else "")
            + ". Truth: the exact peak of live tensor bytes of one steady-state training step, "
            "measured on this machine (`advisor.profile`, provenance `measured`). Errors are "
            "(prediction − measured) / measured. See the script's docstring for exactly what "
            "each method computes.",
            "",
        ]
    parts += [bullet + line for line in machine_lines()]
    if elapsed_s is not None:
        parts.append(f"{bullet}benchmark wall time: {elapsed_s:.0f} s")
    parts += ["", "## Summary" if markdown else "Summary", ""]
    parts.append(table(SUMMARY_HEADERS, summary_rows(summaries), markdown=markdown))
    parts += [""] + [bullet + line for line in beats_lines(cases)]
    failed = [c for c in cases if c.status != "ok"]
    if failed:
        parts += [""] + [
            f"{bullet}not measured: {c.model} {c.plan} {c.batch_size}×{c.seq_len}: {c.status} — {c.reason}"
            for c in failed
        ]
    parts += ["", "## Cases" if markdown else "Cases", ""]
    parts.append(table(CASE_HEADERS, case_rows(cases), markdown=markdown))
    parts += [
        "",
        f"{bullet}Accelerate builds the model as `accelerate estimate-memory` does, with "
        "`AutoModel` (the base model: no LM head), and ignores the plan except its precision.",
        f"{bullet}16 B/param counts every parameter of the model as built (tied weights once), "
        "whatever the plan.",
        f"{bullet}The estimate's per-op counts were calibrated on these three models' measured CPU "
        "peaks, so its figures here are in-sample; `advisor/estimate.py` says how it fares on "
        "other shapes.",
    ]
    return "\n".join(parts) + "\n"


# -- the impure part: running each method --------------------------------------------------------------


def accelerate_training_bytes(model: str, precision: str = "float32") -> tuple[int, int]:
    """``accelerate estimate-memory``'s "Training using Adam" for a built-in or HF model, and the
    parameter count of the model it built (see the module docstring)."""
    from accelerate import init_empty_weights
    from accelerate.commands.estimate import estimate_training_usage
    from accelerate.utils import calculate_maximum_sizes
    from transformers import AutoModel

    from advisor.models import HFModelSource, quiet_transformers, resolve_model

    source = resolve_model(model)
    if not isinstance(source, HFModelSource):
        raise ValueError(f"{model} has no transformers config; accelerate estimate-memory needs one")
    with quiet_transformers(), init_empty_weights():
        empty = AutoModel.from_config(source.config, dtype=torch.float32)
    total_size, _largest = calculate_maximum_sizes(empty)
    usage = estimate_training_usage(total_size, precision)
    params = sum(p.numel() for p in empty.parameters())
    return int(max(usage.values())), params


def _precision_of(plan_name: str) -> str:
    cuts = {part.split("(", 1)[0] for part in plan_name.split("+")}
    return "float16" if cuts & _HALF_PRECISION_CUTS else "float32"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        b, _, s = item.strip().lower().partition("x")
        out.append((int(b), int(s)))
    return out


def run_case(model: str, plan_text: str, batch: int, seq: int, cache: dict[str, Any]) -> Case:
    import advisor
    from advisor.engines.estimate import estimate_peak
    from advisor.engines.measure import meta_parameter_count
    from advisor.engines.simulate import simulate
    from advisor.models import resolve_model
    from advisor.plans.cuts import parse_plan

    plan = parse_plan(plan_text)
    case = Case(model, plan.name, batch, seq)
    t0 = time.perf_counter()
    measured = advisor.profile(
        model, batch_size=batch, seq_len=seq, plan=plan, device="cpu", steps=1, warmup_steps=1
    )
    case.seconds["measured"] = time.perf_counter() - t0
    if not measured.ok or measured.tensor_peak is None:
        case.status, case.reason = measured.status.value, measured.reason
    else:
        case.measured = measured.tensor_peak.peak_bytes
        case.activation_bytes = measured.tensor_peak.breakdown.activation_bytes
    t0 = time.perf_counter()
    sim = simulate(model, plan, batch, seq, target="cpu", count_cost=False)
    case.seconds["simulated"] = time.perf_counter() - t0
    case.predictions["simulated"] = sim.tensor_peak.peak_bytes if sim.ok and sim.tensor_peak else None
    t0 = time.perf_counter()
    est = estimate_peak(model, plan, batch_size=batch, seq_len=seq, target="cpu")
    case.seconds["estimated"] = time.perf_counter() - t0
    case.predictions["estimated"] = est.peak_bytes
    precision = _precision_of(plan.name)
    key = f"{model}/{precision}"
    if key not in cache:
        t0 = time.perf_counter()
        cache[key] = accelerate_training_bytes(model, precision)
        cache[key + "/s"] = time.perf_counter() - t0
    case.predictions["accelerate"] = cache[key][0]
    case.seconds["accelerate"] = cache[key + "/s"]
    if model not in cache:
        cache[model] = meta_parameter_count(resolve_model(model))
    case.predictions["16B/param"] = rule_of_thumb_bytes(cache[model])
    return case


def run(
    models: Sequence[str],
    plans: Sequence[str],
    sizes: Sequence[tuple[int, int]],
    progress: Callable[[str], None] | None = None,
) -> list[Case]:
    cache: dict[str, Any] = {}
    cases = []
    total = len(models) * len(plans) * len(sizes)
    i = 0
    for model in models:
        for plan in plans:
            for batch, seq in sizes:
                i += 1
                if progress:
                    progress(f"[{i}/{total}] {model} {plan} {batch}×{seq}")
                cases.append(run_case(model, plan, batch, seq, cache))
    return cases


@dataclass
class Timed:
    """One simulation of the 8B model: its status, tensor peak and wall time."""

    plan: str
    status: str
    peak_bytes: int | None
    seconds: float
    provenance: str | None


def time_8b(plans: Sequence[str] = TIMED_8B_PLANS) -> list[Timed]:
    """Simulate :data:`TIMED_8B_MODEL` under each plan (after one warm-up simulation that pays
    the imports), timing each."""
    from advisor.engines.simulate import simulate

    simulate("tiny-llama", plans[0], 1, 16, target="cuda")  # imports and first-use caches
    out = []
    for plan in plans:
        t0 = time.perf_counter()
        r = simulate(TIMED_8B_MODEL, plan, TIMED_8B_BATCH, TIMED_8B_SEQ, target="cuda")
        seconds = time.perf_counter() - t0
        peak = r.tensor_peak.peak_bytes if r.tensor_peak is not None else None
        provenance = r.tensor_peak.provenance.value if r.tensor_peak is not None else None
        out.append(Timed(r.plan, r.status.value, peak, seconds, provenance))
    return out


def timed_lines(timed: Sequence[Timed], markdown: bool) -> str:
    from advisor.core.tables import table

    rows = [
        [t.plan, t.status, t.provenance or "–", "–" if t.peak_bytes is None else f"{t.peak_bytes / 2**30:.2f}",
         f"{t.seconds:.1f}", "yes" if t.status == "ok" and t.seconds < TIMED_8B_LIMIT_S else "no"]
        for t in timed
    ]  # fmt: skip
    head = (
        f"{TIMED_8B_MODEL}, batch {TIMED_8B_BATCH} × seq {TIMED_8B_SEQ}, CUDA target: "
        f"simulation wall time per plan (limit {TIMED_8B_LIMIT_S:.0f} s)"
    )
    title = f"## {head}" if markdown else head
    body = table(("plan", "status", "tensor peak", "GiB", "seconds", "within limit"), rows, markdown=markdown)
    return f"{title}\n\n{body}\n"


def write_results(
    cases: Sequence[Case],
    device: str,
    out_dir: Path,
    command: str,
    elapsed_s: float,
    timed: Sequence[Timed] = (),
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"accuracy-{device}.md"
    tmp = md.with_suffix(".md.tmp")
    text = render(cases, device, markdown=True, command=command, elapsed_s=elapsed_s)
    if timed:
        text += "\n" + timed_lines(timed, markdown=True)
    tmp.write_text(text)
    tmp.replace(md)
    data = {
        "kind": "vram-advisor/accuracy",
        "schema_version": 1,
        "device": device,
        "machine": machine_lines(),
        "summary": [asdict(s) for s in summarize(cases)],
        "beats": [asdict(beats(cases, o, r)) for o in OURS for r in RIVALS],
        "cases": [asdict(c) for c in cases],
        "timed_8b": [asdict(t) for t in timed],
    }
    js = out_dir / f"accuracy-{device}.json"
    tmp = js.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(js)
    return md


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--plans", default=DEFAULT_PLANS, help="plans separated by ';'")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="batch×seq pairs, e.g. 1x64,4x128")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--no-8b", action="store_true", help="skip timing the 8B simulations")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    plans = [p.strip() for p in args.plans.split(";") if p.strip()]
    sizes = parse_sizes(args.sizes)
    started = time.perf_counter()
    cases = run(models, plans, sizes, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    elapsed = time.perf_counter() - started
    command = "python benchmarks/accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(render(cases, "cpu", markdown=False, elapsed_s=elapsed))
    timed = [] if args.no_8b else time_8b()
    if timed:
        print(timed_lines(timed, markdown=False))
    if not args.no_write:
        path = write_results(cases, "cpu", args.out, command.strip(), elapsed, timed)
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
