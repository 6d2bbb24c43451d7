"""The TUI, driven headless with Textual's Pilot as a person would use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.text import Text

pytest.importorskip("textual")

from textual.widgets import DataTable, Input, OptionList, SelectionList, Static

from advisor.tui.app import VramAdvisorApp

SIZE = (120, 36)


async def _wait_for_sweep(app: VramAdvisorApp, pilot: object, seconds: float = 240) -> None:
    waited = 0.0
    while waited < seconds:
        await pilot.pause(0.2)  # type: ignore[attr-defined]
        waited += 0.2
        if not app.session.running and app.session.last is not None and not app.workers:
            return
    raise AssertionError(f"the sweep did not finish in {seconds} s")


def _rows(app: VramAdvisorApp) -> list[list[str]]:
    table = app.query_one("#results-table", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def _status(app: VramAdvisorApp) -> str:
    """The status line as the person reads it (markup rendered away)."""
    return Text.from_markup(str(app.query_one("#status-bar", Static).content)).plain


async def _select_cuts(app: VramAdvisorApp, names: list[str]) -> None:
    cuts = app.query_one("#cuts", SelectionList)
    cuts.deselect_all()
    for name in names:
        cuts.select(name)


async def test_pick_gpu_run_sweep_select_row_and_export(tmp_path: Path) -> None:
    app = VramAdvisorApp(model="tiny-llama", gpu="rtx-4090", export_dir=tmp_path, check_top=0)
    async with app.run_test(size=SIZE) as pilot:
        # pick a GPU by typing into the filter and choosing the first match
        await pilot.click("#gpu-filter")
        await pilot.press(*"l4")
        options = app.query_one("#gpu-list", OptionList)
        assert options.option_count >= 1
        assert "l4" in str(options.get_option_at_index(0).id)
        options.focus()
        options.highlighted = 0
        await pilot.press("enter")
        assert app.gpu.key == "l4"

        await _select_cuts(app, ["lora", "grad-ckpt"])
        app.query_one("#seq", Input).value = "64"
        await pilot.press("r")
        await _wait_for_sweep(app, pilot)
        rows = _rows(app)
        plans = [r[1].rstrip(" ★") for r in rows]
        assert {frozenset(p.split("+")) for p in plans} == {
            frozenset({"baseline"}), frozenset({"lora"}), frozenset({"grad-ckpt"}), frozenset({"lora", "grad-ckpt"})
        }
        fits = [r[2] for r in rows]
        # every plan that fits is ranked above every plan that does not
        assert set(fits) <= {"yes", "no"} and fits == sorted(fits, key=lambda f: f != "yes")
        assert "done: 4 plans" in _status(app)

        # select the second row: its detail shows the breakdown against the budget
        table = app.query_one("#results-table", DataTable)
        table.focus()
        await pilot.press("down")
        await pilot.pause()
        detail = str(app.query_one("#detail-body", Static).content)
        assert plans[1] in detail
        assert "optimizer" in detail and "budget" in detail and "trainable" in detail

        await pilot.press("e")
        await pilot.pause()
        json_file = tmp_path / "tiny-llama-l4.json"
        md_file = tmp_path / "tiny-llama-l4.md"
        assert json_file.is_file() and md_file.is_file()
        assert list(tmp_path.glob("tiny-llama-l4*.svg"))
        doc = json.loads(json_file.read_text())
        assert doc["kind"] == "vram-advisor/recommendation" and doc["schema_version"] >= 1
        assert "tiny-llama" in md_file.read_text()


async def test_changing_gpu_reranks_without_new_trials(tmp_path: Path) -> None:
    app = VramAdvisorApp(model="tiny-gpt2", gpu="rtx-4090", export_dir=tmp_path, check_top=0)
    async with app.run_test(size=SIZE) as pilot:
        await _select_cuts(app, ["sgd"])
        app.query_one("#seq", Input).value = "32"
        await pilot.press("r")
        await _wait_for_sweep(app, pilot)
        trials_before = dict(app.session.trials)
        budget_before = app.session.last.budget_bytes
        from advisor.catalog.gpus import get_gpu

        app.set_gpu(get_gpu("h100-sxm"))  # a full name: "h100" alone is ambiguous (pcie or sxm)
        await pilot.pause()
        assert app.session.last.gpu.key == "h100-sxm"
        assert app.session.last.budget_bytes > budget_before
        assert app.session.trials == trials_before  # nothing ran again
        assert len(_rows(app)) == 2


async def test_bad_model_name_shows_an_error_and_the_app_stays_up() -> None:
    app = VramAdvisorApp(model="no-such-model", check_top=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert "unknown model 'no-such-model'" in _status(app)
        assert app.is_running and not app.session.running
        # and a bad number too
        app.query_one("#model", Input).value = "tiny-llama"
        app.query_one("#batch", Input).value = "0"
        await pilot.press("r")
        await pilot.pause()
        assert "micro-batch" in _status(app)


async def test_open_a_saved_report_and_bad_report_path(tmp_path: Path, saved_report: Path) -> None:
    app = VramAdvisorApp(report=saved_report)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        rows = _rows(app)
        assert rows and rows[0][0] == "1"
        assert app.query_one("#tabs").active == "results"
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": "world"}')
    app = VramAdvisorApp(report=bad)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "not a vram-advisor report" in _status(app)
        assert _rows(app) == []


async def test_help_screen_opens_and_closes() -> None:
    app = VramAdvisorApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.__class__.__name__ != "HelpScreen"


# -- keys (issue 18): letters act outside text fields, Esc leaves a field ----------------------


async def test_letter_keys_type_into_a_field_and_act_once_esc_leaves_it() -> None:
    app = VramAdvisorApp(model="tiny-llama", gpu="rtx-4090", check_top=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.focused is app.query_one("#run")  # the app opens where `r` runs
        model = app.query_one("#model", Input)
        model.focus()
        await pilot.press("end", "2", "t")
        # typed into the field, not taken as "Results tab" and "rank by cost"
        assert model.value == "tiny-llama2t"
        assert app.query_one("#tabs").active == "setup" and app.rank_by == "time"
        assert "escape" in app.screen.active_bindings  # the footer offers "esc Leave field"
        assert "r" not in app.screen.active_bindings  # and hides the keys that would be typed
        await pilot.press("backspace", "backspace", "escape")
        await pilot.pause()
        assert not isinstance(app.focused, Input)
        assert "escape" not in app.screen.active_bindings and "r" in app.screen.active_bindings
        await pilot.press("t")
        assert app.rank_by == "cost" and model.value == "tiny-llama"
        await pilot.press("2")
        await pilot.pause()
        assert app.query_one("#tabs").active == "results"
        assert app.focused is app.query_one("#results-table")
        await pilot.press("1")
        await pilot.pause()
        assert app.query_one("#tabs").active == "setup"


@pytest.mark.slow  # runs a small simulated sweep
async def test_esc_then_r_runs_instead_of_typing_r(tmp_path: Path) -> None:
    app = VramAdvisorApp(model="tiny-llama", gpu="rtx-4090", export_dir=tmp_path, check_top=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await _select_cuts(app, ["sgd"])
        app.query_one("#seq", Input).value = "32"
        model = app.query_one("#model", Input)
        model.focus()
        await pilot.press("end", "escape", "r")
        assert model.value == "tiny-llama"
        await _wait_for_sweep(app, pilot)
        assert "done: 2 plans" in _status(app)
        # after the run the table has the focus: the arrow keys move the selected row at once
        table = app.query_one("#results-table", DataTable)
        assert app.focused is table and table.cursor_row == 0
        first = str(app.query_one("#detail-body", Static).content).splitlines()[0]
        await pilot.press("down")
        await pilot.pause()
        assert table.cursor_row == 1
        second = str(app.query_one("#detail-body", Static).content).splitlines()[0]
        assert second != first
        await pilot.press("up")
        await pilot.pause()
        assert table.cursor_row == 0


async def test_enter_in_the_gpu_filter_picks_the_first_match() -> None:
    app = VramAdvisorApp(model="tiny-llama", gpu="rtx-4090", check_top=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        assert app.focused is app.query_one("#gpu-filter")
        await pilot.press(*"l4", "enter")
        await pilot.pause()
        assert app.gpu.key == "l4"
        assert "target: l4" in _status(app)
        # several matches: Enter takes the first listed, and the status says there are more
        gpu_filter = app.query_one("#gpu-filter", Input)
        gpu_filter.value = ""
        await pilot.press(*"a100", "enter")
        await pilot.pause()
        options = app.query_one("#gpu-list", OptionList)
        assert app.gpu.key == options.get_option_at_index(0).id
        assert app.gpu.key.startswith("a100") and "1 more match" in _status(app)
        # ↓ goes from the filter into the list, and Enter there picks the highlighted one
        await pilot.press("down")
        await pilot.pause()
        assert app.focused is options
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.gpu.key == options.get_option_at_index(1).id != options.get_option_at_index(0).id
        # no match: nothing changes and the status says so
        before = app.gpu.key
        gpu_filter.focus()
        gpu_filter.value = ""
        await pilot.press(*"zzz", "enter")
        await pilot.pause()
        assert app.gpu.key == before and "no GPU matches 'zzz'" in _status(app)


async def test_help_says_how_to_close_it_and_q_closes_it_without_quitting() -> None:
    from textual.widgets import Markdown

    from advisor.tui.help import HelpScreen

    app = VramAdvisorApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one(Markdown).source
        assert text.splitlines()[2] == "**Esc**, **q** or **?** closes this help; ↑ ↓ and PgUp PgDn scroll it."
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen) and app.is_running
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


# -- GPU names (issue 18): an unknown name is an error, never a silent first catalog entry ----


async def test_unknown_gpu_name_is_shown_and_nothing_runs_until_one_is_picked() -> None:
    app = VramAdvisorApp(model="tiny-llama", gpu="rtx-9999", check_top=0)
    assert app.gpu is None  # not rtx-3080, the first catalog entry
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert _status(app).startswith("error: unknown GPU 'rtx-9999'; closest catalog entries: ")
        assert _status(app).endswith("— pick a GPU in the list")
        assert app.sub_title == "target: none — pick a GPU (g)"
        assert app.focused is app.query_one("#gpu-filter")
        await pilot.press("escape", "r")
        await pilot.pause()
        assert "no target GPU chosen" in _status(app) and not app.session.running
        await pilot.press("g", *"t4", "enter")
        await pilot.pause()
        assert app.gpu is not None and app.gpu.key == "t4"
        assert app.sub_title == "target: t4 (16 GiB)"


# -- rendering (issue 18): 80 columns, state without colour, values as the CLI prints them ----


def _table_width(app: VramAdvisorApp) -> int:
    table = app.query_one("#results-table", DataTable)
    return sum(col.get_render_width(table) for col in table.columns.values())


def _headers(app: VramAdvisorApp) -> list[str]:
    table = app.query_one("#results-table", DataTable)
    return [str(col.label) for col in table.columns.values()]


async def test_results_fit_80_columns_and_wider_terminals_get_every_column(saved_report: Path) -> None:
    app = VramAdvisorApp(report=saved_report)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert _headers(app) == ["#", "plan", "fits", "need", "max batch", "tok/s", "time", "cost"]
        assert _table_width(app) <= 79  # 80 less the scrollbar
        assert "memory figures: " in str(app.query_one("#summary", Static).content)  # the dropped source
        await pilot.resize_terminal(130, 36)
        await pilot.pause()
        assert _headers(app) == [
            "#", "plan", "fits", "need", "of budget", "max batch", "tok/s", "train%", "time", "cost", "source",
        ]  # fmt: skip
        assert _table_width(app) <= 129


def test_fit_columns_drops_by_rank_then_cuts_the_plan_name_keeping_its_star() -> None:
    from advisor.tui.views import COLUMNS, ResultRow, fit_columns, plan_cell

    cells = {c.key: "x" * 6 for c in COLUMNS}
    cells.update({"#": "1", "plan": "freeze-layers+bf16-weights ★"})
    rows = [ResultRow("freeze-layers+bf16-weights", cells, True)]
    everything = sum(max(len(c.header), len(cells[c.key])) + 2 for c in COLUMNS)
    shown, plan_width = fit_columns(rows, everything)
    assert [c.key for c in shown] == [c.key for c in COLUMNS] and plan_width == 28
    shown, plan_width = fit_columns(rows, everything - 1)  # train% (drop 3) goes first
    assert "train" not in [c.key for c in shown] and len(shown) == len(COLUMNS) - 1
    shown, plan_width = fit_columns(rows, 70)
    assert [c.key for c in shown] == ["#", "plan", "fits", "need", "batch", "speed", "time", "cost"]
    # the others take 3 ("#") + 11 ("max batch") + 5 × 8 = 54 cells with padding: the plan has 70 − 54 − 2
    assert plan_width == 14
    assert plan_cell(cells["plan"], plan_width) == "freeze-laye… ★"
    assert plan_cell("lora ★", plan_width) == "lora ★"
    _, plan_width = fit_columns(rows, 20)
    assert plan_width == 12  # never below MIN_PLAN_WIDTH: the table scrolls instead


async def test_cut_list_and_mode_read_without_colour() -> None:
    app = VramAdvisorApp(model="tiny-llama", gpu="rtx-4090", check_top=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await _select_cuts(app, ["lora"])
        await pilot.pause()
        cuts = app.query_one("#cuts", SelectionList)
        lines = [cuts.render_line(y).text.strip() for y in range(3)]
        assert lines[0].startswith("[ ] scratch") and lines[1].startswith("[x] lora") and lines[2].startswith("[ ] qlora")
        simulate, measure = app.query_one("#simulate"), app.query_one("#measure")
        assert str(simulate.render()).startswith("(•) Simulate") and str(measure.render()).startswith("( ) Measure")
        measure.value = True
        await pilot.pause()
        assert str(simulate.render()).startswith("( ) Simulate") and str(measure.render()).startswith("(•) Measure")


@pytest.mark.slow  # runs a small simulated sweep
async def test_no_fit_shows_none_and_tiny_costs_show_below_a_cent(tmp_path: Path) -> None:
    app = VramAdvisorApp(model="tiny-llama", gpu="t4", export_dir=tmp_path, check_top=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await _select_cuts(app, ["sgd"])
        for field, value in (("#seq", "32"), ("#batch", "2"), ("#tokens", "20k"), ("#budget", "300MiB")):
            app.query_one(field, Input).value = value
        await pilot.press("r")
        await _wait_for_sweep(app, pilot)
        table = app.query_one("#results-table", DataTable)
        keys = [str(c.key.value) for c in table.columns.values()]
        rows = [dict(zip(keys, row, strict=True)) for row in _rows(app)]
        assert [r["fits"] for r in rows] == ["no", "no"]
        assert [r["batch"] for r in rows] == ["none", "none"]  # the CLI's word, not 0
        assert [r["cost"] for r in rows] == ["<$0.01", "<$0.01"]  # not $0.00 or $0.01
        detail = str(app.query_one("#detail-body", Static).content)
        assert "largest micro-batch that fits: none, not even 1" in detail and "<$0.01 at $0.35/h" in detail


# -- export (issue 18): never replaces a file without asking ------------------------------------


async def test_export_asks_before_replacing_and_keeps_the_old_files_unless_told(
    tmp_path: Path, saved_report: Path
) -> None:
    from advisor.tui.confirm import ReplaceReportScreen

    old = tmp_path / "tiny-llama-t4.md"
    old.write_text("my notes\n")  # e.g. the README example's report, written by advice.save
    app = VramAdvisorApp(report=saved_report, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ReplaceReportScreen)
        assert app.screen.existing == [old]
        await pilot.press("escape")  # cancel: nothing written
        await pilot.pause()
        assert not isinstance(app.screen, ReplaceReportScreen)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-llama-t4.md"]
        assert old.read_text() == "my notes\n" and "export cancelled: nothing written" in _status(app)

        await pilot.press("e")
        await pilot.pause()
        await pilot.press("enter")  # the default button: save under a new name
        await pilot.pause()
        assert old.read_text() == "my notes\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "tiny-llama-t4-2.json", "tiny-llama-t4-2.md", "tiny-llama-t4-2.svg", "tiny-llama-t4.md",
        ]  # fmt: skip
        assert _status(app).endswith("tiny-llama-t4-2.json/.md/.svg (tiny-llama-t4.* kept)")

        await pilot.press("e")  # -2 is taken now too: the new name is -3
        await pilot.pause()
        assert app.screen.new_prefix.name == "tiny-llama-t4-3"  # type: ignore[attr-defined]
        await pilot.press("y")  # replace, because the person said so
        await pilot.pause()
        assert "# " in old.read_text() and "tiny-llama" in old.read_text()
        assert (tmp_path / "tiny-llama-t4.json").is_file() and not (tmp_path / "tiny-llama-t4-3.json").exists()
        assert "(replaced the old files)" in _status(app)


def test_unused_prefix_counts_past_every_taken_name(tmp_path: Path) -> None:
    from advisor.tui.session import existing_report_files, unused_prefix

    prefix = tmp_path / "m-gpu"
    assert unused_prefix(prefix) == prefix and existing_report_files(prefix) == []
    (tmp_path / "m-gpu.svg").write_text("")
    (tmp_path / "m-gpu-2.json").write_text("")
    assert existing_report_files(prefix) == [tmp_path / "m-gpu.svg"]
    assert unused_prefix(prefix) == tmp_path / "m-gpu-3"


async def test_clicking_a_header_sorts_by_value_with_its_unit(saved_report: Path) -> None:
    app = VramAdvisorApp(report=saved_report)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        table = app.query_one("#results-table", DataTable)
        keys = [str(c.key.value) for c in table.columns.values()]
        x = sum(c.get_render_width(table) for c in list(table.columns.values())[: keys.index("batch")])
        await pilot.click("#results-table", offset=(x + 2, 0))
        await pilot.pause()
        batches = [row[keys.index("batch")] for row in _rows(app)]
        assert batches[-1] == "–"  # the excluded plan sorts after every number
        numbers = [int(b.split()[0]) for b in batches[:-1]]
        assert len(numbers) == 3 and numbers == sorted(numbers)  # ascending on the first click
        await pilot.click("#results-table", offset=(x + 2, 0))  # again: reversed
        await pilot.pause()
        assert [row[keys.index("batch")] for row in _rows(app)] == batches[::-1]


def test_sort_key_compares_numbers_with_their_units() -> None:
    from advisor.tui.views import sort_key

    cells = ["1.2 GiB", "–", "538.2 MiB", "none", "65536 (est.)", "100000", "excluded", "980 B"]
    assert sorted(cells, key=sort_key) == [
        "none", "980 B", "65536 (est.)", "100000", "538.2 MiB", "1.2 GiB", "excluded", "–",
    ]  # fmt: skip
    assert sorted(["1.2M", "50.2k", "999.0"], key=sort_key) == ["999.0", "50.2k", "1.2M"]
    assert sorted(["$1,234", "<$0.01", "$0.02"], key=sort_key) == ["<$0.01", "$0.02", "$1,234"]
    assert sorted(["2.0 h", "3.3 min", "12.00 s", "1.5 days"], key=sort_key) == ["12.00 s", "3.3 min", "2.0 h", "1.5 days"]
    assert sorted(["██··· 40%", "····· 3%"], key=sort_key) == ["····· 3%", "██··· 40%"]


async def test_the_selected_plan_stays_selected_across_sort_and_rerank(saved_report: Path) -> None:
    app = VramAdvisorApp(report=saved_report)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        table = app.query_one("#results-table", DataTable)
        await pilot.press("down")
        await pilot.pause()
        chosen = app._selected_plan()
        assert chosen is not None and chosen != app.session.last.ranked[0].plan
        keys = [str(c.key.value) for c in table.columns.values()]
        x = sum(c.get_render_width(table) for c in list(table.columns.values())[: keys.index("plan")])
        await pilot.click("#results-table", offset=(x + 2, 0))  # sort by plan name
        await pilot.pause()
        await pilot.press("t")  # re-rank by cost: the table is rebuilt
        await pilot.pause()
        assert app._selected_plan() == chosen
        assert str(app.query_one("#detail-body", Static).content).splitlines()[0] == f"[b]{chosen}[/b]"
