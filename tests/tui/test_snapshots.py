"""Snapshot tests: the main screens render as they did when reviewed (pytest-textual-snapshot).

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and review the SVGs in ``tests/tui/__snapshots__``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytest_textual_snapshot")

from advisor.tui.app import VramAdvisorApp

REPORT = Path("tests/tui/fixtures/tiny-llama-t4.json")  # relative: the status line shows it


def test_setup_screen_at_80x24(snap_compare: object) -> None:
    assert snap_compare(VramAdvisorApp(model="tiny-llama", gpu="rtx-4090"), terminal_size=(80, 24))  # type: ignore[operator]


def test_help_screen(snap_compare: object) -> None:
    assert snap_compare(VramAdvisorApp(), press=["question_mark"], terminal_size=(80, 24))  # type: ignore[operator]


def test_results_of_a_saved_report(snap_compare: object) -> None:
    assert snap_compare(VramAdvisorApp(report=REPORT), terminal_size=(120, 36))  # type: ignore[operator]


def test_results_of_a_saved_report_at_80x24(snap_compare: object) -> None:
    assert snap_compare(VramAdvisorApp(report=REPORT), terminal_size=(80, 24))  # type: ignore[operator]


def test_export_asks_before_replacing(snap_compare: object) -> None:
    # the fixture report is itself the file an export would replace; the dialog only asks
    app = VramAdvisorApp(report=REPORT, export_dir=REPORT.parent)
    assert snap_compare(app, press=["e"], terminal_size=(80, 24))  # type: ignore[operator]
