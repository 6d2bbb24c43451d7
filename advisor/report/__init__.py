"""Reports: JSON (load and save), Markdown, SVG chart, plain text, code snippets, and the
tables of a sweep and a convergence probe.

:class:`Advice` is what :func:`advisor.advise` returns: a recommendation that renders and saves
itself; :func:`load_report` gives one back from a saved ``.json``.
"""

from advisor.report.advice import Advice, from_json, load_report
from advisor.report.cluster import cluster_markdown, cluster_paths, cluster_text, save_cluster
from advisor.report.json import KIND, ReportVersionWarning, parse_report, report_paths, save_report, to_json
from advisor.report.markdown import to_markdown
from advisor.report.runs import change_table, convergence_text
from advisor.report.svg import chart_svg
from advisor.report.text import to_text

__all__ = [
    "KIND",
    "Advice",
    "ReportVersionWarning",
    "change_table",
    "chart_svg",
    "cluster_markdown",
    "cluster_paths",
    "cluster_text",
    "convergence_text",
    "from_json",
    "load_report",
    "parse_report",
    "report_paths",
    "save_cluster",
    "save_report",
    "to_json",
    "to_markdown",
    "to_text",
]
