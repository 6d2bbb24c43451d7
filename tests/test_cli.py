"""The command line: help, profile output and JSON, and one clear error for bad input."""

from __future__ import annotations

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
    assert doc["schema_version"] == 1 and doc["kind"] == "vram-advisor/profile"
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


# -- output that fits the terminal -------------------------------------------------------------

_TINY = ["--model", "tiny-gpt2", "-b", "1", "-s", "16"]
_WIDE_COMMANDS = {
    "recommend": ["recommend", *_TINY, "--gpu", "rtx-4090", "--plans", "lora;sgd;grad-ckpt+bf16", "--check-top", "0"],
    "simulate": ["simulate", *_TINY, "--gpu", "rtx-4090", "--growth", "--plans", "lora+grad-ckpt"],
    "simulate --sweep": [
        "simulate", *_TINY, "--sweep", "--gpu", "rtx-4090", "--plans", "lora;lora+frozen-emb;sgd;qlora",
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
    argv = ["sweep", *_TINY, "--plans", "lora;sgd;lora+frozen-emb", "--steps", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if len(line) > 80] == []
    assert "(not shown at this width: " in printed  # the change table left columns out
    monkeypatch.setenv("COLUMNS", "200")
    assert main(argv) == 0  # every result reused
    wide = capsys.readouterr().out
    assert "not shown at this width" not in wide
    assert "Δ trainable" in wide and "tokens/s" in wide
