"""Small widget variants the app needs: a filter field whose ↓ goes to its list."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

__all__ = ["FilterInput"]


class FilterInput(Input):
    """A text field that filters a list below it: ↓ moves the focus into that list."""

    BINDINGS = [Binding("down", "app.focus_next", "To the list", show=False)]
