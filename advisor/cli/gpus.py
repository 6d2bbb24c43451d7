"""``vram-advisor gpus``: list the GPU catalog."""

from __future__ import annotations

import argparse
from typing import Any

from advisor.catalog.calibration import calibration_dir, list_calibrations
from advisor.catalog.gpus import family_aliases, list_gpus
from advisor.cli.common import EXIT_OK
from advisor.core.tables import Column, table, terminal_width
from advisor.core.units import format_bytes

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    """Print the catalog: memory, bf16, throughput, bandwidth and price of each GPU (with
    ``--calibrated``: the saved calibrations instead)."""
    if args.calibrated:
        return _calibrated()
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
    headers = (
        Column("key"), Column("name", priority=1), Column("memory"), Column("bf16", priority=3),
        Column("16-bit TFLOPS", priority=2), Column("fp32 TFLOPS", priority=4),
        Column("bandwidth", priority=3), Column("$/h"),
    )  # fmt: skip
    print(table(headers, rows, width=terminal_width()))
    print("\nFamily names choose the most rented variant (name another to use it):")
    for fam in family_aliases():
        print(f"  {fam.name:<9} = {fam.chosen.key:<10} also: {', '.join(o.key for o in fam.others)}")
    print("\nPrices are typical on-demand rates (estimates); override with --price. "
          "Any budget: --gpu-mem 22GiB.")  # fmt: skip
    return EXIT_OK


def _calibrated() -> int:
    found = list_calibrations()
    if not found:
        print(f"no calibrations in {calibration_dir()}; run `vram-advisor calibrate` on a CUDA GPU "
              "(predictions use the catalog's estimated overheads until then)")  # fmt: skip
        return EXIT_OK
    rows = [
        (p.gpu_key, p.device_name, format_bytes(p.context_bytes), format_bytes(p.workspace_bytes),
         f"{p.allocator_overhead_fraction:.1%}", p.torch_version, p.measured_at)
        for p in found
    ]  # fmt: skip
    headers = ("key", "device", "CUDA context", "workspaces", "allocator overhead", "torch", "measured")
    print(table(headers, rows, width=terminal_width()))
    print(f"\nmeasured by `vram-advisor calibrate`; kept in {calibration_dir()}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``gpus`` command's parser."""
    p = sub.add_parser("gpus", help="list the GPU catalog (memory, throughput, price)")
    p.add_argument("--calibrated", action="store_true", help="list the GPUs calibrated on this machine instead")
    p.set_defaults(func=run)
