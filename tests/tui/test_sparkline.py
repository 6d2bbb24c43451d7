"""The TUI's memory-over-time sparkline, driven with Textual's Pilot."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from textual.widgets import Sparkline, Static

from advisor.tui.app import VramAdvisorApp
from advisor.tui.views import sparkline_data
from profilers.timeline import build_timeline


def test_sparkline_data_keeps_the_peak() -> None:
    values = [1, 2, 3, 100, 3, 2, 1, 0, 5, 6]
    assert sparkline_data(values, 20) == [float(v) for v in values]
    assert sparkline_data(values, 3) == [100.0, 3.0, 6.0]  # runs of 4 (1,2,3,100 | 3,2,1,0 | 5,6): max of each


async def test_detail_pane_shows_the_timeline_as_a_sparkline() -> None:
    # a step of three allocations and their frees: live bytes 0, 10, 30, 60, 50, 30, 0
    events = [1, 2, 3, -1, -2, -3]
    sizes = {1: 10, 2: 20, 3: 30}
    roles = {1: "activation", 2: "activation", 3: "gradient"}
    tl = build_timeline(events, sizes, roles, [(0, "forward"), (3, "backward")], {3: "aten.mm.default"})
    app = VramAdvisorApp(model="tiny-llama", gpu="rtx-4090")
    async with app.run_test(size=(120, 36)) as pilot:
        spark = app.query_one("#timeline-spark", Sparkline)
        assert not spark.display  # nothing to show before a timeline
        app.action_tab("results")
        app.show_timeline(tl, "lora")
        await pilot.pause()
        assert spark.display
        assert list(spark.data or []) == [0.0, 10.0, 30.0, 60.0, 50.0, 30.0, 0.0]
        label = str(app.query_one("#timeline-label", Static).content)
        assert "peak 60 B" in label and "forward → backward" in label
        app.show_timeline(None)
        assert not spark.display
