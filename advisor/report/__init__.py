"""Reports: JSON (load and save), Markdown, SVG chart, plain text, and code snippets."""

from advisor.report.core import *  # noqa: F403
from advisor.report.core import __all__

__all__ = list(__all__)
