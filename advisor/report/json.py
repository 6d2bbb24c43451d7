"""Recommendation reports as JSON files: text out, a checked parse back, the files on disk.

The JSON (:meth:`advisor.recommend.Recommendation.to_dict`) carries ``schema_version`` and
``kind: "vram-advisor/recommendation"``, the environment the numbers came from, and every
figure as ``{"value", "unit", "provenance"}``. :func:`parse_report` checks a text is one of ours
and gives one clear :class:`ReportError` otherwise (not JSON, someone else's JSON, damaged, a
``schema_version`` this code does not know — named in the error). Reports are JSON read as data
(``json.loads``, nothing is imported or unpickled). Every version in :data:`KNOWN_VERSIONS` (ours,
older ones included) loads; unknown keys in them are tolerated with a warning.
:func:`advisor.report.load_report` reads a file through it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from advisor.core.errors import AdvisorError, ReportError
from advisor.core.io import SCHEMA_VERSION, atomic_write_text, check_writable, write_json
from advisor.recommend import KIND, Recommendation
from advisor.report.markdown import to_markdown
from advisor.report.svg import chart_svg

log = logging.getLogger(__name__)

__all__ = [
    "KIND",
    "KNOWN_VERSIONS",
    "REMAKE_HINT",
    "ReportVersionWarning",
    "parse_report",
    "report_paths",
    "save_report",
    "to_json",
]

_OUR_KINDS_PREFIX = "vram-advisor/"
REMAKE_HINT = "re-create it with `vram-advisor recommend … --report PATH`"

_TOP_KEYS = {
    "schema_version", "kind", "environment", "command", "mode", "rank_by", "model", "gpu",
    "workload", "budget", "best", "ranked", "excluded", "comparison", "notes",
}  # fmt: skip


# the report schema versions this code reads: ours, and any older one of ours it still knows
KNOWN_VERSIONS = frozenset({1, SCHEMA_VERSION})  # 1: before per-rank fields (one GPU)


class ReportVersionWarning(UserWarning):
    """Kept so that imports keep working; no longer issued: a report of a schema version this
    code does not know is refused (:class:`ReportError`) instead of half-read."""


def to_json(rec: Recommendation) -> str:
    """The report as JSON text, keys sorted, with a trailing newline."""
    return json.dumps(rec.to_dict(), indent=2, sort_keys=True) + "\n"


def parse_report(text: str, source: str = "<string>") -> Recommendation:
    """Parse and check a report; a clear :class:`ReportError` for anything that is not ours."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            "the file is damaged or not a report",
            REMAKE_HINT,
        ) from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind != KIND:
        if isinstance(kind, str) and kind.startswith(_OUR_KINDS_PREFIX):
            raise ReportError(
                f"{source} is a vram-advisor {kind.removeprefix(_OUR_KINDS_PREFIX)} file, not a "
                "recommendation report",
                "give a .json written by `vram-advisor recommend --report PATH`",
            )
        what = f"its kind is {kind!r}" if kind is not None else "it has no 'kind' field"
        if isinstance(data, dict) and "schema_version" in data:
            what += f", schema_version {data['schema_version']!r}"
        raise ReportError(
            f"{source} is not a vram-advisor report ({what}; expected {KIND!r})",
            "give a .json written by `vram-advisor recommend --report PATH`",
        )
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ReportError(f"{source} is damaged: schema_version is {version!r}", REMAKE_HINT)
    if version not in KNOWN_VERSIONS:
        known = ", ".join(str(v) for v in sorted(KNOWN_VERSIONS))
        raise ReportError(
            f"{source} is a report of schema_version {version}; this vram-advisor reads "
            f"version{'s' if len(KNOWN_VERSIONS) > 1 else ''} {known}",
            "upgrade vram-advisor to read it"
            + (", or re-create it with this one" if version > SCHEMA_VERSION else ""),
        )
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown report keys: %s", source, ", ".join(unknown))
    try:
        return Recommendation.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, AdvisorError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ReportError(f"{source} is damaged: {detail}", REMAKE_HINT) from None


def report_paths(prefix: str | Path) -> dict[str, Path]:
    """``reports/x`` (or ``reports/x.json``/``.md``) → the .json, .md and .svg paths."""
    prefix = Path(prefix)
    if prefix.suffix in (".json", ".md", ".svg"):
        prefix = prefix.with_suffix("")
    return {ext: prefix.with_name(prefix.name + "." + ext) for ext in ("json", "md", "svg")}


def save_report(rec: Recommendation, prefix: str | Path) -> dict[str, Path]:
    """Write PREFIX.json, PREFIX.svg and PREFIX.md (linking the chart), each atomically; every
    path is checked first, so an unwritable one (:class:`OutputPathError`) writes none."""
    paths = report_paths(prefix)
    for path in paths.values():
        check_writable(path)
    write_json(paths["json"], rec.to_dict())
    atomic_write_text(paths["svg"], chart_svg(rec))
    atomic_write_text(paths["md"], to_markdown(rec, chart=paths["svg"].name))
    return paths
