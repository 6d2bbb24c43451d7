"""What :func:`advisor.advise` returns: a :class:`~advisor.recommend.Recommendation` that can
render and save itself (JSON, Markdown, plain text, SVG), and the loaders that give one back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from advisor.core.errors import ReportError
from advisor.recommend import Recommendation
from advisor.report.json import REMAKE_HINT, parse_report, save_report, to_json
from advisor.report.markdown import to_markdown
from advisor.report.svg import chart_svg
from advisor.report.text import to_text

__all__ = ["Advice", "from_json", "load_report"]


@dataclasses.dataclass(frozen=True)
class Advice(Recommendation):
    """A recommendation with its renderings: ``.to_json()``, ``.to_markdown()``, ``.to_text()``,
    ``.chart_svg()`` and ``.save(prefix)``. The same fields and figures as the
    :class:`Recommendation` it wraps (:meth:`of`)."""

    @classmethod
    def of(cls, rec: Recommendation) -> Advice:
        """``rec`` with the report methods (``rec`` itself when it is already an Advice)."""
        if isinstance(rec, cls):
            return rec
        return cls(**{f.name: getattr(rec, f.name) for f in dataclasses.fields(Recommendation)})

    def to_json(self) -> str:
        """The report as JSON text (``schema_version``, environment, units and provenance)."""
        return to_json(self)

    def to_markdown(self, chart: str | None = None) -> str:
        """The report for people; ``chart`` is the relative path of the SVG chart to link."""
        return to_markdown(self, chart=chart)

    def to_text(self, width: int | None = None) -> str:
        """A short plain-text summary with the ranked table (what the CLI prints), within
        ``width`` characters a line when given."""
        return to_text(self, width)

    def chart_svg(self) -> str:
        """Memory by plan, stacked by part, against the budget line (SVG text)."""
        return chart_svg(self)

    def save(self, prefix: str | Path) -> dict[str, Path]:
        """Write ``prefix.json``, ``prefix.md`` and ``prefix.svg`` atomically; return the paths."""
        return save_report(self, prefix)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> Advice:
        """Load a report written by :meth:`to_json` (clear :class:`ReportError` otherwise)."""
        return cls.of(parse_report(text, source))


def from_json(text: str, source: str = "<string>") -> Advice:
    """Parse and check a report; a clear :class:`ReportError` for anything that is not ours."""
    return Advice.of(parse_report(text, source))


def load_report(path: str | Path) -> Advice:
    """Load a report JSON written by :func:`save_report` or ``vram-advisor recommend --report``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(
            f"no report at {path}", "check the path; reports are written as PREFIX.json"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path} as text ({exc})", REMAKE_HINT) from None
    return from_json(text, str(path))
