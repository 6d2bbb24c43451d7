"""The README's Python examples run: every ```python block under the "### Python API" heading.

The blocks run in order in one namespace (a later block may use an earlier one's names), in a
temporary working directory so that files they write land there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### Python API"


def python_blocks(text: str, heading: str = HEADING) -> list[str]:
    """The ```python blocks between ``heading`` and the next heading of the same or a higher level."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        return []
    level = len(heading) - len(heading.lstrip("#"))
    section: list[str] = []
    in_code = False
    for line in lines[start + 1 :]:
        if line.startswith("```"):
            in_code = not in_code
        if not in_code:
            match = re.match(r"^(#+)\s", line)
            if match and len(match.group(1)) <= level:
                break
        section.append(line)
    return [m.group(1) for m in re.finditer(r"^```python\n(.*?)^```", "\n".join(section) + "\n", re.S | re.M)]


def test_the_extractor_finds_blocks_in_its_section_only() -> None:
    text = (
        "## A\n```python\nskip = 1\n```\n### Python API\ntext\n```python\nx = 1\n```\n"
        "```bash\nnot python\n```\n#### Deeper\n```python\ny = x + 1\n```\n## Next\n```python\nno = 1\n```\n"
    )
    assert python_blocks(text) == ["x = 1\n", "y = x + 1\n"]


def test_readme_has_python_api_examples() -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, f"README.md has no ```python block under {HEADING!r}"


def test_readme_python_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for i, code in enumerate(blocks, 1):
        exec(compile(code, f"README.md {HEADING} block {i}", "exec"), namespace)
