"""On a CUDA GPU: measured memory of the built-in models against the advisor's prediction for it.

For each built-in tiny model × plan × size, the step is measured on the GPU (``advisor.profile``
with ``device="cuda"``: exact tensor peak, ``torch.cuda.max_memory_reserved``, NVML device-used
sampled through the whole trial) and predicted without it: simulated for a CUDA target
(``advisor.engines.simulate.simulate(..., target="cuda")``) plus the overhead model for this GPU
(``advisor.overheads.predict_gpu_need``: caching allocator replay, CUDA context, cuBLAS
workspaces, fused-attention scratch); the closed-form estimate's tensor peak is shown too.
Errors, in %, of:

* **tensor peak** — simulated (and estimated) against measured live tensor bytes;
* **reserved peak** — predicted ``max_memory_reserved`` (tensor peak + allocator overhead)
  against measured;
* **device used** — predicted total need against NVML's peak of this process (when the driver
  reports it), else NVML's device-used peak minus the device-used before this script touched
  CUDA (other processes and the driver's own share left out).

Without a CUDA device it prints why and exits 0. With one, it writes
``benchmarks/results/gpu-validation-<gpu-name-slug>.md`` (and ``.json``)::

    python benchmarks/gpu_validation.py [--models tiny-llama,tiny-gpt2,tiny-bert]
        [--plans "baseline;lora;grad-ckpt;bf16;lora+grad-ckpt;sgd"] [--sizes 1x64,4x128,2x256]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.accuracy import (
    DEFAULT_MODELS,
    DEFAULT_SIZES,
    RESULTS_DIR,
    machine_lines,
    parse_sizes,
    percent_error,
)

DEFAULT_PLANS = "baseline;lora;grad-ckpt;bf16;lora+grad-ckpt;sgd"
MIB = 2**20
# compute capability major (minor) → architecture, for GPUs the catalog does not know
_ARCH_BY_CAPABILITY = {(7, 0): "Volta", (7, 5): "Turing", (8, 0): "Ampere", (8, 6): "Ampere",
                       (8, 7): "Ampere", (8, 9): "Ada", (9, 0): "Hopper", (10, 0): "Blackwell",
                       (12, 0): "Blackwell"}  # fmt: skip


def slugify(name: str) -> str:
    """A file-name-safe slug of a GPU name: ``"NVIDIA H100 80GB HBM3"`` → ``"nvidia-h100-80gb-hbm3"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "gpu"


@dataclass
class GpuCase:
    """One model × plan × size on the GPU: measured figures and predictions (bytes)."""

    model: str
    plan: str
    batch_size: int
    seq_len: int
    status: str = "ok"
    reason: str | None = None
    measured: dict[str, int | None] = field(default_factory=dict)  # tensor, reserved, device
    predicted: dict[str, int | None] = field(default_factory=dict)  # tensor, estimate, reserved, device
    device_used_from: str = ""  # "process" (NVML per-process) or "device" (device minus idle)

    def error(self, predicted: str, measured: str) -> float | None:
        return percent_error(self.predicted.get(predicted), self.measured.get(measured))


COMPARISONS = (  # (label, predicted key, measured key)
    ("tensor peak (simulated)", "tensor", "tensor"),
    ("tensor peak (estimated)", "estimate", "tensor"),
    ("reserved peak", "reserved", "reserved"),
    ("device used", "device", "device"),
)


def case_rows(cases: Sequence[GpuCase]) -> list[list[str]]:
    def mib(n: int | None) -> str:
        return "–" if n is None else f"{n / MIB:.1f}"

    def pct(e: float | None) -> str:
        return "–" if e is None else f"{e:+.1f}%"

    rows = []
    for c in cases:
        row = [c.model, c.plan, f"{c.batch_size}×{c.seq_len}"]
        if c.status != "ok":
            rows.append([*row, c.status, *([""] * 10)])
            continue
        row += [
            mib(c.measured.get("tensor")),
            mib(c.predicted.get("tensor")),
            pct(c.error("tensor", "tensor")),
        ]
        row += [mib(c.predicted.get("estimate")), pct(c.error("estimate", "tensor"))]
        row += [
            mib(c.measured.get("reserved")),
            mib(c.predicted.get("reserved")),
            pct(c.error("reserved", "reserved")),
        ]
        row += [
            mib(c.measured.get("device")),
            mib(c.predicted.get("device")),
            pct(c.error("device", "device")),
        ]
        rows.append(row)
    return rows


CASE_HEADERS = (
    "model", "plan", "batch×seq",
    "tensor MiB", "simulated", "err", "estimated", "err",
    "reserved MiB", "predicted", "err",
    "device used MiB", "predicted", "err",
)  # fmt: skip


def summary_rows(cases: Sequence[GpuCase]) -> list[list[str]]:
    rows = []
    for label, pred, meas in COMPARISONS:
        errs = [e for c in cases if c.status == "ok" and (e := c.error(pred, meas)) is not None]
        if not errs:
            rows.append([label, "0", "–", "–", "–"])
            continue
        rows.append(
            [
                label,
                str(len(errs)),
                f"{statistics.median(abs(e) for e in errs):.2f}%",
                f"{max(abs(e) for e in errs):.2f}%",
                f"{statistics.mean(errs):+.2f}%",
            ]
        )
    return rows


SUMMARY_HEADERS = ("figure", "cases", "median abs error", "max abs error", "mean error (bias)")


def render(cases: Sequence[GpuCase], gpu_lines: Sequence[str], markdown: bool, command: str = "") -> str:
    from advisor.core.tables import table

    bullet = "- " if markdown else ""
    parts: list[str] = []
    if markdown:
        parts += [
            "# GPU validation: measured against predicted",
            "",
            "Produced by `benchmarks/gpu_validation.py`" + (f" (`{command}`)" if command else "") + ". "
            "Measured: `advisor.profile(device='cuda')`. Predicted: `advisor.simulate(target='cuda')` + "
            "`advisor.overheads.predict_gpu_need` for this GPU; estimated: `advisor.estimate.estimate_peak`. "
            "Errors are (predicted − measured) / measured.",
            "",
        ]
    parts += [bullet + line for line in (*gpu_lines, *machine_lines())]
    parts += ["", "## Summary" if markdown else "Summary", ""]
    parts.append(table(SUMMARY_HEADERS, summary_rows(cases), markdown=markdown))
    failed = [c for c in cases if c.status != "ok"]
    if failed:
        parts += [""] + [
            f"{bullet}{c.model} {c.plan} {c.batch_size}×{c.seq_len}: {c.status} — {c.reason}" for c in failed
        ]
    parts += ["", "## Cases" if markdown else "Cases", ""]
    parts.append(table(CASE_HEADERS, case_rows(cases), markdown=markdown))
    sources = sorted({c.device_used_from for c in cases if c.device_used_from})
    if sources:
        parts += ["", f"{bullet}device used measured from NVML: {', '.join(sources)}"]
    return "\n".join(parts) + "\n"


# -- on the GPU --------------------------------------------------------------------------------------


def _idle_device_used(index: int) -> int | None:
    """NVML device-used before this process creates a CUDA context (other processes, driver)."""
    from profilers import nvml

    if not nvml.status().available:
        return None
    reader = nvml.DeviceReader(index)
    return reader.device_used_bytes()


def _gpu_spec(name: str) -> Any:
    from advisor.catalog.gpus import get_gpu
    from advisor.core.errors import AdvisorError

    try:
        return get_gpu(name)
    except AdvisorError:
        return None


def run_case(
    model: str, plan_text: str, batch: int, seq: int, gpu: Any, architecture: str | None, idle: int | None
) -> GpuCase:
    import advisor
    from advisor.engines.estimate import estimate_peak
    from advisor.engines.overheads import predict_gpu_need
    from advisor.engines.simulate import simulate
    from advisor.plans.cuts import parse_plan

    plan = parse_plan(plan_text)
    case = GpuCase(model, plan.name, batch, seq)
    measured = advisor.profile(model, batch_size=batch, seq_len=seq, plan=plan, device="cuda", steps=2)
    if not measured.ok or measured.tensor_peak is None:
        case.status, case.reason = measured.status.value, measured.reason
        return case
    case.measured["tensor"] = measured.tensor_peak.peak_bytes
    case.measured["reserved"] = measured.cuda.max_reserved_bytes if measured.cuda else None
    if measured.nvml is not None:
        if measured.nvml.peak_process_used_bytes is not None:
            case.measured["device"] = measured.nvml.peak_process_used_bytes
            case.device_used_from = "process"
        elif idle is not None:
            case.measured["device"] = measured.nvml.peak_device_used_bytes - idle
            case.device_used_from = "device"
    sim = simulate(model, plan, batch, seq, target="cuda")
    if sim.ok and sim.tensor_peak is not None:
        need = predict_gpu_need(sim, gpu, architecture=architecture)
        case.predicted["tensor"] = sim.tensor_peak.peak_bytes
        case.predicted["reserved"] = need.reserved_bytes
        case.predicted["device"] = need.total_bytes
    else:
        case.reason = f"simulation: {sim.status.value} — {sim.reason}"
    try:
        case.predicted["estimate"] = estimate_peak(model, plan, batch_size=batch, seq_len=seq, target="cuda").peak_bytes
    except Exception as exc:  # the estimate is a side column: never lose the row for it
        case.reason = (case.reason or "") + f" estimate: {exc}"
    return case


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--plans", default=DEFAULT_PLANS, help="plans separated by ';'")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="batch×seq pairs, e.g. 1x64,4x128")
    ap.add_argument("--device-index", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    if not torch.cuda.is_available():
        from profilers import cuda as cuda_backend

        reason = cuda_backend.status().reason
        print(f"gpu_validation: skipped, no CUDA device here ({reason}); run it on a machine with a GPU")
        return 0

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    idle = _idle_device_used(args.device_index)  # before any CUDA context of ours
    props = torch.cuda.get_device_properties(args.device_index)
    name = props.name
    gpu = _gpu_spec(name)
    architecture = None if gpu is not None else _ARCH_BY_CAPABILITY.get((props.major, props.minor))
    gpu_lines = [
        f"GPU: {name} ({props.total_memory / 2**30:.1f} GiB, compute capability {props.major}.{props.minor}, "
        f"catalog entry: {gpu.key if gpu is not None else 'none, architecture ' + str(architecture)})",
        f"CUDA (torch build): {torch.version.cuda}; device used before this run (NVML): "
        + ("unknown" if idle is None else f"{idle / MIB:.0f} MiB"),
    ]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    plans = [p.strip() for p in args.plans.split(";") if p.strip()]
    sizes = parse_sizes(args.sizes)
    cases: list[GpuCase] = []
    total = len(models) * len(plans) * len(sizes)
    started = time.perf_counter()
    for model in models:
        for plan in plans:
            for batch, seq in sizes:
                print(f"[{len(cases) + 1}/{total}] {model} {plan} {batch}×{seq}", file=sys.stderr, flush=True)
                cases.append(run_case(model, plan, batch, seq, gpu, architecture, idle))
    gpu_lines.append(f"benchmark wall time: {time.perf_counter() - started:.0f} s")
    command = (
        "python benchmarks/gpu_validation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    ).strip()
    print(render(cases, gpu_lines, markdown=False))
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        slug = slugify(name)
        md = args.out / f"gpu-validation-{slug}.md"
        tmp = md.with_suffix(".md.tmp")
        tmp.write_text(render(cases, gpu_lines, markdown=True, command=command))
        tmp.replace(md)
        js = args.out / f"gpu-validation-{slug}.json"
        tmp = js.with_suffix(".json.tmp")
        payload = {
            "kind": "vram-advisor/gpu-validation",
            "schema_version": 1,
            "gpu": gpu_lines,
            "machine": machine_lines(),
            "cases": [asdict(c) for c in cases],
        }
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        tmp.replace(js)
        print(f"written to {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
