"""``vram-advisor convergence``: fine-tune vs train from scratch, loss curves side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advisor.cli.common import (
    EXIT_OK,
    MODEL_TRUST_HELP,
    ProgressLine,
    add_quiet_arg,
    api,
    check_outputs,
    learning_rate,
    positive_int,
    report,
)
from advisor.core.io import SCHEMA_VERSION, environment, write_json
from advisor.core.tables import terminal_width
from advisor.core.units import format_bytes, format_count

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    """Run the probe, print both curves, and write JSON when asked."""
    check_outputs(args.json)
    line = ProgressLine(f"{args.model}: ", quiet=args.quiet)
    if args.prune:
        return _run_pruning(args, line)
    result = api.convergence_probe(
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
    print(report.convergence_text(result, width=terminal_width()))
    if args.json:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "vram-advisor/convergence",
            "environment": environment(),
            "result": result.to_dict(),
        }
        print(f"\nwrote {write_json(args.json, doc)}")
    return EXIT_OK


def _run_pruning(args: argparse.Namespace, line: ProgressLine) -> int:
    """``--prune``: the same model unpruned and pruned, trained on the same batches."""
    result = api.pruning_probe(
        args.model, args.prune, steps=args.steps, batch_size=args.batch, seq_len=args.seq, lr=args.lr,
        seed=args.seed, device=args.device, progress=line,
    )  # fmt: skip
    line.done()
    print(f"Pruning probe: {result.model}, {result.plan}, {result.steps} steps each on {result.data}\n")
    print(
        f"parameters: {format_count(result.params_before)} → {format_count(result.params_after)} "
        f"({format_bytes(result.param_bytes_saved)} of weights removed; their gradients and optimizer "
        "state go with them)"
    )
    print(
        f"final loss (mean of the last steps): unpruned {result.unpruned.final_loss:.3f}, "
        f"pruned {result.pruned.final_loss:.3f}, change {result.loss_change:+.3f} (measured)"
    )
    if args.json:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "vram-advisor/pruning-probe",
            "environment": environment(),
            "result": result.to_dict(),
        }
        print(f"\nwrote {write_json(args.json, doc)}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``convergence`` command's parser."""
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
        "module.path:factory loading your checkpoint (default: %(default)s). " + MODEL_TRUST_HELP,
    )  # fmt: skip
    p.add_argument("--batch", "-b", type=positive_int, default=4, help="batch size (default: %(default)s)")
    p.add_argument("--seq", "-s", type=positive_int, default=64, help="sequence length (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=30, help="steps per run (default: %(default)s)")
    p.add_argument("--lr", type=learning_rate, default=1e-4, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--threshold", type=float, help="loss threshold (default: the random-init run's best)")
    p.add_argument("--text", type=Path, help="a UTF-8 text file to train on (default: built-in sample)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, masking and dropout (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument(
        "--prune", metavar="CUT",
        help="instead: train the model unpruned and pruned by this cut (e.g. 'prune(amount=0.3)') "
        "on the same batches and report the loss change beside the parameters removed",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the result as JSON to this path")
    add_quiet_arg(p)
    p.set_defaults(func=run)
