"""The command line: help, profile output and JSON, and one clear error for bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.cli import main


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "profile" in out and "models" in out


def test_profile_prints_a_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    code = main(["profile", "--model", "tiny-gpt2", "--batch", "2", "--seq", "32", "--steps", "1", "--device", "cpu", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "peak tensor memory" in text and "measured" in text and "tok/s" in text
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 2 and doc["kind"] == "vram-advisor/profile"
    result = doc["result"]
    assert result["status"] == "ok" and result["tensor_peak"]["provenance"] == "measured"
    b = result["tensor_peak"]["breakdown"]
    parts = ("parameter_bytes", "buffer_bytes", "gradient_bytes", "optimizer_state_bytes", "input_bytes", "activation_bytes")
    assert sum(b[k] for k in parts) == result["tensor_peak"]["peak_bytes"]
    assert doc["environment"]["torch"]


def test_unknown_model_is_one_clear_error_and_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["profile", "--model", "no-such-model"])
    assert code == 1
    err = capsys.readouterr().err
    assert "error: unknown model 'no-such-model'" in err
    assert "Traceback" not in err


def test_bad_batch_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["profile", "--batch", "0"])
    assert info.value.code == 2
    assert "must be ≥ 1" in capsys.readouterr().err


def test_importing_advisor_does_not_import_textual() -> None:
    code = "import sys, advisor, advisor.cli; sys.exit(1 if 'textual' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_every_command_builds_its_parser_and_runs_through_one_function() -> None:
    from advisor.cli import COMMANDS, build_parser

    assert all(callable(c.add_parser) for c in COMMANDS)
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {c.__name__.rsplit(".", 1)[1] for c in COMMANDS}


def test_simulate_on_a_budget_alone(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--model", "tiny-gpt2", "-b", "1", "-s", "16", "--gpu-mem", "1MiB"])
    out = capsys.readouterr().out
    assert code == 0
    assert "GPU need on Custom 1MiB budget" in out and "does not fit" in out


def test_simulate_with_two_plans_needs_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--model", "tiny-gpt2", "--plans", "lora;sgd"]) == 1
    assert "add --sweep" in capsys.readouterr().err


# -- start-up: listing commands import neither torch nor transformers --------------------------


@pytest.mark.parametrize("argv", [["--help"], ["gpus"], ["models"]])
def test_listing_commands_import_no_torch(argv: list[str]) -> None:
    code = (
        "import sys\nfrom advisor.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.rstrip().endswith("heavy: []"), done.stdout[-300:]
    assert "tiny-llama" in done.stdout or "rtx-4090" in done.stdout or "profile" in done.stdout


def test_models_lists_what_resolve_model_knows(capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.models import builtin_models

    assert main(["models"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    registered = [m.name for m in builtin_models()]
    assert listed == registered[: len(listed)]
    assert {"tiny-llama", "minilm", "llama-3.2-1b", "llama-3.1-8b"} <= set(listed)


# -- progress: plan count, current plan and an ETA from the mean time per finished plan -------


def _event(kind: str, index: int, plan: str, elapsed: float, run_elapsed: float, message: str = "", phase: str = ""):
    from advisor.engines.progress import SweepProgress

    return SweepProgress(kind, index, 3, plan, elapsed, run_elapsed, message, None, phase)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_lines_name_the_plan_and_its_count_with_an_eta() -> None:
    from advisor.cli.common import ProgressLine

    stream = io.StringIO()
    line = ProgressLine(stream=stream)
    for event in (
        _event("start", 1, "baseline", 0, 0, "starting"),
        _event("stage", 1, "baseline", 2, 2, "timed step 1/3"),  # not a plain line: only starts and ends
        _event("done", 1, "baseline", 10, 10, "ok"),
        _event("start", 2, "lora", 0, 10, "starting"),
        _event("done", 2, "lora", 20, 30, "ok"),
        _event("start", 3, "sgd", 0, 30, "starting"),
        _event("done", 3, "sgd", 5, 35, "ok"),
    ):
        line(event)
    line.done()
    assert stream.getvalue().splitlines() == [
        "[1/3] baseline: starting · 0:00",
        "[1/3] baseline: ok (10.0 s) · ETA 0:20",  # 10 s a plan, 2 left
        "[2/3] lora: starting · 0:10 · ETA 0:20",
        "[2/3] lora: ok (20.0 s) · ETA 0:15",  # (10 + 20) / 2 s a plan, 1 left
        "[3/3] sgd: starting · 0:30 · ETA 0:15",
        "[3/3] sgd: ok (5.0 s)",
    ]
    assert line.finished == 3


def test_progress_redraws_one_line_in_a_terminal_and_counts_the_running_plan() -> None:
    from advisor.cli.common import ProgressLine

    stream = _Terminal()
    line = ProgressLine(stream=stream)
    line(_event("done", 1, "baseline", 10, 10, "ok"))
    line(_event("stage", 2, "lora", 4, 14, "timed step 1/3"))
    assert stream.getvalue() == (
        "\r\033[K[1/3] baseline: ok (10.0 s) · ETA 0:20\n"  # a finished plan keeps its line
        "\r\033[K[2/3] lora: timed step 1/3 · 0:14 · ETA 0:16"  # 2 plans of 10 s, 4 s of one done
    )
    line.done()
    assert stream.getvalue().endswith("\r\033[K")


def test_progress_starts_its_count_again_for_a_new_phase_and_is_silent_when_quiet() -> None:
    from advisor.cli.common import ProgressLine

    stream = io.StringIO()
    line = ProgressLine(stream=stream)
    line(_event("done", 3, "sgd", 60, 100, "ok"))
    line(_event("start", 1, "lora", 0, 100, "searching", phase="largest micro-batch"))
    assert stream.getvalue().splitlines()[-1] == "largest micro-batch [1/3] lora: searching · 1:40"  # no ETA yet
    quiet = io.StringIO()
    silent = ProgressLine(stream=quiet, quiet=True)
    silent(_event("done", 1, "baseline", 10, 10, "ok"))
    silent("building model")
    assert quiet.getvalue() == "" and silent.finished == 1


def test_simulate_sweep_and_recommend_show_progress_per_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--model", "tiny-gpt2", "-b", "1", "-s", "16", "--sweep", "--plans", "lora;sgd", "--workers", "1"]) == 0
    err = [e for e in capsys.readouterr().err.splitlines() if e[:1] == "[" and e[1:2].isdigit()]
    assert err[0] == "[1/3] baseline: starting · 0:00"
    assert err[-1].startswith("[3/3] sgd: ok (") and "ETA" not in err[-1]
    assert any(e.startswith("[2/3] lora: starting") and " · ETA " in e for e in err)
    args = ["recommend", "--model", "tiny-gpt2", "-b", "1", "-s", "16", "--gpu-mem", "2GiB", "--plans", "lora"]
    assert main([*args, "--check-top", "1"]) == 0
    err = [e for e in capsys.readouterr().err.splitlines() if e.startswith("tiny-gpt2: ")]
    assert err[0] == "tiny-gpt2: trials [1/2] baseline: at micro-batch 1 · 0:00"
    assert any(e.startswith("tiny-gpt2: largest micro-batch [1/1] ") for e in err)
    assert main([*args, "--check-top", "0", "--quiet"]) == 0
    assert "tiny-gpt2: " not in capsys.readouterr().err


# -- sweep --simulate: the sweep's change table from the simulator, its file marked simulated --


def test_sweep_simulate_replays_plans_and_marks_its_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.jsonl"
    argv = ["sweep", "--simulate", "--model", "tiny-gpt2", "-b", "1", "-s", "16", "--plans", "lora", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "tiny-gpt2: batch 1 × seq 16 on simulated:cuda, 2 plans (0 reused" in text
    assert "peaks: simulated on fake tensors" in text
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["sweep"]["engine"] == "simulate" and lines[0]["sweep"]["device"] == "simulated:cuda"
    results = [line["result"] for line in lines[1:]]
    assert [r["plan"] for r in results] == ["baseline", "lora"]
    assert all(r["status"] == "ok" and r["tensor_peak"]["provenance"] == "simulated" for r in results)
    assert results[1]["tensor_peak"]["peak_bytes"] < results[0]["tensor_peak"]["peak_bytes"]
    assert main(argv) == 0  # the same command again: both reused, nothing simulated
    assert "2 plans (2 reused" in capsys.readouterr().out


def test_sweep_simulate_by_default_writes_its_own_file() -> None:
    from advisor.cli.sweep import default_out

    assert default_out("llama-3.1-8b", 1, 2048, simulated=True) == Path("reports/sweep-llama-3.1-8b-b1-s2048-simulated.jsonl")
    assert default_out("llama-3.1-8b", 1, 2048) == Path("reports/sweep-llama-3.1-8b-b1-s2048.jsonl")


@pytest.mark.slow
def test_sweep_simulate_runs_a_preset_without_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # llama-3.2-1b: 1.2B parameters, no weights; measuring it would build it for real
    argv = ["sweep", "--simulate", "--model", "llama-3.2-1b", "-b", "1", "-s", "16", "--plans", "lora"]
    assert main([*argv, "--out", str(tmp_path / "s.jsonl")]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line[:4] in ("base", "lora")}
    assert rows["baseline"][1] == "ok" and rows["lora"][1] == "ok" and rows["lora"][4].startswith("-")


# -- output that fits the terminal -------------------------------------------------------------

_TINY = ["--model", "tiny-gpt2", "-b", "1", "-s", "16"]
_WIDE_COMMANDS = {
    "recommend": ["recommend", *_TINY, "--gpu", "rtx-4090", "--plans", "lora;sgd;grad-ckpt+bf16", "--check-top", "0"],
    "simulate": ["simulate", *_TINY, "--gpu", "rtx-4090", "--growth", "--plans", "lora+grad-ckpt"],
    "simulate --sweep": [
        "simulate", *_TINY, "--sweep", "--gpu", "rtx-4090", "--plans", "lora;sgd;qlora;grad-ckpt+bf16",
    ],
    "profile": ["profile", *_TINY, "--steps", "1", "--device", "cpu", "--gpu", "t4"],
}
# every column header of each command's widest table
_ALL_COLUMNS = {
    "recommend": ["#", "plan", "fits", "need (of budget)", "headroom", "max micro-batch", "speed", "time", "cost", "front"],
    "simulate": ["figure", "value", "source"],
    "simulate --sweep": ["plan", "status", "tensor peak", "Δ peak", "GPU need", "fits", "FLOP/step", "step time", "note"],
    "profile": ["figure", "value", "source"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(_WIDE_COMMANDS))
def test_output_fits_80_columns_and_shows_every_column_at_200(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(_WIDE_COMMANDS[command]) == 0
    narrow = capsys.readouterr().out
    too_long = [line for line in narrow.splitlines() if len(line) > 80]
    assert not too_long, "\n".join(too_long)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(_WIDE_COMMANDS[command]) == 0
    wide = capsys.readouterr().out
    header = next(line for line in wide.splitlines() if line.startswith(_ALL_COLUMNS[command][0] + " "))
    assert [h for h in _ALL_COLUMNS[command] if h not in header] == []
    assert "not shown at this width" not in wide and max(len(line) for line in wide.splitlines()) <= 200


@pytest.mark.slow
def test_a_measured_sweep_fits_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "a-results-file-with-a-long-name-to-wrap-in-a-narrow-terminal.jsonl"
    argv = ["sweep", *_TINY, "--plans", "lora;sgd;grad-ckpt", "--steps", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if len(line) > 80] == []
    assert "(not shown at this width: " in printed  # the change table left columns out
    monkeypatch.setenv("COLUMNS", "200")
    assert main(argv) == 0  # every result reused
    wide = capsys.readouterr().out
    assert "not shown at this width" not in wide
    assert "Δ trainable" in wide and "tokens/s" in wide
