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
