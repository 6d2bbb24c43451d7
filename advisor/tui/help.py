"""The help screen: what each part of the app does and the keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

__all__ = ["CLOSE_LINE", "HELP_TEXT", "HelpScreen"]

CLOSE_LINE = "**Esc**, **q** or **?** closes this help; ↑ ↓ and PgUp PgDn scroll it."

HELP_TEXT = f"""\
# vram-advisor

{CLOSE_LINE}

Which memory-saving techniques (**cuts**) let your model train on your GPU budget.

**Setup** — pick a model (a built-in name such as `tiny-llama` or `llama-3.1-8b`, a Hugging Face
directory or `config.json`, or `module.path:factory`), a target GPU (type to filter; memory and
hourly price shown), an optional budget override (`22GiB`), the workload, the cuts to combine,
and whether to **simulate** (fake tensors: any model, any GPU, no compute) or **measure**
(run real steps here).

**Run** — every plan (baseline, each cut, pairs of cuts) runs in the background; the bar and
the line above it show the current plan and step. Cancel keeps what finished.

**Results** — ranked as the recommender ranks: plans that fit the budget first (green), then by
time to train (or cost). The bar shows the predicted need against the budget. Select a row for
its memory breakdown, why it ranks there, and a ready-to-paste snippet. Click a column header
to sort by it. Changing the GPU re-ranks the results in hand at once, without re-running.

Every figure says where it comes from: *measured*, *simulated* or *estimated*.

**Keys** — the letter keys act whenever no text field has focus; in a text field they are
typed into it, and **Esc** leaves the field (the footer shows the keys that act right now).
The app opens on the Run button, so `r` runs at once; Tab moves between the fields.

| key | action |
|---|---|
| `r` | run the sweep |
| `c` | cancel the running sweep |
| `g` | choose the target GPU (type to filter, Enter picks the first match, ↓ the list) |
| `e` | export the report (JSON + Markdown + SVG chart; asks before replacing files) |
| `t` | rank by time ↔ cost |
| `m` | memory over time of the selected plan: its step replayed in full, live bytes as a sparkline |
| `1` / `2` | Setup / Results tab |
| ↑ ↓ | select a plan in the results (its detail shows below) |
| `Esc` | leave a text field |
| `?` | this help |
| `q` / `Ctrl+Q` | quit |

{CLOSE_LINE}
"""


class HelpScreen(ModalScreen[None]):
    """A modal with the help text; any of escape, q or ? closes it (said at its top and bottom)."""

    AUTO_FOCUS = "#help-box"  # so the arrow keys scroll the text
    BINDINGS = [
        Binding("escape", "dismiss", "Close help"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP_TEXT)
        yield Footer()  # the keys that act here (esc Close help), not the main screen's

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
