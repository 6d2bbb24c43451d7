"""``simulate`` and ``profile`` take ``--dataset FILE`` / ``--lengths PCTS`` / ``--text-field``:
a batching plan runs the worst batch it forms from those real lengths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "skewed_lengths.jsonl"


def _result(path: Path) -> dict:  # type: ignore[type-arg]
    doc = json.loads(path.read_text())
    return doc["result"] if "result" in doc else doc["results"][0]  # type: ignore[no-any-return]


def test_simulate_pad_to_max_pads_to_the_longest_given_length(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.json"
    args = ["simulate", "-m", "tiny-llama", "--batch", "2", "--seq", "32", "--target", "cpu", "--plans", "pad-to-max"]
    assert main([*args, "--lengths", "p50=30,p95=80,max=100", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sequence lengths:" in text and "max 100 tokens" in text
    result = _result(out)
    assert result["status"] == "ok"
    # pad-to-max: micro-batch × the longest sample, not the --seq given
    assert (result["batch_size"], result["seq_len"]) == (2, 100)


def test_simulate_and_profile_read_a_dataset_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from advisor import dataset_lengths, resolve_model

    longest = dataset_lengths(FIXTURE, resolve_model("tiny-llama")).max_len
    sim, meas = tmp_path / "s.json", tmp_path / "p.json"
    common = ["-m", "tiny-llama", "--batch", "1", "--plans", "pad-to-max", "--dataset", str(FIXTURE), "--json"]
    assert main(["simulate", *common, str(sim), "--target", "cpu"]) == 0
    assert main(["profile", *common, str(meas), "--device", "cpu", "--steps", "1", "--warmup", "0"]) == 0
    assert capsys.readouterr().out.count(f"max {longest} tokens") == 2
    s, m = _result(sim), _result(meas)
    assert s["seq_len"] == m["seq_len"] == longest
    assert m["tensor_peak"]["provenance"] == "measured"
    # the same worst batch, measured and simulated on this CPU
    assert s["tensor_peak"]["peak_bytes"] == pytest.approx(m["tensor_peak"]["peak_bytes"], rel=0.005)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["simulate", "--sweep", "--lengths", "p50=30,max=100"], "a sweep runs fixed batches"),
        (["profile", "--text-field", "body"], "add --dataset FILE"),
        (["simulate", "--dataset", "no/such/file.jsonl"], "no dataset file"),
    ],
)
def test_length_options_are_refused_in_one_line(args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([args[0], "-m", "tiny-llama", *args[1:]]) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_dataset_and_lengths_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--dataset", str(FIXTURE), "--lengths", "max=100"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
