"""Units: raw numbers rendered for people (bytes, seconds, rates) and read back from text
(memory sizes, counts, budgets). Nothing here computes figures."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from advisor.core.errors import InvalidInputError

__all__ = [
    "format_budget",
    "format_bytes",
    "format_count",
    "format_rate",
    "format_seconds",
    "parse_count",
    "parse_memory",
]

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int | float | None, digits: int = 1) -> str:
    """``1536`` → ``'1.5 KiB'``; binary units, as nvidia-smi and torch report."""
    if n is None:
        return "–"
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in _BINARY:
        if value < 1024 or unit == _BINARY[-1]:
            if unit == "B":
                return f"{sign}{int(value)} B"
            return f"{sign}{value:.{digits}f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_seconds(s: float | None) -> str:
    """Seconds in the most readable unit: ``0.0123`` → ``'12.3 ms'``; ``5400`` → ``'1.5 h'``."""
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 120:
        return f"{s:.2f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def format_rate(x: float | None, unit: str) -> str:
    """``12345.6, 'tok/s'`` → ``'12.3k tok/s'``."""
    if x is None:
        return "–"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{suffix} {unit}"
    return f"{x:.1f} {unit}"


def format_count(n: int | None) -> str:
    """``3548416`` → ``'3.55M'``."""
    if n is None:
        return "–"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def format_budget(memory_bytes: int) -> str:
    """Bytes as a budget that :func:`parse_memory` reads back exactly: ``"22GiB"``, ``"512MiB"``,
    ``"1000B"`` (the one budget formatter: GPU keys, ``--gpu-mem`` in commands, reports)."""
    if memory_bytes % 2**30 == 0:
        return f"{memory_bytes // 2**30}GiB"
    if memory_bytes % 2**20 == 0:
        return f"{memory_bytes // 2**20}MiB"
    return f"{memory_bytes}B"


_MEMORY_HINT = (
    "accepted forms: 22GiB, 22 GiB, 24000MiB, 16g or 16G (GiB), 16GB (10**9 bytes), "
    "or a plain whole number of bytes; the value must be > 0"
)

# -- reading sizes back --------------------------------------------------------------------

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 2**10, "ki": 2**10, "kib": 2**10, "kb": 10**3,
    "m": 2**20, "mi": 2**20, "mib": 2**20, "mb": 10**6,
    "g": 2**30, "gi": 2**30, "gib": 2**30, "gb": 10**9,
    "t": 2**40, "ti": 2**40, "tib": 2**40, "tb": 10**12,
}  # fmt: skip
_MEMORY_TEXT = re.compile(r"^\s*(?P<number>[+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*(?P<unit>[a-zA-Z]*)\s*$")


def parse_memory(text: str) -> int:
    """Bytes in a memory size such as "22GiB", "24000MiB", "16g" or "17179869184".

    Binary units (KiB, MiB, GiB, TiB, and the bare letters k/m/g/t) are powers of 2; decimal
    units (KB, MB, GB, TB) are powers of 10, so "16GB" is 16 * 10**9 bytes and "16GiB" is
    16 * 2**30. A number with no unit is whole bytes.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"memory size must be text, got {text!r}", hint=_MEMORY_HINT)
    match = _MEMORY_TEXT.match(text)
    unit = match["unit"].lower() if match else ""
    if match is None or unit not in _UNITS:
        raise InvalidInputError(f"cannot read memory size {text!r}", hint=_MEMORY_HINT)
    number = Fraction(match["number"])
    if unit in ("", "b") and number.denominator != 1:
        raise InvalidInputError(f"memory size {text!r} is a fraction of a byte", hint=_MEMORY_HINT)
    size_bytes = round(number * _UNITS[unit])
    if size_bytes <= 0:
        raise InvalidInputError(f"memory size {text!r} must be > 0 bytes", hint=_MEMORY_HINT)
    return size_bytes


def parse_count(text: str) -> int:
    """``"50M"`` → 50_000_000; accepts k, M, B/G, T suffixes (decimal) and plain numbers."""
    scales = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
    raw = text.strip().replace("_", "").replace(",", "")
    suffix = raw[-1:].lower() if raw[-1:].isalpha() else ""
    number = raw[:-1] if suffix else raw
    try:
        value = float(number) * scales[suffix]
    except (ValueError, KeyError):
        raise InvalidInputError(
            f"cannot read the count {text!r}", "e.g. 50M, 2.5B, 300k or 1000000"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"the count {text!r} must be > 0", "e.g. 50M, 2.5B, 300k")
    return round(value)
