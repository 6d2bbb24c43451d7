"""Plain aligned and Markdown tables of strings, and text that fits a terminal's width.

A plain table given a ``width`` keeps within it: each :class:`Column` says how much it matters
(``priority`` 0 is always shown; higher numbers are left out first) and whether its cells may
wrap onto more lines (``wrap``, for long text such as notes). Columns left out are named under
the table. Markdown tables are never narrowed: they keep every column for the report files.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_WIDTH", "Column", "table", "terminal_width", "wrap_text"]

MIN_WIDTH = 40  # narrower than this, a terminal is taken as this wide (tables stay readable)
_SEP = "  "


@dataclass(frozen=True)
class Column:
    """A table column: its header, how much it matters, and whether its cells may wrap.

    ``priority`` 0 columns are always shown; when a table is too wide the columns with the
    highest priority number are left out first (ties: the rightmost first). ``wrap`` columns
    shrink to no less than ``min_width`` characters, their cells wrapping onto more lines,
    before any column is left out.
    """

    header: str
    priority: int = 0
    wrap: bool = False
    min_width: int = 16


def terminal_width(stream: Any = None) -> int | None:
    """The width to render for: ``COLUMNS`` when set, else the terminal's width when ``stream``
    (default stdout) is a terminal, else ``None`` (a pipe or a file: no limit)."""
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return max(MIN_WIDTH, int(env))
    stream = stream if stream is not None else sys.stdout
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        tty = False
    if not tty:
        return None
    return max(MIN_WIDTH, shutil.get_terminal_size().columns)


# break after a space or a separator of plan, cut and list text ("lora+grad-ckpt", "a|b", "x, y")
_BREAK = re.compile(r"(?<=[ +;,|/])")


def _wrap_cell(text: str, width: int, later: int | None = None) -> list[str]:
    """``text`` in lines of at most ``width`` characters (``later`` for the lines after the
    first), broken after spaces and separators where possible, else hard."""
    later = width if later is None else later
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""

    def room() -> int:
        return width if not lines else later

    for token in _BREAK.split(text):
        if len(line) + len(token.rstrip()) <= room():
            line += token
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = token
        while len(line.rstrip()) > room():
            cut = room()
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def wrap_text(text: str, width: int | None, indent: str = "  ") -> str:
    """Each line of ``text`` wrapped to ``width`` (``None``: as it is); a wrapped line goes on
    with its own leading spaces plus ``indent``."""
    if width is None:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip(" "))]
        more = lead + indent
        parts = _wrap_cell(line[len(lead) :], max(1, width - len(lead)), max(1, width - len(more)))
        out.append(lead + parts[0])
        out += [more + part for part in parts[1:]]
    return "\n".join(out)


def _columns(headers: Sequence[str | Column]) -> list[Column]:
    return [h if isinstance(h, Column) else Column(h) for h in headers]


def _layout(cols: list[Column], natural: list[int], width: int) -> tuple[list[int], list[int]]:
    """(kept column indices, their widths) that fit ``width``."""

    def least(i: int) -> int:
        return min(natural[i], max(cols[i].min_width, len(cols[i].header))) if cols[i].wrap else natural[i]

    def span(kept: list[int], widths: dict[int, int]) -> int:
        return sum(widths[i] for i in kept) + len(_SEP) * (len(kept) - 1)

    lows = {i: least(i) for i in range(len(cols))}
    kept = [i for i, c in enumerate(cols) if c.priority == 0]
    optional = sorted((i for i, c in enumerate(cols) if c.priority > 0), key=lambda i: (cols[i].priority, -i))
    for i in optional:  # most important first; a narrow later one may fit where a wide one did not
        if span(sorted([*kept, i]), lows) <= width:
            kept = sorted([*kept, i])
    widths = {i: lows[i] for i in kept}
    spare = width - span(kept, widths)
    for i in kept:  # give the wrapping columns back what room there is, left to right
        if spare <= 0:
            break
        grow = min(spare, natural[i] - widths[i])
        widths[i] += grow
        spare -= grow
    while span(kept, widths) > width:  # still too wide: narrow the widest column
        widest = max(kept, key=lambda i: widths[i])
        if widths[widest] <= 4:
            break
        widths[widest] -= 1
    return kept, [widths[i] for i in kept]


def table(
    headers: Sequence[str | Column],
    rows: Sequence[Sequence[str]],
    markdown: bool = False,
    width: int | None = None,
) -> str:
    """A plain aligned table, or a Markdown one (every column, never narrowed).

    With ``width``, a plain table keeps each line within it: wrapping columns shrink first, then
    the least important columns are left out (named in a line under the table), then, as a last
    resort, the widest columns wrap.
    """
    cols = _columns(headers)
    if markdown:
        lines = ["| " + " | ".join(c.header for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    natural = [max(len(c.header), *(len(r[i]) for r in rows)) if rows else len(c.header) for i, c in enumerate(cols)]
    kept, widths = list(range(len(cols))), natural
    if width is not None and sum(natural) + len(_SEP) * (len(cols) - 1) > width:
        kept, widths = _layout(cols, natural, width)

    def lines_of(cells: Sequence[str]) -> list[str]:
        wrapped = [_wrap_cell(cells[i], w) for i, w in zip(kept, widths, strict=True)]
        height = max(len(c) for c in wrapped)
        out = []
        for k in range(height):
            parts = [(c[k] if k < len(c) else "").ljust(w) for c, w in zip(wrapped, widths, strict=True)]
            out.append(_SEP.join(parts).rstrip())
        return out

    out = lines_of([c.header for c in cols])
    out.append(_SEP.join("-" * w for w in widths))
    for r in rows:
        out += lines_of(r)
    left_out = [cols[i].header for i in range(len(cols)) if i not in kept]
    if left_out and width is not None:
        out.append(wrap_text(f"(not shown at this width: {', '.join(left_out)})", width))
    return "\n".join(out)
