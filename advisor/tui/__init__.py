"""The Textual TUI: the only package that imports textual."""

from __future__ import annotations

from advisor.tui.app import VramAdvisorApp, run_tui

__all__ = ["VramAdvisorApp", "run_tui"]
