"""Reports: JSON round trip, clear errors for damaged or foreign files, Markdown, SVG, CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from advisor.cli import main
from advisor.core.errors import ReportError
from advisor.core.io import SCHEMA_VERSION
from advisor.report import KIND, Advice, from_json, load_report, save_report
from advisor.report.snippets import lora_config_code, snippet_for, training_arguments_code

from .test_recommend import fake_recommendation

GiB = 2**30


@pytest.fixture(scope="module")
def rec() -> Advice:
    import dataclasses

    r = fake_recommendation(gpu="rtx-4090", plans="lora;grad-ckpt;grad-ckpt+lora;bf16;sgd;qlora")
    return Advice.of(
        dataclasses.replace(
            r,
            environment={"torch": "2.x", "transformers": "5.x", "vram_advisor": "0.1.0"},
            command="vram-advisor recommend --model fake --gpu rtx-4090 --report reports/fake",
        )
    )


# -- JSON ------------------------------------------------------------------------------------


def test_json_round_trips(rec: Advice) -> None:
    text = rec.to_json()
    again = Advice.from_json(text)
    assert again == rec
    assert again.to_json() == text


def test_json_carries_schema_kind_environment_units_and_provenance(rec: Advice) -> None:
    data = json.loads(rec.to_json())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["kind"] == KIND
    assert data["environment"]["torch"] == "2.x"
    assert data["best"] == rec.best.plan  # type: ignore[union-attr]
    top = data["ranked"][0]
    for key in (
        "need",
        "budget",
        "memory",
        "headroom",
        "max_micro_batch",
        "tokens_per_s",
        "train_time",
        "cost",
    ):
        figure = top[key]
        assert set(figure) >= {"value", "unit", "provenance"}, key
        assert figure["provenance"] in ("measured", "simulated", "estimated", "input", "catalog")
    assert {p["unit"] for p in top["need"]["parts"]} == {"bytes"}
    assert data["workload"]["seq_len"] == {"value": 128, "unit": "tokens", "provenance": "input"}
    assert data["comparison"]["scratch"]["tokens"]["provenance"] == "estimated"


def test_save_writes_json_markdown_and_chart_atomically(rec: Advice, tmp_path: Path) -> None:
    paths = save_report(rec, tmp_path / "out" / "fake-rtx-4090")
    assert {p.name for p in paths.values()} == {"fake-rtx-4090.json", "fake-rtx-4090.md", "fake-rtx-4090.svg"}
    assert load_report(paths["json"]) == rec
    assert "](fake-rtx-4090.svg)" in paths["md"].read_text()
    assert not [p for p in paths["json"].parent.iterdir() if p.name.startswith(".")]  # no temp files left
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in paths.values())  # readable, not private
    first = {k: p.read_bytes() for k, p in paths.items()}
    save_report(rec, tmp_path / "out" / "fake-rtx-4090.json")  # a suffix is dropped: same files
    assert {k: p.read_bytes() for k, p in paths.items()} == first  # deterministic


# -- damaged and foreign files ---------------------------------------------------------------


def test_invalid_json_names_the_file_and_the_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema_version": 1, "kind": ')
    with pytest.raises(ReportError) as info:
        load_report(path)
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message and "line 1, column" in message
    assert "vram-advisor recommend" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({"name": "peft config", "r": 8}, "is not a vram-advisor report (it has no 'kind' field"),
        ({"kind": "someone/else", "schema_version": 1}, "its kind is 'someone/else'"),
        ([1, 2, 3], "is not a vram-advisor report"),
        ({"kind": "vram-advisor/profile", "schema_version": 1}, "profile file, not a recommendation report"),
    ],
)
def test_foreign_json_is_not_one_of_ours(tmp_path: Path, content: object, words: str) -> None:
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ReportError) as info:
        load_report(path)
    assert words in str(info.value)


def test_damaged_report_is_a_clear_error(rec: Advice) -> None:
    data = json.loads(rec.to_json())
    del data["ranked"][0]["need"]["parts"]
    with pytest.raises(ReportError, match="is damaged: missing field 'parts'"):
        from_json(json.dumps(data), "x.json")
    data = json.loads(rec.to_json())
    data["workload"]["margin"]["value"] = 7
    with pytest.raises(ReportError, match=r"x.json is damaged: .*margin"):
        from_json(json.dumps(data), "x.json")
    data = json.loads(rec.to_json())
    data["schema_version"] = "one"
    with pytest.raises(ReportError, match="schema_version"):
        from_json(json.dumps(data), "x.json")
    for count in ([], 1.5, "7B"):  # a parameter count edited into something else
        data = json.loads(rec.to_json())
        data["model"]["parameters"] = {"value": count, "unit": "params"}
        with pytest.raises(ReportError, match=r"x.json is damaged: TypeError: expected a (whole )?number"):
            from_json(json.dumps(data), "x.json")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no report at"):
        load_report(tmp_path / "nope.json")


def test_unknown_keys_load_with_a_warning(rec: Advice, caplog: pytest.LogCaptureFixture) -> None:
    data = json.loads(rec.to_json())
    data["something_new"] = {"a": 1}
    data["ranked"][0]["new_figure"] = {"value": 1, "unit": "x", "provenance": "estimated"}
    with caplog.at_level("WARNING"):
        again = from_json(json.dumps(data))
    assert again.ranked == rec.ranked
    assert "ignoring unknown report keys: something_new" in caplog.text


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 99])
def test_a_report_of_an_unknown_schema_version_is_refused_naming_it(rec: Advice, version: int) -> None:
    data = json.loads(rec.to_json())
    data["schema_version"] = version
    with pytest.raises(ReportError) as info:
        from_json(json.dumps(data), "r.json")
    assert info.value.message == f"r.json is a report of schema_version {version}; this vram-advisor reads versions 1, 2"
    assert "upgrade vram-advisor" in (info.value.hint or "")


def test_a_report_of_another_tool_is_refused_with_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"kind": "other-tool/plan", "schema_version": 4}))
    with pytest.raises(ReportError, match="its kind is 'other-tool/plan', schema_version 4"):
        load_report(path)


def test_reports_and_sweep_files_are_read_as_data_never_run(
    rec: Advice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import pickle

    from advisor.engines.sweep import load_sweep

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\ndef build(): pass\n")
    spec = f"{evil}:build"
    path = tmp_path / "r.json"
    path.write_text(dataclasses.replace(rec, model=spec).to_json())

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("a report was unpickled")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    again = load_report(path)
    assert again.model == spec
    again.to_text(), again.to_markdown(), again.chart_svg()
    assert main(["report", "show", str(path), "--format", "text"]) == 0
    sweep_file = tmp_path / "s.jsonl"
    sweep_file.write_text(
        json.dumps({"kind": "vram-advisor/sweep", "schema_version": 1, "sweep": {"model": spec, "batch_size": 1,
                    "seq_len": 8, "device": "cpu"}}) + "\n"
    )  # fmt: skip
    assert load_sweep(sweep_file).model == spec
    assert not marker.exists()  # the model named in the files is text: nothing was imported


# -- Markdown, text, chart, snippets ---------------------------------------------------------


def test_markdown_has_target_table_breakdown_snippet_and_command(rec: Advice) -> None:
    md = rec.to_markdown(chart="fake.svg")
    best = rec.best
    assert best is not None
    for heading in (
        "## Target and workload",
        "## Ranked plans",
        "## Memory of the top plans against the budget",
        "## Plans left out",
        "## Fine-tune vs from scratch",
        f"## How to run the best plan: {best.plan}",
        "## Reproduce this report",
    ):
        assert heading in md, heading
    assert "![memory by plan" in md and "(fake.svg)" in md
    assert rec.command in md
    assert "```python" in md
    assert "qlora" in md and "cannot be simulated" in md
    # every ranked plan is a row of the table, with its why-line
    for v in rec.ranked:
        assert f"| {v.rank} | {v.plan} |" in md
        assert v.why.replace("|", "\\|") in md


def test_text_summary_lists_every_plan(rec: Advice) -> None:
    text = rec.to_text()
    assert text.splitlines()[0].startswith("fake on NVIDIA GeForce RTX 4090")
    assert "Best: " in text
    for v in rec.ranked:
        assert v.plan in text


def test_chart_is_valid_svg_with_a_bar_per_plan_and_the_budget_line(rec: Advice) -> None:
    svg = rec.chart_svg()
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = "".join(root.itertext())
    assert "usable 21.6 GiB" in texts and "GPU 24.0 GiB" in texts
    for v in rec.ranked:
        assert v.plan in texts
    assert svg == rec.chart_svg()


def test_snippets_for_lora_and_training_arguments(rec: Advice) -> None:
    from peft import LoraConfig

    v = rec.verdict("grad-ckpt+lora")
    code = lora_config_code(v)
    assert code is not None
    config = eval(code, {"LoraConfig": LoraConfig})
    assert (config.r, config.lora_alpha) == (8, 32)
    args = training_arguments_code(v, 4)
    assert "gradient_checkpointing=True" in args and "per_device_train_batch_size=4" in args
    assert 'optim="sgd"' in training_arguments_code(rec.verdict("sgd"), 4)
    assert "bf16=True" in training_arguments_code(rec.verdict("bf16"), 4)
    for plan in ("grad-ckpt+lora", "sgd", "bf16", "baseline"):
        compile(snippet_for(rec, rec.verdict(plan)), plan, "exec")  # valid Python


def test_plain_module_snippet_is_plain_pytorch(rec: Advice) -> None:
    import dataclasses

    custom = dataclasses.replace(rec, model_task="custom")
    code = snippet_for(custom, custom.verdict("grad-ckpt+lora"))
    assert "transformers" not in code
    assert "checkpoint(" in code and "get_peft_model" in code and "optimizer.step()" in code
    compile(code, "plain", "exec")
    assert "optimizer.zero_grad(set_to_none=True)" in code  # torch >= 2.0's default
    # a plan for an older loop that zeroes the gradients in place says so in its loop
    baseline = custom.verdict("baseline")
    kept = dataclasses.replace(
        baseline, cuts=("zero-grad",), cut_settings={"zero-grad": {"set_to_none": False}}
    )
    code = snippet_for(custom, kept)
    assert "optimizer.zero_grad(set_to_none=False)" in code and "set_to_none=True" not in code
    compile(code, "plain", "exec")


# -- CLI -------------------------------------------------------------------------------------


def test_cli_report_show_re_renders_a_saved_report(
    rec: Advice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = save_report(rec, tmp_path / "r")
    assert main(["report", "show", str(paths["json"])]) == 0
    assert capsys.readouterr().out == rec.to_markdown()
    assert main(["report", "show", str(paths["json"]), "--format", "text"]) == 0
    assert "Best:" in capsys.readouterr().out
    assert main(["report", "show", str(paths["json"]), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again.svg").read_text() == paths["svg"].read_text()


def test_cli_report_show_rejects_a_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}")
    assert main(["report", "show", str(path)]) == 1
    err = capsys.readouterr().err
    assert "is not a vram-advisor report" in err and "hint:" in err


def test_cli_gpus_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    assert "rtx-4090" in out and "t4" in out and "--gpu-mem" in out


def test_cli_recommend_unknown_gpu_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--model", "tiny-llama", "--gpu", "rtx4900"]) == 1
    err = capsys.readouterr().err
    assert "unknown GPU 'rtx4900'" in err and "rtx-4090" in err


def test_cli_recommend_writes_the_three_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "tiny-llama-rtx-4090"
    argv = [
        "recommend", "--model", "tiny-llama", "--gpu", "rtx-4090", "--simulate", "--batch", "2",
        "--seq", "16", "--plans", "lora", "--check-top", "0", "--report", str(prefix),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Best: " in out
    rec = load_report(prefix.with_suffix(".json"))
    assert rec.command.endswith(f"--report {prefix}")
    assert "--simulate" in rec.command and "--plans lora" in rec.command
    assert (tmp_path / "tiny-llama-rtx-4090.svg").exists()
    assert rec.command in (tmp_path / "tiny-llama-rtx-4090.md").read_text()
