"""The Textual app: choose a model and a GPU, watch the sweep, read and export the ranking."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    ProgressBar,
    RadioButton,
    RadioSet,
    SelectionList,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from advisor import api
from advisor.api import Workload
from advisor.catalog.gpus import GpuSpec, get_gpu, list_gpus
from advisor.core.errors import AdvisorError, InvalidInputError
from advisor.core.units import format_bytes, parse_count
from advisor.models import builtin_models
from advisor.tui.confirm import ExportChoice, ReplaceReportScreen
from advisor.tui.help import HelpScreen
from advisor.tui.session import (
    Cancelled,
    Session,
    SessionConfig,
    default_cut_names,
    existing_report_files,
    known_cut_names,
    unused_prefix,
)
from advisor.tui.views import detail_text, fit_columns, plan_cell, result_rows, sort_key, sparkline_data
from advisor.tui.widgets import CutList, FilterInput, MarkedRadioButton

log = logging.getLogger(__name__)

__all__ = ["SweepProgress", "VramAdvisorApp", "run_tui"]

COMPACT_BELOW_ROWS = 32  # the bordered setup needs about 30 rows; an 80×24 terminal gets it compact
READY = "ready — r runs · Tab or a click edits the setup (Esc leaves a field) · ? help"



class SweepProgress(Message):
    """Posted from the worker thread: a line of progress and the share done."""

    def __init__(self, text: str, done: int, total: int) -> None:
        super().__init__()
        self.text = text
        self.done = done
        self.total = total


class VramAdvisorApp(App[None]):
    """vram-advisor's terminal UI."""

    CSS_PATH = "app.tcss"
    TITLE = "vram-advisor"
    SUB_TITLE = "which cuts let your model train on your GPU"
    # One key scheme: the letter keys act whenever no text field has focus (in a field they are
    # typed, and Textual hides them from the footer); Esc leaves a field. The app opens on the
    # Run button, so `r` runs at once.
    AUTO_FOCUS = "#run"
    BINDINGS = [
        Binding("escape", "leave_field", "Leave field"),
        Binding("r", "run", "Run"),
        Binding("c", "cancel", "Cancel"),
        Binding("g", "choose_gpu", "GPU"),
        Binding("e", "export", "Export"),
        Binding("t", "toggle_rank", "Time/Cost"),
        Binding("m", "memory_timeline", "Memory over time", show=False),
        Binding("1", "tab('setup')", "Setup", show=False),
        Binding("2", "tab('results')", "Results", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        model: str | None = None,
        gpu: str | GpuSpec | None = None,
        report: str | Path | None = None,
        export_dir: str | Path = "reports",
        check_top: int = 1,
        margin: float = api.DEFAULT_MARGIN,
    ) -> None:
        super().__init__()
        self.margin = api.check_margin(margin)  # the share of memory a fit keeps free, as the CLI's
        self.session = Session(check_top=check_top)
        self.initial_model = model or "tiny-llama"
        self.initial_report = Path(report) if report else None
        self.export_dir = Path(export_dir)
        # An unknown GPU name is never replaced by a guess: no target until the person picks one.
        self.gpu: GpuSpec | None = None
        self.gpu_error: AdvisorError | None = None
        try:
            self.gpu = api.target_gpu(gpu)  # None: the default target
        except AdvisorError as exc:
            self.gpu_error = exc
        self.rank_by = "time"
        self._row_plans: list[str] = []
        self._started = 0.0
        self._sort_reverse = False
        self._sort_column = ""
        self._rec_width = 0  # the width the table was last laid out for

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(READY, id="status-bar")
        yield ProgressBar(total=1, show_eta=False, id="progress")
        with TabbedContent(initial="setup", id="tabs"):
            with TabPane("Setup", id="setup"), VerticalScroll(id="setup-scroll"):
                yield Label("Model", classes="form-label", id="model-label")
                with Horizontal(id="model-row"):
                    yield Input(
                        self.initial_model,
                        placeholder="tiny-llama, llama-3.1-8b, a path, or module:factory",
                        suggester=SuggestFromList(self._model_names(), case_sensitive=False),
                        id="model",
                    )
                    yield Button("Run sweep  r", variant="primary", id="run")
                with Horizontal(id="setup-columns"):
                    with Vertical(classes="setup-column"):
                        yield Label("Target GPU (type to filter)", classes="form-label")
                        yield FilterInput(placeholder="e.g. 4090, a100 — Enter picks", id="gpu-filter")
                        yield OptionList(id="gpu-list")
                        yield Label("Budget override (optional)", classes="form-label")
                        yield Input(placeholder="e.g. 22GiB", id="budget")
                    with Vertical(classes="setup-column"):
                        yield Label("Micro-batch · seq · dataset tokens", classes="form-label")
                        with Horizontal(classes="workload-row"):
                            yield Input("4", type="integer", id="batch")
                            yield Input("128", type="integer", id="seq")
                            yield Input("10M", id="tokens")
                        yield Label("Cuts to combine (pairs are tried too)", classes="form-label")
                        yield CutList(
                            *[(name, name, name in default_cut_names()) for name in known_cut_names()],
                            id="cuts",
                        )
                        with RadioSet(id="mode"):
                            yield MarkedRadioButton("Simulate (any model, no compute)", value=True, id="simulate")
                            yield MarkedRadioButton("Measure here (small models)", id="measure")
            with TabPane("Results", id="results"):
                yield Static("", id="summary")
                yield DataTable(id="results-table", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="detail"):
                    yield Static("", id="timeline-label")
                    yield Sparkline([], id="timeline-spark")
                    yield Static("Select a row to see its memory breakdown and snippet.", id="detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self.show_timeline(None)
        self._fit_height()
        self._fill_gpu_list("")
        if self.gpu_error is not None:
            self._error(self.gpu_error, then="pick a GPU in the list")
            self.query_one("#gpu-filter", Input).focus()
        if self.initial_report is not None:
            self.load_report(self.initial_report)

    def on_resize(self, event: events.Resize) -> None:
        # This runs before App's own handler has taken the new size: use the event's.
        self._fit_height(event.size.height)
        if self.session.last is not None and event.size.width != self._rec_width:
            self._show(self.session.last, event.size.width)  # the columns that fit the new width

    def _fit_height(self, height: int | None = None) -> None:
        """Below COMPACT_BELOW_ROWS rows the fields lose their borders, so the whole setup fits."""
        compact = (self.size.height if height is None else height) < COMPACT_BELOW_ROWS
        for widget in self.query("Input, Button, RadioSet"):
            widget.compact = compact  # type: ignore[attr-defined]

    @staticmethod
    def _model_names() -> list[str]:
        return [m.name for m in builtin_models()]

    # -- GPU picker --------------------------------------------------------------------------

    def _fill_gpu_list(self, text: str) -> None:
        needle = text.lower().replace(" ", "").replace("-", "")
        gpus = [
            g for g in list_gpus()
            if not needle or needle in (g.key + g.name).lower().replace(" ", "").replace("-", "")
        ]  # fmt: skip
        options = self.query_one("#gpu-list", OptionList)
        options.clear_options()
        for g in gpus:
            label = f"{g.key:<16} {g.memory_bytes / 2**30:>3.0f}G ${g.price_usd_per_hour:.2f}/h"
            options.add_option(Option(label, id=g.key))
        keys = [g.key for g in gpus]
        if needle and keys:
            options.highlighted = 0  # Enter in the filter picks this one
        elif self.gpu is not None and self.gpu.key in keys:
            options.highlighted = keys.index(self.gpu.key)
        self._update_status_gpu()

    @on(Input.Changed, "#gpu-filter")
    def _filter_gpus(self, event: Input.Changed) -> None:
        self._fill_gpu_list(event.value)

    @on(Input.Submitted, "#gpu-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter picks the highlighted match (the first one, unless moved)."""
        options = self.query_one("#gpu-list", OptionList)
        if options.option_count == 0:
            self._status(f"[red]no GPU matches {event.value!r}[/red] — clear the filter to see the catalog")
            return
        index = options.highlighted if options.highlighted is not None else 0
        key = options.get_option_at_index(index).id
        if key:
            self.set_gpu(get_gpu(key))
            more = options.option_count - 1
            others = f" ({more} more match{'es' if more > 1 else ''}: ↓ to the list to pick another)"
            self._status(f"target: {key}" + (others if more else ""))

    @on(OptionList.OptionSelected, "#gpu-list")
    def _gpu_chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.set_gpu(get_gpu(event.option.id))

    def set_gpu(self, gpu: GpuSpec) -> None:
        """Change the target; results in hand are re-ranked at once, without new trials."""
        self.gpu = gpu
        self._update_status_gpu()
        if self.session.has_results:
            self.rerank()

    def _budget_gpu(self) -> GpuSpec:
        if self.gpu is None:
            raise InvalidInputError("no target GPU chosen", "pick one in the Target GPU list (press g)")
        text = self.query_one("#budget", Input).value.strip()
        return api.target_gpu(self.gpu, text or None)

    def _update_status_gpu(self) -> None:
        if self.gpu is None:
            self.sub_title = "target: none — pick a GPU (g)"
        else:
            self.sub_title = f"target: {self.gpu.key} ({self.gpu.memory_bytes / 2**30:.0f} GiB)"

    # -- running -----------------------------------------------------------------------------

    def _config(self) -> SessionConfig:
        def whole(widget_id: str, what: str) -> int:
            raw = self.query_one(f"#{widget_id}", Input).value.strip()
            try:
                return int(raw)
            except ValueError:
                raise AdvisorError(f"{what} must be a whole number, got {raw!r}", "e.g. 4") from None

        workload = Workload(
            micro_batch=whole("batch", "micro-batch"),
            seq_len=whole("seq", "sequence length"),
            dataset_tokens=parse_count(self.query_one("#tokens", Input).value or "10M"),
            margin=self.margin,
        )
        cuts = list(self.query_one("#cuts", SelectionList).selected)
        measure = self.query_one("#measure", RadioButton).value
        return SessionConfig(
            model=self.query_one("#model", Input).value.strip(),
            gpu=self._budget_gpu(),
            workload=workload,
            cuts=cuts,
            mode="measure" if measure else "simulate",
            rank_by=self.rank_by,
        )

    def action_run(self) -> None:
        if self.session.running:
            self.notify("a sweep is already running (c cancels it)", severity="warning")
            return
        try:
            config = self._config()
            self.session.prepare(config)  # resolves the model and plans: bad input stops here
        except AdvisorError as exc:
            self._error(exc)
            return
        self._started = time.perf_counter()
        self.query_one("#progress", ProgressBar).update(total=max(1, self.session.total_plans), progress=0)
        self._status(f"running {self.session.total_plans} plans on {config.model} …")
        self.action_tab("results")
        self._run_worker()

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        self.action_run()

    @work(thread=True, exclusive=True, group="sweep")
    def _run_worker(self) -> None:
        worker = get_current_worker()

        def progress(text: str, done: int, total: int) -> None:
            if worker.is_cancelled:
                raise Cancelled()
            self.post_message(SweepProgress(text, done, total))

        self.session.run(progress)

    def on_sweep_progress(self, message: SweepProgress) -> None:
        elapsed = time.perf_counter() - self._started
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=max(1, message.total), progress=message.done)
        self._status(f"plan {min(message.done + 1, message.total)}/{message.total} · {message.text} · {elapsed:.0f} s")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "sweep":
            return
        if event.state is WorkerState.SUCCESS:
            self._status(
                f"done: {self.session.done_plans} plans in {time.perf_counter() - self._started:.0f} s"
                " · ↑↓ select a plan · e export · t time/cost"
            )
            self.rerank()
            self._focus_results()
        elif event.state is WorkerState.CANCELLED:
            self._status(f"cancelled — keeping {self.session.done_plans} finished plans")
            self.rerank()
            self._focus_results()
        elif event.state is WorkerState.ERROR:
            err = event.worker.error
            if isinstance(err, Cancelled):
                self._status(f"cancelled — keeping {self.session.done_plans} finished plans")
                self.rerank()
                self._focus_results()
            else:
                self._error(err if err is not None else RuntimeError("the sweep failed"))

    def action_cancel(self) -> None:
        if not self.session.running:
            self.notify("nothing is running")
            return
        self.workers.cancel_group(self, "sweep")
        self.session.cancel()
        self._status("cancelling after the current step …")

    # -- results -----------------------------------------------------------------------------

    def rerank(self) -> None:
        """Rank the results in hand for the current GPU, budget and ranking (no new trials)."""
        try:
            rec = self.session.rank(self._budget_gpu(), self.rank_by)
        except AdvisorError as exc:
            self._error(exc)
            return
        if rec is None:
            return
        self._show(rec)

    def _show(self, rec: Any, width: int | None = None) -> None:
        """Fill the table (the columns that fit the terminal's ``width``) and the summary line;
        the plan selected before stays selected."""
        width = self.size.width if width is None else width
        table = self.query_one("#results-table", DataTable)
        selected = self._selected_plan()
        rows = result_rows(rec)
        columns, plan_width = fit_columns(rows, max(40, width - 1))  # 1: the scrollbar
        table.clear(columns=True)
        for col in columns:
            table.add_column(col.header, key=col.key)
        self._row_plans = []
        for row in rows:
            style = "green" if row.fits else ("red" if row.fits is False else "dim")
            cells: list[str | Text] = []
            for col in columns:
                text = plan_cell(row.cells["plan"], plan_width) if col.key == "plan" else row.cells[col.key]
                cells.append(Text(text, style=style) if col.key in ("plan", "fits") else text)
            table.add_row(*cells, key=row.plan)
            self._row_plans.append(row.plan)
        best = rec.best
        sources = sorted({v.need.provenance.value for v in rec.ranked if v.need is not None})
        self.query_one("#summary", Static).update(
            f"{escape(rec.model)} on {rec.gpu.key}: budget {format_bytes(rec.budget_bytes)} "
            f"(margin {rec.workload.margin:.0%}) · "
            + (f"best: [b]{escape(best.plan)}[/b]" if best else "[red]no plan fits[/red]")
            + f" · ranked by {rec.rank_by.value}"
            + (f" · memory figures: {'/'.join(sources)}" if sources else "")
        )
        self._rec_width = width
        if self._row_plans:
            index = self._row_plans.index(selected) if selected in self._row_plans else 0
            table.move_cursor(row=index)
            self._show_detail(self._row_plans[index])

    def _selected_plan(self) -> str | None:
        """The plan of the row under the cursor (rows may have been sorted since they were added)."""
        table = self.query_one("#results-table", DataTable)
        if not table.row_count or not table.columns:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    @on(DataTable.RowHighlighted, "#results-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self._show_detail(event.row_key.value)

    @on(DataTable.HeaderSelected, "#results-table")
    def _sort(self, event: DataTable.HeaderSelected) -> None:
        """Sort by the clicked column: ascending first, a second click on it reverses."""
        table = self.query_one("#results-table", DataTable)
        column = str(event.column_key.value)
        self._sort_reverse = not self._sort_reverse if column == self._sort_column else False
        self._sort_column = column

        def key(cell: Any) -> tuple[int, float, str]:
            return sort_key(cell.plain if isinstance(cell, Text) else str(cell))

        selected = self._selected_plan()
        table.sort(event.column_key, key=key, reverse=self._sort_reverse)
        if selected is not None:  # the cursor follows its plan to the row it was sorted to
            table.move_cursor(row=table.get_row_index(selected))

    def _show_detail(self, plan: str) -> None:
        rec = self.session.last
        if rec is None:
            return
        self.query_one("#detail-body", Static).update(detail_text(rec, plan))
        try:
            trial = rec.verdict(plan).trial
        except KeyError:
            trial = None
        self.show_timeline(getattr(trial, "timeline", None), plan)

    # -- memory over time ---------------------------------------------------------------------

    def show_timeline(self, tl: Any, plan: str = "") -> None:
        """The sparkline of live bytes over the step above the detail (hidden without one)."""
        label = self.query_one("#timeline-label", Static)
        spark = self.query_one("#timeline-spark", Sparkline)
        label.display = spark.display = tl is not None
        if tl is None:
            return
        spark.data = sparkline_data(tl.totals(), max(8, self.size.width - 8))
        label.update(
            f"[b]memory over the step[/b] {escape(plan)}: peak {format_bytes(tl.peak_bytes, 2)} in "
            f"{escape(tl.peak_phase)} · phases {escape(' → '.join(p.name for p in tl.phases))} · simulated"
        )

    def action_memory_timeline(self) -> None:
        """Simulate the selected plan's step in full and show its live bytes over time."""
        plan = self._selected_plan()
        config = self.session.config
        if plan is None or config is None:
            self.notify("select a plan first (run a sweep or open a report)", severity="warning")
            return
        self._status(f"replaying {plan} for its memory over time …")
        self._timeline_worker(config.model, plan, config.workload.micro_batch, config.workload.seq_len)

    @work(thread=True, exclusive=True, group="timeline")
    def _timeline_worker(self, model: str, plan: str, batch: int, seq: int) -> None:
        try:
            result = api.timeline(model, plan, batch_size=batch, seq_len=seq)
        except AdvisorError as exc:
            self.call_from_thread(self._error, exc)
            return
        self.call_from_thread(self.show_timeline, result.timeline, plan)
        self.call_from_thread(self._status, f"memory over time: {plan}" if result.timeline else f"no timeline: {result.reason}")

    # -- reports -----------------------------------------------------------------------------

    def action_export(self) -> None:
        """Export the report in hand; if its files exist, ask first (replace, new name, cancel)."""
        rec = self.session.last
        if rec is None:
            self.notify("nothing to export yet: run a sweep or open a report", severity="warning")
            return
        prefix = self.export_dir / f"{_slug(rec.model)}-{rec.gpu.key}"
        existing = existing_report_files(prefix)
        if not existing:
            self._export(rec, prefix)
            return
        new_prefix = unused_prefix(prefix)

        def chosen(choice: str | None) -> None:
            if choice == ExportChoice.REPLACE:
                self._export(rec, prefix, note="replaced the old files")
            elif choice == ExportChoice.NEW_NAME:
                self._export(rec, new_prefix, note=f"{prefix.name}.* kept")
            else:
                self._status(f"export cancelled: nothing written ({prefix}.* exist)")

        self.push_screen(ReplaceReportScreen(existing, new_prefix), chosen)

    def _export(self, rec: Any, prefix: Path, note: str = "") -> None:
        try:
            paths = rec.save(str(prefix))
        except (AdvisorError, OSError) as exc:
            self._error(exc)
            return
        names = ", ".join(str(p) for p in paths.values())
        self.notify(escape(f"wrote {names}"), title="Exported", timeout=8)
        self._status(escape(f"exported {prefix}.json/.md/.svg" + (f" ({note})" if note else "")))

    def load_report(self, path: Path) -> None:
        """Open a saved report to browse it without re-running."""
        try:
            rec = self.session.load(path)
        except (AdvisorError, OSError) as exc:
            self._error(exc)
            return
        self.gpu = rec.gpu
        self._update_status_gpu()
        self.query_one("#model", Input).value = rec.model
        self._status(f"opened {path}")
        self._show(rec)
        self.action_tab("results")

    # -- small actions -----------------------------------------------------------------------

    def action_toggle_rank(self) -> None:
        self.rank_by = "cost" if self.rank_by == "time" else "time"
        self.notify(f"ranking by {self.rank_by}")
        if self.session.has_results:
            self.rerank()

    def action_choose_gpu(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "setup"
        self.query_one("#gpu-filter", Input).focus()

    def action_tab(self, tab: str) -> None:
        """Show a tab and put the focus where its keys act: the table, or the Run button."""
        self.query_one("#tabs", TabbedContent).active = tab
        if tab == "results":
            self._focus_results()
        else:
            self.query_one("#run", Button).focus()

    def _focus_results(self) -> None:
        """Focus the results table, so the arrow keys move the selected row."""
        if self.query_one("#tabs", TabbedContent).active == "results":
            self.query_one("#results-table", DataTable).focus()

    def action_leave_field(self) -> None:
        """Esc in a text field: leave it, so the letter keys act again."""
        if self.query_one("#tabs", TabbedContent).active == "results":
            self.query_one("#results-table", DataTable).focus()
        else:
            self.query_one("#run", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc's "Leave field" is shown, and acts, only while a text field has focus."""
        if action == "leave_field":
            return isinstance(self.focused, Input)
        return True

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _status(self, text: str) -> None:
        self.query_one("#status-bar", Static).update(text)

    def _error(self, exc: BaseException, then: str = "") -> None:
        """An error in the status line (its first line, and what to do ``then``) and a toast."""
        message = str(exc)
        log.info("tui error: %s", message)
        first = escape(message.splitlines()[0] if message else type(exc).__name__)
        self._status(f"[red]error:[/red] {first}" + (f" — {escape(then)}" if then else ""))
        self.notify(escape(message), title="Error", severity="error", timeout=10)


def _slug(text: str) -> str:
    keep = [c if c.isalnum() or c in "-." else "-" for c in text.lower()]
    return "".join(keep).strip("-") or "model"


def run_tui(
    model: str | None = None, gpu: str | None = None, report: str | None = None, margin: float | None = None
) -> None:
    """Open the app (blocks until the person quits); ``margin`` ``None``: the default."""
    VramAdvisorApp(model=model, gpu=gpu, report=report, margin=api.DEFAULT_MARGIN if margin is None else margin).run()
