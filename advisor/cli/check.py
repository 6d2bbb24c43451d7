"""``vram-advisor check CONFIG``: read your own training config (TrainingArguments, PEFT,
BitsAndBytesConfig, axolotl, torchtune, DeepSpeed, accelerate), simulate its step on a GPU (one rank
of a multi-GPU config's GPUs), say whether it fits, and
which plan one change away fits when it does not — written back in the config's own format."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from advisor.cli.common import (
    EXIT_ERROR,
    EXIT_NO_FIT,
    EXIT_OK,
    ProgressLine,
    add_margin_arg,
    add_quiet_arg,
    api,
    note_gpu,
    positive_int,
    report_configs,
    report_text,
    trial_view,
)
from advisor.cli.simulate import need_rows
from advisor.core.budget import DEFAULT_MARGIN
from advisor.core.io import SCHEMA_VERSION, environment
from advisor.core.tables import table, terminal_width, wrap_text
from advisor.core.units import format_bytes

__all__ = ["add_parser", "run"]

# the writer's section for each format read, to show the nearest plan the way the user wrote theirs
_WRITE_BACK = {
    "training-arguments": ("TrainingArguments",),
    "peft": ("LoraConfig",),
    "bitsandbytes": ("BitsAndBytesConfig",),
    "axolotl": ("axolotl",),
    "torchtune": ("torchtune",),
    "deepspeed": ("DeepSpeed", "accelerate"),
    "accelerate": ("accelerate", "DeepSpeed"),
}


def _snippets(check: Any) -> list[Any]:
    """The nearest plan's snippets in the formats the user's config came in."""
    nearest = check.nearest
    if nearest is None:
        return []
    plan = api.the_plan(nearest.plan)
    cp = api.ConfigPlan.for_plan(
        plan, check.config.batch_size, check.seq_len, check.model, gpus=check.config.gpus, nodes=check.config.nodes
    )
    wanted = {name for fmt in check.config.formats for name in _WRITE_BACK.get(fmt.value, ())}
    if "TrainingArguments" in wanted or "LoraConfig" in wanted:
        wanted |= {"LoraConfig", "BitsAndBytesConfig", "TrainingArguments"}
    return [s for s in report_configs.config_snippets(cp) if s.format in wanted]


def _text(check: Any, sources: list[str]) -> str:
    cp = check.config
    width = terminal_width()
    lines = [
        f"config: {', '.join(sources)} ({', '.join(f.value for f in cp.formats)})",
        f"model: {check.model}",
        f"plan understood: {cp.plan.name}",
        f"  micro-batch {cp.micro_batch_size} × accumulation {cp.accumulation_steps} = batch {cp.batch_size}, "
        f"sequence {check.seq_len}" + (" (not in the config: assumed; give --seq)" if check.seq_len_assumed else ""),
    ]
    if (cp.gpus or 1) > 1:
        lines.append(f"  {cp.gpus} GPUs over {cp.nodes} node{'s' if cp.nodes > 1 else ''}: the figures below are per rank (one GPU)")
    lines += [wrap_text(f"  {key} → {what}", width) for key, what in cp.mapped]
    if cp.ignored:
        lines.append(f"ignored ({len(cp.ignored)}, not in the prediction):")
        lines += [wrap_text(f"  {key}: {value}", width) for key, value in cp.ignored]
    else:
        lines.append("ignored: none")
    lines += [wrap_text(f"note: {n}", width) for n in cp.notes]
    result = check.result
    lines.append("")
    if not result.ok:
        lines.append(wrap_text(f"not simulated: {result.status.value}: {result.reason}", width))
        return "\n".join(lines)
    rows = need_rows(result, check.gpu, check.figures.margin)
    lines.append(table(trial_view.FIGURE_COLUMNS, rows, width=width))
    need = check.figures.need
    if need is not None and check.fits is not None:
        verdict = report_text.fit_text(need.total_bytes, check.gpu.memory_bytes, check.figures.margin, 2)
        lines += ["", f"verdict on {check.gpu.name}: {verdict}"]
    if check.fits:
        lines.append("nearest plan that fits: this one, as it is")
    elif check.neighbours is not None:
        nearest = check.nearest
        tried = len(check.neighbours.ranked) + len(check.neighbours.excluded)
        if nearest is None:
            lines.append(
                f"nearest plan that fits: none of the {tried} plans one change away; "
                "try `vram-advisor recommend` for plans further away"
            )
        else:
            need_text = format_bytes(nearest.need.total_bytes, 2) if nearest.need is not None else "–"
            lines.append(f"nearest plan that fits (best of {tried} one change away): {nearest.plan}")
            lines.append(wrap_text(f"  needs {need_text}; {nearest.why}", width))
            for s in _snippets(check):
                lines += ["", f"as {s.format}:", s.text]
                lines += [f"  # {n}" for n in s.notes]
    source = need.tensor_peak_source.value if need is not None else "simulated"
    peak = "simulated (exact)" if source == "simulated" else f"{source} (one rank's layout, from the simulated local step)"
    lines += ["", f"tensor peak: {peak}; GPU need: estimated"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Read the config(s), check them on the GPU, print the verdict (or JSON)."""
    api.check_margin(args.margin)
    note_gpu(args.gpu)
    line = ProgressLine(quiet=args.quiet)
    check = api.check_config(
        [Path(c) for c in args.config], model=args.model, gpu=args.gpu, gpu_mem=args.gpu_mem, seq_len=args.seq,
        micro_batch_size=args.batch, margin=args.margin, search=not args.no_search, progress=line,
        gpus=args.gpus, nodes=args.nodes,
    )  # fmt: skip
    line.done()
    if args.json:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "vram-advisor/check",
            "environment": environment(),
            "configs": list(args.config),
            **check.to_dict(),
            "write_back": {s.format: s.text for s in _snippets(check)},
        }
        print(json.dumps(doc, indent=2, sort_keys=False))
    else:
        print(_text(check, list(args.config)))
    if not check.result.ok:
        return EXIT_ERROR
    return EXIT_NO_FIT if check.fits is False else EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``check`` command's parser."""
    p = sub.add_parser(
        "check",
        help="check your own training config (TrainingArguments, PEFT, axolotl, torchtune, DeepSpeed, accelerate) on a GPU",
        description="Read a training config — a TrainingArguments JSON, a PEFT adapter_config.json, "
        "a BitsAndBytesConfig, an axolotl or a torchtune YAML, a DeepSpeed JSON or an accelerate config "
        "YAML (one rank of its GPUs simulated); several files for one run are read "
        "together — into a plan, simulate its step on the GPU, and say whether it fits (the same "
        "rule as simulate and recommend). When it does not, the plans one change away are ranked "
        "and the nearest that fits is shown in your config's own format. Keys that were not "
        "understood are listed, never dropped silently. Exit status: 0 fits, 3 does not fit, "
        "1 error (the config could not be read or simulated).",
    )
    p.add_argument("config", nargs="+", help="training config file(s): .json or .yml/.yaml")
    p.add_argument("--model", "-m", help="the model, where the config names none (a built-in name, Hub id or config.json)")
    p.add_argument("--gpu", "-g", help="target GPU from the catalog (default: rtx-4090)")
    p.add_argument("--gpu-mem", help="memory budget instead of (or overriding) the GPU's, e.g. 22GiB")
    p.add_argument(
        "--seq", "-s", type=positive_int, default=None,
        help=f"sequence length, where the config has none or to override it (default: the config's, else {512})",
    )  # fmt: skip
    p.add_argument(
        "--batch", "-b", type=positive_int, default=None,
        help="micro-batch (samples per forward pass), where the config has none or to override it; "
        "its accumulation is kept (default: the config's, else 1)",
    )  # fmt: skip
    p.add_argument(
        "--gpus", type=positive_int, default=None,
        help="GPUs in all for a multi-GPU config (DeepSpeed, accelerate), where it says none or to override it; "
        "one rank is simulated and the need is per GPU",
    )  # fmt: skip
    p.add_argument("--nodes", type=positive_int, default=None, help="machines the GPUs are spread over (default: the config's, else 1)")
    add_margin_arg(p, DEFAULT_MARGIN)
    p.add_argument("--no-search", action="store_true", help="do not look for the nearest plan that fits")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    add_quiet_arg(p)
    p.set_defaults(func=run)
