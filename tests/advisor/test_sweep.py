"""Sweeps that never die and never lose a result: failure injection, interrupt and resume."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from torch import nn

from advisor.cli import main
from advisor.core.errors import ReportError
from advisor.engines.sweep import SweepProgress, load_sweep, read_sweep_file, sweep
from advisor.plans import BuildContext, Cut, Plan
from advisor.plans.cuts import parse_plan, parse_plans, user_plans
from profilers.records import TrialStatus

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_module.py"
TOY_SPEC = f"{TOY}:build"
SIZES = {"batch_size": 2, "seq_len": 16, "device": "cpu", "steps": 1, "warmup_steps": 1}
FAST = {**SIZES, "steps": 0}  # memory only: no timed steps


@dataclass(frozen=True)
class Boom(Cut):
    """Failure injection: a cut whose model transform raises."""

    name = "boom"
    summary = "raises while applied (tests only)"

    def apply_model(self, model: nn.Module, ctx: BuildContext) -> nn.Module:
        raise RuntimeError("injected failure")


def plans_with_failure() -> list[Plan]:
    return [Plan(), *parse_plans("sgd"), Plan((Boom(),)), *parse_plans("grad-ckpt;frozen-emb")]


class Recorder:
    """Collects progress events; raises KeyboardInterrupt after the n-th finished plan."""

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.events: list[SweepProgress] = []
        self.interrupt_after = interrupt_after

    def __call__(self, event: SweepProgress) -> None:
        self.events.append(event)
        if event.kind == "done" and self.interrupt_after is not None and event.index == self.interrupt_after:
            raise KeyboardInterrupt

    def kinds(self, kind: str) -> list[str]:
        return [e.plan for e in self.events if e.kind == kind]


def result_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    lines = path.read_text().splitlines()
    docs = [json.loads(line) for line in lines]  # every line is whole JSON
    assert docs[0]["kind"] == "vram-advisor/sweep"
    return docs[1:]


def test_a_failing_plan_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    recorder = Recorder()
    result = sweep(TOY_SPEC, plans_with_failure(), out=out, progress=recorder, **SIZES)
    by_plan = {r.plan: r for r in result.results}
    assert list(by_plan) == ["baseline", "sgd", "boom", "grad-ckpt", "frozen-emb"]
    assert by_plan["boom"].status is TrialStatus.ERROR
    assert by_plan["boom"].reason == "RuntimeError: injected failure"
    for name in ("baseline", "sgd", "grad-ckpt", "frozen-emb"):
        assert by_plan[name].ok, by_plan[name].reason
        assert by_plan[name].tensor_peak is not None and by_plan[name].timing is not None
    # progress: plan i/n with the name and elapsed time, stages in between
    assert recorder.kinds("start") == list(by_plan)
    assert str(recorder.events[0]).startswith("plan 1/5 baseline: starting (")
    assert any(e.kind == "stage" and "timed step 1/1" in e.message for e in recorder.events)
    # the file: header, then one line per plan with its key, in order
    docs = result_lines(out)
    assert [d["key"]["plan"] for d in docs] == list(by_plan)
    assert docs[2]["result"]["status"] == "error"
    assert docs[0]["key"] == {
        "model": TOY_SPEC,
        "plan": "baseline",
        "batch_size": 2,
        "seq_len": 16,
        "device": "cpu",
    }
    header = json.loads(out.read_text().splitlines()[0])
    assert header["schema_version"] == 1 and header["sweep"]["plans"] == list(by_plan)
    # the changes against the baseline
    changes = {c.plan: c for c in result.changes()}
    base_peak = by_plan["baseline"].tensor_peak.peak_bytes  # type: ignore[union-attr]
    sgd_peak = by_plan["sgd"].tensor_peak.peak_bytes  # type: ignore[union-attr]
    assert changes["sgd"].peak_change == pytest.approx(sgd_peak / base_peak - 1)
    assert changes["sgd"].peak_change < 0
    assert changes["frozen-emb"].trainable_change == -4096 * 64
    assert changes["boom"].peak_bytes is None and changes["boom"].reason == "RuntimeError: injected failure"


def test_interrupted_sweep_resumes_without_rerunning_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    plans = plans_with_failure()
    first = Recorder(interrupt_after=2)
    with pytest.raises(KeyboardInterrupt):
        sweep(TOY_SPEC, plans, out=out, progress=first, **FAST)
    assert first.kinds("done") == ["baseline", "sgd"]
    kept = read_sweep_file(out).results
    assert [k.plan for k in kept] == ["baseline", "sgd"]  # both on disk despite Ctrl-C

    second = Recorder()
    result = sweep(TOY_SPEC, plans, out=out, progress=second, **FAST)
    assert second.kinds("reused") == ["baseline", "sgd"]
    assert second.kinds("start") == ["boom", "grad-ckpt", "frozen-emb"]  # only what was left
    assert [r.plan for r in result.results] == ["baseline", "sgd", "boom", "grad-ckpt", "frozen-emb"]
    assert result.reused == ("baseline", "sgd")
    for key, old in kept.items():  # the reused results are the ones measured the first time
        assert result.result(key.plan) == old
    assert [d["key"]["plan"] for d in result_lines(out)] == [r.plan for r in result.results]

    third = Recorder()  # all done: nothing runs, failures included
    sweep(TOY_SPEC, plans, out=out, progress=third, **FAST)
    assert third.kinds("start") == [] and len(third.kinds("reused")) == 5
    fourth = Recorder()  # unless asked to retry them
    sweep(TOY_SPEC, plans, out=out, progress=fourth, retry_failed=True, **FAST)
    assert fourth.kinds("start") == ["boom"]
    assert len(read_sweep_file(out).results) == 5  # the newer line replaces the older one


def test_a_line_cut_short_by_a_crash_is_dropped_and_its_plan_rerun(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    plans = parse_plans("baseline;sgd")
    sweep(TOY_SPEC, plans, out=out, **FAST)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # crash mid-write of sgd
    found = read_sweep_file(out)
    assert [k.plan for k in found.results] == ["baseline"] and found.damaged_lines == 1
    recorder = Recorder()
    sweep(TOY_SPEC, plans, out=out, progress=recorder, **FAST)
    assert recorder.kinds("reused") == ["baseline"] and recorder.kinds("start") == ["sgd"]
    assert [d["key"]["plan"] for d in result_lines(out)] == ["baseline", "sgd"]


def test_a_file_that_is_not_a_sweep_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "notes.jsonl"
    out.write_text('{"hello": "world"}\n')
    with pytest.raises(ReportError, match="not a vram-advisor sweep results file") as exc:
        sweep(TOY_SPEC, [Plan()], out=out, **FAST)
    assert "hint:" in str(exc.value)
    assert out.read_text() == '{"hello": "world"}\n'  # untouched
    other = tmp_path / "notes.txt"
    other.write_text("my notes, no newline at the end")
    with pytest.raises(ReportError, match="does not start with a sweep header"):
        sweep(TOY_SPEC, [Plan()], out=other, **FAST)
    assert other.read_text() == "my notes, no newline at the end"  # never truncated


def test_a_header_cut_short_starts_the_file_afresh(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    out.write_text('{"created":"2026-01-01T00:00:00+00:00","environ')  # crash while writing it
    result = sweep(TOY_SPEC, [Plan()], out=out, **FAST)
    assert result.results[0].ok
    assert [d["key"]["plan"] for d in result_lines(out)] == ["baseline"]


def test_plan_errors_and_unsupported_cuts_in_a_sweep(tmp_path: Path) -> None:
    space = user_plans(["lora(targets=nope)", "eager-attn", "offload"])
    result = sweep(TOY_SPEC, space, **FAST)
    status = {r.plan: (r.status, r.reason or "") for r in result.results}
    assert status["baseline"][0] is TrialStatus.OK
    assert status["lora(targets=nope)"][0] is TrialStatus.ERROR
    assert "PlanError: LoRA target nope match no module of ToyLM" in status["lora(targets=nope)"][1]
    assert "fc1 (Linear ×2)" in status["lora(targets=nope)"][1]
    assert status["eager-attn"][0] is TrialStatus.UNSUPPORTED
    assert status["offload"][0] is TrialStatus.UNSUPPORTED
    assert result.path is None  # nothing written without out=


def test_cli_sweep_prints_the_change_table_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.jsonl"
    argv = ["sweep", "--model", TOY_SPEC, "--cuts", "sgd,adafactor", "--max-combo", "2",
            "--batch", "2", "--seq", "16", "--steps", "1", "--device", "cpu", "--out", str(out),
            "--markdown", str(tmp_path / "t.md")]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[2]
    for column in ("plan", "status", "peak", "Δ peak", "tokens/s", "Δ tok/s", "trainable", "Δ trainable"):
        assert column in header
    assert "adafactor+sgd: adafactor and sgd both choose the optimizer" in text
    assert "| plan | status |" in (tmp_path / "t.md").read_text()
    loaded = load_sweep(out)
    assert [r.plan for r in loaded.results] == ["baseline", "sgd", "adafactor"]
    sgd = next(c for c in loaded.changes() if c.plan == "sgd")
    assert sgd.peak_change is not None and sgd.peak_change < 0 and sgd.trainable_change == 0
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("done before, reused") == 3 and "starting" not in err


def test_cli_sweep_with_a_plan_list_and_the_cut_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["sweep", "--list-cuts"]) == 0
    listing = capsys.readouterr().out
    assert "r=8, alpha=32, dropout=0.05, targets=auto" in listing and "[opt-in]" in listing
    argv = ["sweep", "--model", TOY_SPEC, "--plans", "frozen-emb+sgd;lora+frozen-emb", "--batch", "1",
            "--seq", "8", "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "p.jsonl")]  # fmt: skip
    # a plan named explicitly is run or refused with the reason, never silently pruned
    assert main(argv) == 1
    assert "lora+frozen-emb is refused (redundant): frozen-emb is redundant under lora" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()
    argv[4] = "frozen-emb+sgd"
    assert main(argv) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("frozen-emb+sgd "))
    assert "-262k" in row  # the embedding's 4096 × 64 trainable parameters fewer
    assert main(["sweep", "--model", TOY_SPEC, "--cuts", "lorra", "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "unknown cut 'lorra'" in capsys.readouterr().err


def test_plan_names_are_stable_keys() -> None:
    # sweeps resume by plan name: the same set of cuts must always give the same name
    assert parse_plan("sgd+grad-ckpt+lora(r=16)").name == "grad-ckpt+lora(r=16)+sgd"
    assert Plan().name == "baseline"


def test_a_model_too_big_to_measure_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from advisor.core.errors import InvalidInputError

    out = tmp_path / "big.jsonl"
    with pytest.raises(InvalidInputError, match="simulate it instead"):
        sweep("llama-3.1-8b", "lora", batch_size=1, seq_len=16, device="cpu", out=out)
    assert not out.exists()  # nothing written for a sweep that cannot start


# -- results files that cannot be mixed or lost (issue 18) -------------------------------------


def test_resuming_another_sweeps_file_is_refused_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep.jsonl"
    sweep(TOY_SPEC, parse_plans("baseline;sgd"), out=out, **FAST)
    before = out.read_bytes()
    with pytest.raises(ReportError) as info:
        sweep(TOY_SPEC, parse_plans("baseline;sgd"), out=out, **{**FAST, "batch_size": 1})
    err = info.value
    assert err.message == (
        f"{out} holds another sweep ({TOY_SPEC}, batch 2 × seq 16 on cpu, 0 timed + 1 warm-up steps), "
        f"not this one ({TOY_SPEC}, batch 1 × seq 16 on cpu, 0 timed + 1 warm-up steps): batch_size differs"
    )
    assert err.hint is not None and "out=PATH" in err.hint and "new=True" in err.hint
    assert str(tmp_path / "sweep.old.jsonl") in err.hint and err.argument == "out"
    with pytest.raises(ReportError, match="steps, warmup_steps differ"):
        sweep(TOY_SPEC, [Plan()], out=out, **{**FAST, "steps": 1, "warmup_steps": 0})
    assert out.read_bytes() == before  # untouched
    # the CLI says the same with its flags
    argv = ["sweep", "--model", TOY_SPEC, "--plans", "baseline", "--batch", "1", "--seq", "16", "--steps", "1",
            "--warmup", "1", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 1
    shown = capsys.readouterr().err
    assert "batch 2 × seq 16" in shown and "batch 1 × seq 16" in shown
    assert "--out PATH" in shown and "with --new (the old file" in shown and "Traceback" not in shown
    # --new moves the old file aside, whole, and starts afresh
    assert main([*argv, "--new"]) == 0
    assert (tmp_path / "sweep.old.jsonl").read_bytes() == before
    assert read_sweep_file(out).header["sweep"]["batch_size"] == 1  # type: ignore[index]
    assert [d["key"]["plan"] for d in result_lines(out)] == ["baseline"]
    assert main([*argv, "--new"]) == 0  # a second --new keeps the first old file too
    assert (tmp_path / "sweep.old.jsonl").read_bytes() == before
    assert (tmp_path / "sweep.old-2.jsonl").exists()


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    plans = parse_plans("baseline;sgd;grad-ckpt")
    sweep(TOY_SPEC, plans[:2], out=out, **FAST)
    out.write_bytes(out.read_bytes().rstrip(b"\n"))  # e.g. written by another program or an editor
    found = read_sweep_file(out)
    assert [k.plan for k in found.results] == ["baseline", "sgd"] and found.damaged_lines == 0
    recorder = Recorder()
    sweep(TOY_SPEC, plans, out=out, progress=recorder, **FAST)
    assert recorder.kinds("reused") == ["baseline", "sgd"] and recorder.kinds("start") == ["grad-ckpt"]
    assert [d["key"]["plan"] for d in result_lines(out)] == ["baseline", "sgd", "grad-ckpt"]
    assert not (tmp_path / "sweep.damaged.jsonl").exists()


def test_a_half_written_last_line_is_moved_to_a_side_file_never_dropped(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    plans = parse_plans("baseline;sgd")
    sweep(TOY_SPEC, plans, out=out, **FAST)
    lines = out.read_bytes().splitlines(keepends=True)
    half = lines[2][: len(lines[2]) // 2]
    out.write_bytes(b"".join(lines[:2]) + half)  # a crash mid-write of sgd
    sweep(TOY_SPEC, plans, out=out, **FAST)
    assert (tmp_path / "sweep.damaged.jsonl").read_bytes() == half + b"\n"
    assert [d["key"]["plan"] for d in result_lines(out)] == ["baseline", "sgd"]


def test_a_damaged_middle_line_is_skipped_with_a_warning_and_left_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "sweep.jsonl"
    plans = parse_plans("baseline;sgd")
    sweep(TOY_SPEC, plans, out=out, **FAST)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(lines[0] + b'{"kind":"result","key":{"mod\n' + b"".join(lines[1:]))
    with caplog.at_level("WARNING"):
        found = read_sweep_file(out)
    assert found.damaged_lines == 1 and [k.plan for k in found.results] == ["baseline", "sgd"]
    assert "sweep.jsonl:2: skipping a damaged line (left in the file)" in caplog.text
    sweep(TOY_SPEC, [*plans, *parse_plans("grad-ckpt")], out=out, **FAST)
    assert out.read_bytes().splitlines()[1] == b'{"kind":"result","key":{"mod'


def test_a_sweep_file_of_another_version_or_tool_is_refused_with_its_version(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    sweep(TOY_SPEC, [Plan()], out=out, **FAST)
    header, *rest = out.read_text().splitlines(keepends=True)
    newer = tmp_path / "newer.jsonl"
    newer.write_text(header.replace('"schema_version":1', '"schema_version":7') + "".join(rest))
    for call in (lambda: load_sweep(newer), lambda: sweep(TOY_SPEC, [Plan()], out=newer, **FAST)):
        with pytest.raises(ReportError, match="sweep results file of schema_version 7; this vram-advisor reads version 1"):
            call()
    other = tmp_path / "other.jsonl"
    other.write_text('{"kind": "someone-else/log", "schema_version": 3}\n')
    with pytest.raises(ReportError, match="kind 'someone-else/log', schema_version 3"):
        load_sweep(other)


def test_load_sweep_leaves_out_results_of_another_sweep_mixed_in_by_an_older_version(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sweep(TOY_SPEC, parse_plans("baseline;sgd"), out=a, **FAST)
    sweep(TOY_SPEC, parse_plans("baseline;grad-ckpt"), out=b, **{**FAST, "batch_size": 1})
    with a.open("a") as fh:  # what `sweep --out a.jsonl` with another batch used to do
        fh.writelines(b.read_text().splitlines(keepends=True)[1:])
    loaded = load_sweep(a)
    assert [(r.plan, r.batch_size) for r in loaded.results] == [("baseline", 2), ("sgd", 2)]


_KILLED_SWEEP = """
import sys
from advisor.engines.sweep import sweep
from advisor.plans.cuts import parse_plans
sys.setrecursionlimit(10000)
sweep(sys.argv[1], parse_plans("baseline;sgd;grad-ckpt;frozen-emb"), out=sys.argv[2], batch_size=2,
      seq_len=16, device="cpu", steps=0, warmup_steps=1,
      progress=lambda e: print(e.kind, e.plan, flush=True))
"""


@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_resumes_without_duplicates(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "sweep.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SWEEP, TOY_SPEC, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("done sgd"):
            break
    proc.send_signal(signal.SIGKILL)  # no cleanup, no flush: whatever the kernel has is all
    proc.wait()
    kept = [k.plan for k in read_sweep_file(out).results]
    assert kept[:2] == ["baseline", "sgd"]
    recorder = Recorder()
    result = sweep(TOY_SPEC, parse_plans("baseline;sgd;grad-ckpt;frozen-emb"), out=out, progress=recorder, **FAST)
    assert recorder.kinds("reused") == kept
    plans = [d["key"]["plan"] for d in result_lines(out)]
    assert plans == ["baseline", "sgd", "grad-ckpt", "frozen-emb"] and len(set(plans)) == len(plans)
    assert [r.plan for r in result.results] == plans
