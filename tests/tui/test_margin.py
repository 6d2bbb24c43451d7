"""The TUI decides fits with the same rule and default margin as the CLI, and takes --margin."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from advisor import api
from advisor.cli import main
from advisor.core.errors import AdvisorError
from advisor.tui.app import VramAdvisorApp


def test_tui_margin_is_passed_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import advisor.tui

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(advisor.tui, "run_tui", lambda **kw: calls.append(kw))
    assert main(["tui", "--margin", "0.25"]) == 0
    assert main(["tui"]) == 0
    assert calls[0]["margin"] == 0.25 and "margin" not in calls[1]


async def test_the_apps_workload_keeps_the_margin() -> None:
    for app, want in ((VramAdvisorApp(margin=0.25), 0.25), (VramAdvisorApp(), api.DEFAULT_MARGIN)):
        async with app.run_test(size=(120, 36)):
            assert app._config().workload.margin == want
    with pytest.raises(AdvisorError, match=r"safety margin must be in \[0, 1\)"):
        VramAdvisorApp(margin=1.5)


def test_a_noisy_measured_speed_is_marked_in_the_table_and_the_detail() -> None:
    import dataclasses

    from advisor.catalog.gpus import custom_gpu
    from advisor.recommend import Mode, PlanVerdict, RankBy, Recommendation
    from advisor.recommend.workload import Workload
    from advisor.tui.views import detail_text, result_rows

    v = PlanVerdict("sgd", ("sgd",), {}, 24 << 30, 21 << 30, fits=True, tokens_per_s=900.0, rank=1)
    noisy = dataclasses.replace(v, plan="lora", cuts=("lora",), rank=2, noisy=True, timing_spread=0.5)
    rec = Recommendation("fake", custom_gpu(24 << 30), Workload(), RankBy.TIME, Mode.MEASURE, (v, noisy))
    speeds = [row.cells["speed"] for row in result_rows(rec)]
    assert speeds == ["900.0", "900.0 noisy"]
    assert "noisy: timed steps varied by 50%, not ranked on" in detail_text(rec, "lora")
    assert "noisy" not in detail_text(rec, "sgd")
