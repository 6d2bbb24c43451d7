"""README's cut table names every registered cut with what it saves and what models it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
HEADER = "| cut | parameters | saves | modelled by | what it does, and its limits |"
CELL = r"((?:\\\||[^|])*)"  # a cell, escaped pipes allowed


def _rows() -> list[tuple[str, ...]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADER)
    block = text[start : text.index("\n\n", start)].splitlines()[2:]
    rows = []
    for line in block:
        m = re.fullmatch(r"\|" + r"\|".join([CELL] * 5) + r"\|", line)
        assert m, line
        rows.append(tuple(c.strip() for c in m.groups()))
    return rows


def test_every_registered_cut_has_a_row_with_saves_and_engine() -> None:
    from advisor.plans.registry import CUTS

    named: dict[str, tuple[str, ...]] = {}
    for row in _rows():
        for name in re.findall(r"`([a-z0-9-]+)`", row[0]):
            named[name] = row
    assert set(CUTS) <= set(named), sorted(set(CUTS) - set(named))
    for name in CUTS:
        _, _, saves, engine, what = named[name]
        assert re.search(r"memory|compute|nothing", saves), (name, saves)
        assert re.search(r"measured|simulated", engine), (name, engine)
        assert len(what) > 20, name
