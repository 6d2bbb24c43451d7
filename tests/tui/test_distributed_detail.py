"""The detail pane of a distributed verdict shows one rank's memory and what it sends per step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.text import Text

pytest.importorskip("textual")

from textual.widgets import DataTable, Static

from advisor.tui.app import VramAdvisorApp

SENT = 5 * 2**30  # bytes the rank sends per step: "5.00 GiB"
BUFFERS = 3 * 2**20  # communication buffers at the peak: "3.00 MiB"


async def test_detail_of_a_distributed_verdict_shows_per_rank_memory_and_communication(
    tmp_path: Path, saved_report: Path
) -> None:
    doc = json.loads(saved_report.read_text())
    for verdict in doc["ranked"]:  # every verdict one rank of 8 under FSDP2 on 2 nodes
        verdict["trial"]["distributed"] = {
            "world_size": 8, "rank": 0, "strategy": "fsdp2", "nodes": 2,
            "communication_buffer_bytes": BUFFERS, "comm_bytes_per_step": SENT, "provenance": "simulated",
        }  # fmt: skip
    report = tmp_path / "distributed.json"
    report.write_text(json.dumps(doc))
    peak = doc["ranked"][0]["trial"]["tensor_peak"]["peak_bytes"]
    app = VramAdvisorApp(report=report)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        table = app.query_one("#results-table", DataTable)
        table.focus()
        table.move_cursor(row=0)
        await pilot.pause()
        detail = Text.from_markup(str(app.query_one("#detail-body", Static).content)).plain
    assert "per rank (fsdp2, rank 0 of 8 on 2 nodes)" in detail
    assert "3.00 MiB of it communication buffers" in detail
    assert "5.00 GiB sent per step" in detail
    from advisor.core.units import format_bytes

    assert f"memory: {format_bytes(peak, 2)} tensor peak" in detail


async def test_single_gpu_detail_has_no_per_rank_lines(saved_report: Path) -> None:
    app = VramAdvisorApp(report=saved_report)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        table = app.query_one("#results-table", DataTable)
        table.focus()
        table.move_cursor(row=0)
        await pilot.pause()
        detail = str(app.query_one("#detail-body", Static).content)
    assert "per rank" not in detail and "budget" in detail
