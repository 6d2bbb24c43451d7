"""Property-based tests (issue 18): random plan strings, sizes, GPU names, budgets and corrupted
report / sweep files thrown at the parser, the CLI (in-process) and the loaders. Each gives a
result or an AdvisorError (the CLI: a non-zero exit and one error message, no traceback) —
never another exception. Bounded (``max_examples``, no deadline) to stay well under a minute."""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import advisor
from advisor.catalog.gpus import GpuSpec, get_gpu, list_gpus
from advisor.cli import main
from advisor.core.errors import AdvisorError
from advisor.core.units import parse_memory
from advisor.engines.sweep import SweepResult, load_sweep, read_sweep_file
from advisor.models import builtin_models, resolve_model
from advisor.plans import CUTS, Plan, explicit_plans, parse_plans
from advisor.recommend.workload import Workload
from advisor.report import Advice, load_report

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_REPORT = ROOT / "reports" / "examples" / "tiny-llama-rtx-4090.json"
TOY_SPEC = f"{ROOT / 'tests' / 'fixtures' / 'toy_module.py'}:build"

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- strategies ------------------------------------------------------------------------------------

_NAMES = [*sorted(CUTS), "baseline", "lora_alpha", "r", "k", "steps", "bits"]
_cut = st.one_of(
    st.sampled_from(_NAMES),
    st.builds(
        lambda name, key, value: f"{name}({key}={value})",
        st.sampled_from(_NAMES),
        st.sampled_from(["r", "alpha", "k", "steps", "bits", "targets", "dropout", "momentum", "path", "x"]),
        st.one_of(st.integers(-3, 70).map(str), st.sampled_from(["auto", "q_proj|v_proj", "", "0.1", "true", "nan"])),
    ),
    st.text(alphabet="abcdefgklmnoprst-_()=|,+; 0123456789", max_size=12),
)
plan_text = st.one_of(
    st.lists(st.lists(_cut, min_size=0, max_size=4).map("+".join), min_size=0, max_size=4).map(";".join),
    st.text(max_size=30),
)
gpu_name = st.one_of(
    st.sampled_from([g.key for g in list_gpus()] + [g.name for g in list_gpus()]),
    st.builds(lambda g, tail: g.key + tail, st.sampled_from(list(list_gpus())), st.sampled_from(["", " 8gb", "80GB", "-x", " 24 GiB", "GB"])),
    st.text(alphabet="abcdefghlmnprstvx0123456789 -_", max_size=16),
    st.text(max_size=12),
)
memory_text = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True)),
              st.sampled_from(["", "B", "KiB", "MiB", "GiB", "TiB", "g", "GB", "m", "xb", " GiB"])),
    st.text(max_size=12),
)  # fmt: skip
size = st.one_of(st.integers(-2, 5000), st.booleans(), st.floats(), st.text(max_size=3), st.none())


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr); argparse's exit is its code."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help, or a usage error
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error(code: int, err: str) -> None:
    """A failing command's stderr: no traceback, and one error (argparse's usage, or ours)."""
    assert code != 0
    assert "Traceback" not in err
    # a family GPU name ("h100") is said on a note line first: not an error
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("note: ")]
    if code == 2:  # argparse: usage lines, then one "…: error: …" line
        assert "error:" in lines[-1]
    else:
        assert lines and lines[0].startswith("error: ") and len(lines) <= 2, err  # the message, its hint
        assert len(lines) == 1 or lines[1].startswith("  hint: ")


# -- the plan parser -------------------------------------------------------------------------------


@FAST
@given(text=plan_text)
def test_plan_text_parses_or_is_an_advisor_error(text: str) -> None:
    try:
        plans = parse_plans(text)
    except AdvisorError as exc:
        assert exc.message and exc.hint
        return
    assert plans and all(isinstance(p, Plan) for p in plans)
    try:
        checked = explicit_plans(text)
    except AdvisorError as exc:
        assert "refused" in exc.message and exc.hint
        return
    for plan in checked:  # what passes the check runs in a sweep as given, and parses back to itself
        assert plan.conflict() is None and plan.redundancy() is None
        assert parse_plans(plan.name) == [plan]


@FAST
@given(text=plan_text)
def test_cli_plan_text_is_refused_in_one_message_or_reaches_the_model(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # an unknown model: when the plans are fine the command fails on the model, never on a crash
    code, _out, err = _cli(["recommend", "--model", "no-such-model", "--plans", text], capsys)
    _one_error(code, err)
    code, _out, err = _cli(["sweep", "--model", "no-such-model", "--plans", text, "--out", "/dev/null/x"], capsys)
    _one_error(code, err)


@FEW
@given(text=st.lists(st.sampled_from(["lora", "grad-ckpt", "sgd", "bf16", "frozen-emb", "accum", "++", "bf16-weights"]),
                min_size=1, max_size=3).map("+".join))  # fmt: skip
def test_cli_simulate_gives_a_result_or_one_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["simulate", "--model", "tiny-llama", "--batch", "2", "--seq", "8", "--plans", text], capsys)
    assert "Traceback" not in err
    if code == 0:
        assert "tensor" in out.lower()
    elif "status" not in out:  # a refused plan: nothing was simulated
        _one_error(code, err)


# -- sizes, GPU names and budgets ----------------------------------------------------------------


@FAST
@given(batch=size, seq=size)
def test_sizes_are_accepted_or_an_advisor_error_naming_the_argument(batch: object, seq: object) -> None:
    source = resolve_model("tiny-llama")
    try:
        source.check_sizes(batch, seq)  # type: ignore[arg-type]
    except AdvisorError as exc:
        assert exc.argument in ("batch_size", "seq_len") and exc.hint and exc.argument in exc.hint
    else:
        assert isinstance(batch, int) and isinstance(seq, int) and batch >= 1 and 1 <= seq <= 2048
    try:
        Workload(micro_batch=batch, seq_len=seq)  # type: ignore[arg-type]
    except AdvisorError as exc:
        assert exc.hint
    else:
        assert isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1


@FAST
@given(batch=st.one_of(size.map(str), st.text(max_size=6)), seq=st.one_of(size.map(str), st.text(max_size=6)))
def test_cli_sizes_are_parsed_or_refused_in_one_line(batch: str, seq: str, capsys: pytest.CaptureFixture[str]) -> None:
    assume(not batch.startswith("-") and not seq.startswith("-"))  # argparse reads those as flags
    code, _out, err = _cli(["recommend", "--model", "no-such-model", "--batch", batch, "--seq", seq], capsys)
    _one_error(code, err)


@FAST
@given(name=gpu_name)
def test_gpu_names_resolve_or_are_an_advisor_error(name: str) -> None:
    try:
        spec = get_gpu(name)
    except AdvisorError as exc:
        assert exc.hint
    else:
        assert isinstance(spec, GpuSpec) and spec.memory_bytes > 0


@FAST
@given(text=memory_text)
def test_budgets_parse_or_are_an_advisor_error(text: str) -> None:
    try:
        value = parse_memory(text)
    except AdvisorError as exc:
        assert exc.hint
    else:
        assert isinstance(value, int) and value > 0


@FAST
@given(gpu=st.one_of(st.none(), gpu_name), mem=st.one_of(st.none(), memory_text))
def test_cli_gpu_and_budget_give_one_error(gpu: str | None, mem: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["recommend", "--model", "no-such-model"]
    if gpu is not None:
        assume(not gpu.startswith("-"))
        argv += ["--gpu", gpu]
    if mem is not None:
        assume(not mem.startswith("-"))
        argv += ["--gpu-mem", mem]
    code, _out, err = _cli(argv, capsys)
    _one_error(code, err)
    if (gpu is None and mem is None) or (code == 1 and "unknown model 'no-such-model'" in err):
        return
    assert "GPU" in err or "memory" in err or "budget" in err or code == 2


_REGISTERED = {m.name for m in builtin_models()}
model_name = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), max_size=16),
    st.sampled_from(["tiny-lama", "llama-3.1-8B ", ".", "tests", "pyproject.toml", "nope.json", "a\nb", "\x00"]),
)  # no ':' here: module:factory imports what it names, and a random name could be a real module


@FAST
@given(name=model_name, device=st.one_of(st.sampled_from(["cpu", "auto", "cuda:x", "CPU", "gpu", ""]), st.text(max_size=6)))
def test_cli_model_names_and_devices_give_one_error(name: str, device: str, capsys: pytest.CaptureFixture[str]) -> None:
    assume(name.strip().lower() not in _REGISTERED and not name.startswith("-") and not device.startswith("-"))
    code, _out, err = _cli(["profile", "--model", name, "--device", device, "--steps", "1", "--batch", "1", "--seq", "8"], capsys)
    _one_error(code, err)


def test_cli_gpus_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = _cli(["gpus"], capsys)
    assert code == 0 and all(g.key in out for g in list_gpus())


# -- corrupted report and sweep files ------------------------------------------------------------


def _mutate_bytes(data: bytes, rnd: random.Random, edits: int) -> bytes:
    buf = bytearray(data)
    for _ in range(edits):
        op = rnd.randrange(4)
        at = rnd.randrange(len(buf) + 1) if buf else 0
        if op == 0 and buf:  # flip a byte
            buf[min(at, len(buf) - 1)] = rnd.randrange(256)
        elif op == 1:  # cut the file short
            del buf[at:]
        elif op == 2:  # insert junk
            buf[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 8)))
        elif buf:  # drop a span
            del buf[at : at + rnd.randrange(1, 40)]
    return bytes(buf)


_JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def _mutate_json(doc: object, rnd: random.Random, value: object) -> object:
    """``doc`` with one value somewhere inside replaced by ``value`` (or a key dropped)."""
    if isinstance(doc, dict) and doc:
        key = rnd.choice(sorted(doc))
        if rnd.random() < 0.3:
            return {k: v for k, v in doc.items() if k != key}
        return {**doc, key: _mutate_json(doc[key], rnd, value) if rnd.random() < 0.7 else value}
    if isinstance(doc, list) and doc:
        i = rnd.randrange(len(doc))
        return [*doc[:i], _mutate_json(doc[i], rnd, value) if rnd.random() < 0.7 else value, *doc[i + 1 :]]
    return value


@FAST
@given(rnd=st.randoms(use_true_random=False), edits=st.integers(1, 6))
def test_corrupted_report_bytes_load_or_are_a_report_error(rnd: random.Random, edits: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("r") / "r.json"
    path.write_bytes(_mutate_bytes(EXAMPLE_REPORT.read_bytes(), rnd, edits))
    try:
        rec = load_report(path)
    except AdvisorError as exc:
        assert exc.hint
    else:
        assert isinstance(rec, Advice)
        rec.to_text()


@FAST
@given(rnd=st.randoms(use_true_random=False), value=_JSON_VALUES)
def test_reports_with_a_wrong_value_anywhere_load_or_are_a_report_error(rnd: random.Random, value: object) -> None:
    doc = _mutate_json(json.loads(EXAMPLE_REPORT.read_text()), rnd, value)
    try:
        rec = Advice.from_json(json.dumps(doc), "r.json")
    except AdvisorError as exc:
        assert exc.hint
        return
    rec.to_text(), rec.to_markdown(), rec.chart_svg()  # what loads also renders


@FEW
@given(rnd=st.randoms(use_true_random=False), edits=st.integers(1, 4))
def test_cli_report_show_of_a_corrupted_report(
    rnd: random.Random, edits: int, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path_factory.mktemp("r") / "r.json"
    path.write_bytes(_mutate_bytes(EXAMPLE_REPORT.read_bytes(), rnd, edits))
    code, out, err = _cli(["report", "show", str(path), "--format", "text"], capsys)
    if code != 0:
        _one_error(code, err)
    else:
        assert out


@cache
def _sweep_bytes() -> bytes:
    """A real results file: a toy model's baseline, sgd and grad-ckpt, memory only."""
    import tempfile

    out = Path(tempfile.mkdtemp()) / "s.jsonl"
    advisor.sweep(TOY_SPEC, plans="sgd;grad-ckpt", batch_size=1, seq_len=8, device="cpu", steps=0, out=out)
    return out.read_bytes()


def _mutate_lines(data: bytes, rnd: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    op = rnd.randrange(4)
    i = rnd.randrange(len(lines))
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[rnd.randrange(len(lines))])  # a duplicate
    elif op == 2:
        j = rnd.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = lines[i][: rnd.randrange(len(lines[i]) + 1)]
    return b"".join(lines)


@settings(FAST, max_examples=60)
@given(rnd=st.randoms(use_true_random=False), edits=st.integers(0, 4), value=_JSON_VALUES)
def test_corrupted_sweep_files_load_or_are_a_report_error(
    rnd: random.Random, edits: int, value: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = _mutate_lines(_sweep_bytes(), rnd)
    if edits:
        data = _mutate_bytes(data, rnd, edits)
    elif rnd.random() < 0.5:  # a wrong value inside one record
        lines = data.splitlines(keepends=True)
        i = rnd.randrange(len(lines))
        try:
            lines[i] = json.dumps(_mutate_json(json.loads(lines[i]), rnd, value)).encode() + b"\n"
        except ValueError:
            pass
        data = b"".join(lines)
    path = tmp_path_factory.mktemp("s") / "s.jsonl"
    path.write_bytes(data)
    try:
        found = read_sweep_file(path)
        result = load_sweep(path)
    except AdvisorError as exc:
        assert exc.hint
        return
    assert isinstance(result, SweepResult) and len(result.results) <= len(found.results)
    result.changes()
    assert path.read_bytes() == data  # reading never changes the file
