"""``vram-advisor calibrate``: measure this GPU's device overheads once, for every later prediction."""

from __future__ import annotations

import argparse
from typing import Any

from advisor.catalog.calibration import calibration_dir
from advisor.cli.common import EXIT_OK, api, non_negative_int
from advisor.core.tables import table
from advisor.core.units import format_bytes

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    """Probe the GPU, print what was measured, and save the profile (unless --dry-run)."""
    profile = api.calibrate(args.gpu, device_index=args.device, save=not args.dry_run)
    rows = [
        ("GPU", f"{profile.gpu_key} ({profile.device_name})", ""),
        ("CUDA context", format_bytes(profile.context_bytes), "measured"),
        ("cuBLAS workspaces", format_bytes(profile.workspace_bytes), "measured"),
        ("allocator overhead", f"{profile.allocator_overhead_fraction:.1%} of allocated", "measured (probe pattern)"),
        ("driver / CUDA / torch", f"{profile.driver_version} / {profile.cuda_version} / {profile.torch_version}", ""),
        ("CUDA_MODULE_LOADING", profile.cuda_module_loading or "(driver default)", ""),
        ("PYTORCH_CUDA_ALLOC_CONF", profile.alloc_conf or "(default)", ""),
    ]
    print(table(("figure", "value", "source"), rows))
    for note in profile.notes:
        print(f"note: {note}")
    if args.dry_run:
        print("\n--dry-run: nothing saved")
    else:
        print(f"\nsaved to {calibration_dir() / (profile.gpu_key + '.json')}; predictions for "
              f"{profile.gpu_key} now use it (`vram-advisor gpus --calibrated` lists calibrations)")  # fmt: skip
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """The ``calibrate`` command's parser."""
    p = sub.add_parser(
        "calibrate",
        help="measure this CUDA GPU's context, workspaces and allocator overhead (needs a CUDA GPU)",
        description="A probe of a few seconds on the GPU here: the CUDA context, cuBLAS workspaces "
        "and caching-allocator overhead of this GPU + driver + torch. The profile is saved in the "
        "user's cache dir and every later prediction for that GPU uses it. Needs a CUDA GPU.",
    )
    p.add_argument("--gpu", help="the catalog key this card is (default: matched from the driver's name)")
    p.add_argument("--device", type=non_negative_int, default=0, help="CUDA device index (default 0)")
    p.add_argument("--dry-run", action="store_true", help="measure and print, save nothing")
    p.set_defaults(func=run)
