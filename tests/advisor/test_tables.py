"""Plain tables that fit a width: columns left out by priority, wrapping cells, wrapped text."""

from __future__ import annotations

import io

import pytest

from advisor.core.tables import MIN_WIDTH, Column, table, terminal_width, wrap_text

HEADERS = (
    Column("#"),
    Column("plan"),
    Column("extra", priority=2),
    Column("speed", priority=1),
    Column("note", wrap=True, min_width=10),
)
ROWS = [
    ("1", "lora+grad-ckpt", "eeeeeeeeeeeeeeeeeeee", "1.2k tok/s", "fine"),
    ("2", "sgd", "e", "900 tok/s", "a note long enough to need three lines at ten"),
]


def test_without_a_width_the_table_is_as_before() -> None:
    assert table(("a", "bb"), [("xyz", "1")]) == "a    bb\n---  --\nxyz  1"
    assert table(HEADERS, ROWS) == table([c.header for c in HEADERS], ROWS)
    assert table(HEADERS, ROWS, width=500) == table(HEADERS, ROWS)


def test_wrapping_columns_shrink_before_any_column_is_left_out() -> None:
    full = table(HEADERS, ROWS).splitlines()
    width = max(len(x) for x in full) - 10  # the note is 46 wide: shrinking it by 10 is enough
    lines = table(HEADERS, ROWS, width=width).splitlines()
    assert max(len(x) for x in lines) <= width
    assert lines[0].split() == ["#", "plan", "extra", "speed", "note"]
    assert "(not shown" not in "\n".join(lines)
    assert lines[-2].endswith("900 tok/s   a note long enough to need three")  # 36 wide
    assert lines[-1] == " " * 53 + "lines at ten"  # the rest of the note, under its column


def test_the_least_important_columns_go_first_and_are_named() -> None:
    # essentials: # (1) plan (14) note (10, wrapped) = 25 + 2 separators = 29; speed adds 12
    lines = table(HEADERS, ROWS, width=41).splitlines()
    assert lines[0].split() == ["#", "plan", "speed", "note"]
    assert lines[-1] == "(not shown at this width: extra)"
    assert max(len(x) for x in lines) <= 41
    lines = table(HEADERS, ROWS, width=40).splitlines()
    assert lines[0].split() == ["#", "plan", "note"]
    assert lines[-1] == "(not shown at this width: extra, speed)"


def test_markdown_keeps_every_column() -> None:
    md = table(HEADERS, ROWS, markdown=True, width=20)
    assert md.splitlines()[0] == "| # | plan | extra | speed | note |"


def test_as_a_last_resort_even_essential_cells_wrap_at_separators() -> None:
    rows = [("1", "lora(r=16,targets=q_proj|v_proj)+grad-ckpt+bf16-weights")]
    lines = table((Column("#"), Column("plan")), rows, width=26).splitlines()
    assert max(len(x) for x in lines) <= 26
    assert [x[3:] for x in lines[2:]] == ["lora(r=16,", "targets=q_proj|v_proj)+", "grad-ckpt+bf16-weights"]


def test_wrap_text_keeps_the_indent_and_every_character() -> None:
    text = "  pruned-plan: frozen-emb is redundant under lora (lora already freezes the embeddings)"
    out = wrap_text(text, 40)
    assert all(len(x) <= 40 for x in out.splitlines())
    assert [x[:4] for x in out.splitlines()[1:]] == ["    "] * (len(out.splitlines()) - 1)
    assert " ".join(x.strip() for x in out.splitlines()) == text.strip()
    assert wrap_text(text, None) == text


def test_terminal_width_follows_columns_and_is_unlimited_for_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "93")
    assert terminal_width(io.StringIO()) == 93
    monkeypatch.setenv("COLUMNS", "12")
    assert terminal_width() == MIN_WIDTH
    monkeypatch.delenv("COLUMNS")
    assert terminal_width(io.StringIO()) is None  # not a terminal: no limit
