"""Small widget variants the app needs: a filter field whose ↓ goes to its list, and a cut list
and radio buttons whose state reads without colour ("[x]" / "[ ]", "(•)" / "( )").

They follow the rendering of Textual 8.2.8 (``SelectionList.render_line``,
``ToggleButton._button``), changing only the glyphs.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.binding import Binding
from textual.content import Content
from textual.strip import Strip
from textual.style import Style
from textual.widgets import Input, RadioButton, SelectionList
from textual.widgets._toggle_button import ToggleButton

__all__ = ["CHECKED", "UNCHECKED", "CutList", "FilterInput", "MarkedRadioButton"]

CHECKED, UNCHECKED = "[x]", "[ ]"


class FilterInput(Input):
    """A text field that filters a list below it: ↓ moves the focus into that list."""

    BINDINGS = [Binding("down", "app.focus_next", "To the list", show=False)]


class CutList(SelectionList[str]):
    """A selection list whose ticked lines read ``[x]`` and unticked ``[ ]``, colour or not."""

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        segments = list(line)
        button = ToggleButton.BUTTON_LEFT + ToggleButton.BUTTON_INNER + ToggleButton.BUTTON_RIGHT
        if len(segments) < 3 or "".join(seg.text for seg in segments[:3]) != button:
            return line  # not an option line
        index = self.scroll_offset.y + y
        glyphs = CHECKED if self.get_option_at_index(index).value in self._selected else UNCHECKED
        marked = [Segment(ch, seg.style) for ch, seg in zip(glyphs, segments[:3], strict=True)]
        return Strip([*marked, *segments[3:]], line.cell_length)


class MarkedRadioButton(RadioButton):
    """A radio button that reads ``(•)`` when on and ``( )`` when off, colour or not."""

    @property
    def _button(self) -> Content:
        button_style = self.get_visual_style("toggle--button")
        side_style = Style(foreground=button_style.background, background=self.background_colors[1])
        return Content.assemble(("(", side_style), ("•" if self.value else " ", button_style), (")", side_style))
