"""How long until the command line answers? ``--help``, ``models`` and ``gpus`` in fresh processes.

Prints a table: the median (and min / max) wall time over N runs of each command, each run a new
Python process as a person typing it gets (``python -m advisor.cli …``), and whether that
process imported torch. The target is under 0.5 s each: none of these needs torch or
transformers, which only the commands that run a model import.

    .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from advisor.core.tables import table

COMMANDS = (("--help",), ("models",), ("gpus",))
ROOT = Path(__file__).resolve().parent.parent

# run the command in-process after noting the time, then say whether torch came in
_PROBE = (
    "import sys, runpy; sys.argv = ['vram-advisor', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('advisor.cli', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "sys.stderr.write('torch imported: %s\\n' % ('torch' in sys.modules))\n"
)


def time_command(args: tuple[str, ...], runs: int) -> tuple[list[float], bool]:
    """Wall times of ``runs`` fresh processes running ``vram-advisor ARGS``, and whether torch loaded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    times: list[float] = []
    torch_loaded = False
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True
        )
        times.append(time.perf_counter() - t0)
        torch_loaded = torch_loaded or "torch imported: True" in done.stderr
    return times, torch_loaded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per command (default: %(default)s)")
    args = ap.parse_args()
    rows = []
    for command in COMMANDS:
        times, torch_loaded = time_command(command, args.runs)
        rows.append(
            (
                "vram-advisor " + " ".join(command),
                f"{statistics.median(times):.2f} s",
                f"{min(times):.2f} s",
                f"{max(times):.2f} s",
                "yes" if torch_loaded else "no",
            )
        )
    print(f"start-up, {args.runs} fresh processes each (python {sys.version.split()[0]}):\n")
    print(table(("command", "median", "min", "max", "imports torch"), rows))


if __name__ == "__main__":
    main()
