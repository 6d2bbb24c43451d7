"""Rendering raw numbers for people: bytes, seconds, rates. Nothing here computes figures."""

from __future__ import annotations

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
