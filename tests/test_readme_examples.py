"""Every example in README.md runs as written, and prints what the README says it prints.

* ```python blocks under "### Python API" run in order in one namespace (a later block may use
  an earlier one's names), in a temporary working directory. A block followed by a ```text block
  must print exactly those lines, where ``…`` stands for any text (timings, which vary).
* ``vram-advisor …`` lines in ```bash blocks run in-process through the CLI, in order, in one
  temporary working directory; each must exit 0, and a command followed by a ```text block (its
  output) must print those lines (``…`` as above), at a terminal width of ``README_COLUMNS``.
  ``vram-advisor tui`` is interactive and is checked by the TUI's own tests.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### Python API"
SLOW_MODELS = ("llama-3.1-8b", "llama-3.2-1b", "qwen2.5-0.5b")  # simulated presets: seconds each


@dataclass(frozen=True)
class Example:
    where: str  # "README.md line N"
    kind: str  # "python" or "bash"
    code: str
    output: str | None  # the ```text block right after it, if any


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, language, body) of every fenced block, in order."""
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```\s*$", text, re.S | re.M):
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)))
    return out


def section(text: str, heading: str) -> str:
    """The text from ``heading`` to the next heading of the same or a higher level."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        return ""
    level = len(heading) - len(heading.lstrip("#"))
    out: list[str] = []
    in_code = False
    for line in lines[start + 1 :]:
        if line.startswith("```"):
            in_code = not in_code
        if not in_code:
            match = re.match(r"^(#+)\s", line)
            if match and len(match.group(1)) <= level:
                break
        out.append(line)
    return "".join(out)


def examples(text: str, kind: str, heading: str | None = None) -> list[Example]:
    """The ``kind`` blocks (``python`` / ``bash``) with the ```text block that follows each."""
    body = section(text, heading) if heading else text
    blocks = code_blocks(body)
    found = []
    for i, (line, lang, code) in enumerate(blocks):
        if lang != kind:
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        output = None
        if nxt is not None and nxt[1] == "text":
            between = body.splitlines()[line + code.count("\n") + 1 : nxt[0] - 1]
            if all(not s.strip() or s.strip().endswith(":") for s in between):
                output = nxt[2]
        found.append(Example(f"README.md line {line}", kind, code, output))
    return found


def commands(code: str) -> list[str]:
    """The ``vram-advisor`` command lines of a bash block (continuations joined, comments cut)."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("vram-advisor "):
            out.append(line)
    return out


def _line_ok(want: str, got: str) -> bool:
    pattern = "^" + ".*?".join(re.escape(part) for part in want.split("…")) + "$"
    return re.match(pattern, got) is not None


def _lines_ok(want: list[str], got: list[str]) -> bool:
    if not want:
        return not got
    if want[0] == "…":  # a line of its own: any number of lines
        return any(_lines_ok(want[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and _line_ok(want[0], got[0]) and _lines_ok(want[1:], got[1:])


def matches(expected: str, actual: str) -> str | None:
    """``None`` when ``actual`` has the lines of ``expected``, else why not. In ``expected``,
    ``…`` inside a line is any text, and a line that is only ``…`` is any number of lines."""
    want = [line.rstrip() for line in expected.strip("\n").splitlines()]
    got = [line.rstrip() for line in actual.strip("\n").splitlines()]
    if _lines_ok(want, got):
        return None
    for w, g in zip(want, got, strict=False):
        if w != "…" and not _line_ok(w, g):
            return f"README shows\n  {w}\nprinted\n  {g}\nwhole output:\n" + "\n".join(got)
        if w == "…":
            break
    return "README shows\n" + "\n".join(want) + "\nprinted\n" + "\n".join(got)


def test_the_extractor_pairs_blocks_with_their_output() -> None:
    text = (
        "## A\n```python\nskip = 1\n```\n### Python API\ntext\n```python\nprint(1)\n```\n"
        "prints:\n```text\n1\n```\n```bash\nvram-advisor models  # list\nls\n```\n"
        "#### Deeper\n```python\ny = 2\n```\n## Next\n```python\nno = 1\n```\n"
    )
    found = examples(text, "python", HEADING)
    assert [(e.code, e.output) for e in found] == [("print(1)\n", "1\n"), ("y = 2\n", None)]
    assert commands("vram-advisor a --x 1 \\\n    --y 2  # note\nls\n") == ["vram-advisor a --x 1 --y 2"]
    assert matches("a … b\nc", "a 12 ms b\nc") is None
    assert matches("a … b", "a 12 ms c") is not None
    assert matches("a", "a\nb") is not None
    assert matches("a\n…\nz", "a\nb\nc\nz") is None and matches("a\n…", "a") is None
    assert matches("a\n…\nz", "a\nb") is not None


def test_readme_has_examples_of_both_kinds() -> None:
    text = README.read_text(encoding="utf-8")
    assert examples(text, "python", HEADING), f"README.md has no ```python block under {HEADING!r}"
    assert any(commands(e.code) for e in examples(text, "bash")), "README.md has no CLI example"


def test_readme_python_api_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for ex in examples(README.read_text(encoding="utf-8"), "python", HEADING):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(ex.code, ex.where, "exec"), namespace)
        if ex.output is not None:
            why = matches(ex.output, out.getvalue())
            assert why is None, f"{ex.where}: {why}"


def _cli_examples(slow: bool) -> list[tuple[str, str, str | None]]:
    text = README.read_text(encoding="utf-8")
    out = []
    for ex in examples(text, "bash"):
        lines = commands(ex.code)
        for i, line in enumerate(lines):
            if line.split()[1] == "tui":
                continue
            if any(m in line for m in SLOW_MODELS) != slow:
                continue
            # a ```text block after a block of one command is that command's output
            out.append((ex.where, line, ex.output if len(lines) == 1 and i == 0 else None))
    return out


def _run_cli(line: str) -> tuple[int, str]:
    from advisor.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = main(shlex.split(line)[1:])
    return code, buf.getvalue()


def _check_cli(examples: list[tuple[str, str, str | None]]) -> None:
    import torch

    assert examples
    compare = not torch.cuda.is_available()  # the README shows what a machine without a GPU prints
    for where, line, expected in examples:
        code, printed = _run_cli(line)
        assert code == 0, f"{where}: `{line}` exited {code}:\n{printed}"
        assert printed.strip(), f"{where}: `{line}` printed nothing"
        if expected is not None and compare:
            why = matches(expected, printed)
            assert why is None, f"{where}: `{line}`: {why}"


# the terminal width the README's outputs are shown at (tables leave out columns to fit it)
README_COLUMNS = "100"


def test_readme_cli_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", README_COLUMNS)
    _check_cli(_cli_examples(slow=False))


@pytest.mark.slow
def test_readme_cli_examples_of_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", README_COLUMNS)
    _check_cli(_cli_examples(slow=True))
