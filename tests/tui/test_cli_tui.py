"""``vram-advisor tui``: bad input is refused before the app opens (in-process, no terminal)."""

from __future__ import annotations

import pytest

from advisor.cli import main


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """The app is not run: each call of run_tui is recorded instead."""
    tui = pytest.importorskip("advisor.tui")
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(tui, "run_tui", lambda **kw: calls.append(kw))
    return calls


def test_unknown_gpu_is_the_same_one_line_error_as_other_commands(
    opened: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tui", "--gpu", "rtx-9999"]) == 1
    tui_err = capsys.readouterr().err
    assert tui_err.startswith("error: unknown GPU 'rtx-9999'; closest catalog entries: ")
    assert len(tui_err.splitlines()) == 2 and tui_err.splitlines()[1].startswith("  hint: ")  # message + hint
    assert opened == []  # refused before the app opens
    assert main(["simulate", "--model", "tiny-llama", "--gpu", "rtx-9999"]) == 1
    assert capsys.readouterr().err == tui_err


def test_missing_report_is_refused_and_a_known_gpu_opens_the_app(
    opened: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tui", "--report", "/no/such/report.json"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == "error: no report at /no/such/report.json"
    assert main(["tui", "--gpu", "T4", "--model", "tiny-gpt2"]) == 0
    assert opened == [{"model": "tiny-gpt2", "gpu": "T4", "report": None}]
