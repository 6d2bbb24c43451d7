"""The question export asks before it would replace files: replace them, save under a new
name, or cancel."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

__all__ = ["ExportChoice", "ReplaceReportScreen"]


class ExportChoice:
    """What the person chose: replace the files, save under the new name, or nothing."""

    REPLACE = "replace"
    NEW_NAME = "new-name"


class ReplaceReportScreen(ModalScreen[str | None]):
    """Asks before an export replaces report files; dismisses with an :class:`ExportChoice`
    value, or ``None`` to write nothing."""

    AUTO_FOCUS = "#new-name"  # the safe choice is the default: Enter keeps the old files
    BINDINGS = [
        Binding("y", "choose('replace')", "Replace"),
        Binding("s", "choose('new-name')", "Save as new"),
        Binding("escape,n", "choose('')", "Cancel"),
    ]

    def __init__(self, existing: list[Path], new_prefix: Path) -> None:
        super().__init__()
        self.existing = existing
        self.new_prefix = new_prefix

    def compose(self) -> ComposeResult:
        names = "\n".join(f"  {escape(str(p))}" for p in self.existing)
        with Vertical(id="confirm-box"):
            yield Static(
                f"[b]These files exist:[/b]\n{names}\n\nReplace them, or save as "
                f"[b]{escape(self.new_prefix.name)}[/b].json/.md/.svg and keep them?",
                id="confirm-text",
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Replace  y", variant="error", id="replace")
                yield Button("Save as new  s", variant="primary", id="new-name")
                yield Button("Cancel  Esc", id="cancel")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose({"replace": ExportChoice.REPLACE, "new-name": ExportChoice.NEW_NAME}.get(event.button.id or "", ""))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
