"""One error path (issue 18): every command and API entry refuses bad input with an
AdvisorError and a hint — before any work — and the CLI prints it as one message, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

import advisor
from advisor import api
from advisor.cli import main
from advisor.core.errors import AdvisorError, OutputPathError, PlanError
from advisor.core.io import atomic_write_text, check_writable
from advisor.report import Advice

REFUSED = {
    "grad-ckpt+grad-ckpt": "grad-ckpt appears twice",
    "sgd+adamw8bit": "adamw8bit and sgd both choose the optimizer",
    "lora+frozen-emb": "frozen-emb is redundant under lora",
}


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2  # the message, then its hint
    return captured.err


# -- explicit plans that are redundant or conflicting ------------------------------------------


@pytest.mark.parametrize("plan", sorted(REFUSED))
def test_the_api_refuses_a_plan_the_sweep_would_prune(plan: str, tmp_path: Path) -> None:
    why = REFUSED[plan]
    calls = [
        lambda: advisor.simulate("tiny-llama", plan, batch_size=1, seq_len=8),
        lambda: advisor.profile("tiny-llama", plan=plan, batch_size=1, seq_len=8, steps=0),
        lambda: advisor.profile("tiny-llama", plan=advisor.parse_plans(plan)[0], batch_size=1, seq_len=8),
        lambda: advisor.sweep("tiny-llama", plans=f"lora;{plan}", out=tmp_path / "s.jsonl"),
        lambda: api.simulate_plans("tiny-llama", plans=[plan]),
        lambda: advisor.advise("tiny-llama", plans=plan),
    ]
    for call in calls:
        with pytest.raises(PlanError, match=why) as info:
            call()
        assert "refused" in info.value.message and info.value.hint
    assert not (tmp_path / "s.jsonl").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--plans", "{plan}"],
        ["simulate", "--sweep", "--plans", "baseline;{plan}"],
        ["profile", "--cuts", "{cuts}"],
        ["sweep", "--plans", "{plan}", "--out", "{out}"],
        ["recommend", "--plans", "lora;{plan}"],
    ],
)
@pytest.mark.parametrize("plan", sorted(REFUSED))
def test_the_cli_refuses_it_in_one_message(
    argv: list[str], plan: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.jsonl"
    args = [a.format(plan=plan, cuts=plan.replace("+", ","), out=out) for a in argv]
    err = _one_error(capsys, main([args[0], "--model", "tiny-llama", *args[1:]]))
    assert REFUSED[plan] in err and "hint: " in err
    assert not out.exists()


@pytest.mark.parametrize("text", ["++", "", ";", "lora;;sgd", "lora+"])
def test_empty_plan_text_is_an_error_everywhere(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["simulate", "--model", "tiny-llama", "--plans", text],
        ["simulate", "--model", "tiny-llama", "--sweep", "--plans", text],
        ["sweep", "--model", "tiny-llama", "--plans", text],
        ["recommend", "--model", "tiny-llama", "--plans", text],
    ):
        err = _one_error(capsys, main(argv))
        assert "empty" in err or "no plan" in err
    for call in (
        lambda: advisor.simulate("tiny-llama", text),
        lambda: advisor.profile("tiny-llama", plan=text),
        lambda: advisor.sweep("tiny-llama", plans=text),
        lambda: advisor.advise("tiny-llama", plans=text),
        lambda: api.simulate_plans("tiny-llama", plans=text),
    ):
        with pytest.raises(AdvisorError):
            call()


# -- output paths, checked before any work ------------------------------------------------------


def _bad_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    (tmp_path / "a-dir").mkdir()
    return {
        "no folder": (Path("/proc/nope/r"), "its folder does not exist and cannot be made"),
        "parent is a file": (a_file / "r", f"{a_file} is a file, not a folder"),
        "a folder": (tmp_path / "a-dir", "it is a folder"),
        "no permission": (Path("/sys/kernel/x.json"), "permission denied"),
    }


def test_check_writable_makes_a_missing_folder_and_refuses_the_rest(tmp_path: Path) -> None:
    deep = tmp_path / "new" / "folder" / "r.json"
    assert check_writable(deep) == deep
    assert deep.parent.is_dir() and not deep.exists()  # the folder made, no file left
    assert list(deep.parent.iterdir()) == []
    for path, why in _bad_paths(tmp_path).values():
        with pytest.raises(OutputPathError) as info:
            check_writable(path)
        assert info.value.message == f"cannot write {path}: {why}" and info.value.hint


def test_atomic_writes_and_advice_save_fail_as_one_error_and_write_nothing(tmp_path: Path) -> None:
    from .test_report import fake_recommendation

    for path, _why in _bad_paths(tmp_path).values():
        with pytest.raises(OutputPathError):
            atomic_write_text(path, "text")
    advice = Advice.of(fake_recommendation(gpu="rtx-4090", plans="lora"))
    (tmp_path / "r.svg").mkdir()  # one of the three files cannot be written
    with pytest.raises(OutputPathError, match=r"r\.svg: it is a folder"):
        advice.save(tmp_path / "r")
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.md").exists()
    with pytest.raises(OutputPathError, match="does not exist"):
        advice.save("/proc/nope/r")


@pytest.mark.parametrize("case", ["no folder", "parent is a file", "a folder", "no permission"])
def test_the_cli_checks_every_output_flag_before_any_work(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, why = _bad_paths(tmp_path)[case]

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output path was checked")

    for name in ("advise", "profile", "simulate", "simulate_plans", "sweep", "convergence_probe"):
        monkeypatch.setattr(api, name, no_work)
    monkeypatch.setattr("advisor.cli.report.load_report", no_work)
    # a report PREFIX (x or x.json): PREFIX.json is checked first
    suffixed = path if path.suffix == ".json" else path.with_name(path.name + ".json")
    if case == "a folder":
        suffixed.mkdir()
    for argv, shown in (
        (["recommend", "--model", "tiny-llama", "--report", str(path)], suffixed),
        (["simulate", "--model", "tiny-llama", "--json", str(path)], path),
        (["simulate", "--model", "tiny-llama", "--sweep", "--json", str(path)], path),
        (["profile", "--model", "tiny-llama", "--json", str(path)], path),
        (["profile", "--model", "tiny-llama", "--markdown", str(path)], path),
        (["sweep", "--model", "tiny-llama", "--out", str(path)], path),
        (["sweep", "--model", "tiny-llama", "--markdown", str(path), "--out", str(tmp_path / "s.jsonl")], path),
        (["convergence", "--json", str(path)], path),
        (["report", "show", "whatever.json", "--out", str(path)], suffixed),
    ):
        err = _one_error(capsys, main(argv))
        assert f"cannot write {shown}: {why}" in err, argv


def test_api_sweep_checks_its_out_path_first(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        advisor.sweep("tiny-llama", plans="lora", out=Path(__file__) / "s.jsonl")


# -- API edges: plan text everywhere, arguments named as the API spells them -------------------


def test_profile_takes_plan_text() -> None:
    result = advisor.profile("tiny-llama", plan="lora", batch_size=1, seq_len=8, steps=0, device="cpu")
    assert result.ok and result.plan == "lora" and result.cuts == ("lora",)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: advisor.simulate("tiny-llama", "lora", "2", 16), "batch_size"),
        (lambda: advisor.simulate("tiny-llama", "2", 16), "plan"),
        (lambda: advisor.simulate("tiny-llama", batch_size="2"), "batch_size"),
        (lambda: advisor.simulate("tiny-llama", seq_len=0), "seq_len"),
        (lambda: advisor.simulate("tiny-llama", warmup_steps=-1), "warmup_steps"),
        (lambda: advisor.profile("tiny-llama", batch_size=2.5), "batch_size"),
        (lambda: advisor.profile("tiny-llama", steps="3"), "steps"),
        (lambda: advisor.sweep("tiny-llama", plans="lora", warmup_steps=True), "warmup_steps"),
        (lambda: advisor.sweep("tiny-llama", cuts="lora", max_combo=0), "max_combo"),
        (lambda: advisor.advise("tiny-llama", check_top=-1), "check_top"),
        (lambda: advisor.advise("tiny-llama", workload={"micro_batch": 2}), "workload"),
        (lambda: advisor.simulate("gpt2", seq_len=4096), "seq_len"),
    ],
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # sizes given positionally, the old spelling
def test_bad_arguments_are_advisor_errors_naming_the_argument(call: object, argument: str) -> None:
    with pytest.raises(AdvisorError) as info:
        call()  # type: ignore[operator]
    err = info.value
    assert err.argument == argument
    assert argument in str(err) and "--" not in str(err)  # API callers read API names, not flags


def test_hints_name_api_arguments_and_the_cli_shows_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AdvisorError) as info:
        advisor.simulate("gpt2", seq_len=4096)
    assert (info.value.message, info.value.hint) == (
        "gpt2 takes at most 1024 positions, got seq_len=4096", "pass seq_len=1024 or less"
    )
    err = _one_error(capsys, main(["simulate", "--model", "gpt2", "--seq", "4096"]))
    assert err == "error: gpt2 takes at most 1024 positions, got --seq 4096\n  hint: pass --seq 1024 or less\n"
    err = _one_error(capsys, main(["simulate", "--model", "tiny-llama", "--gpu", "rtx 4060 ti 8gb"]))
    assert "give the budget as --gpu-mem 8GiB" in err and "gpu_mem" not in err


def test_cli_text_translates_arguments_but_not_cut_parameters() -> None:
    from advisor.cli.common import FLAGS, cli_text

    assert cli_text("pass batch_size=1 or more and seq_len=512") == "pass --batch 1 or more and --seq 512"
    assert cli_text('a budget: gpu_mem="22GiB", or out=PATH') == "a budget: --gpu-mem 22GiB, or --out PATH"
    assert cli_text("e.g. accum(steps=4) or lora(r=8,alpha=16)") == "e.g. accum(steps=4) or lora(r=8,alpha=16)"
    assert cli_text("micro_batch=4") == "--batch 4" and FLAGS["warmup_steps"] == "--warmup"


def test_an_error_pickled_from_a_worker_keeps_its_hint_and_argument() -> None:
    import pickle

    from advisor.core.errors import InvalidInputError

    again = pickle.loads(pickle.dumps(InvalidInputError("m", "pass batch_size=1 or more", argument="batch_size")))
    assert type(again) is InvalidInputError
    assert (again.message, again.hint, again.argument) == ("m", "pass batch_size=1 or more", "batch_size")
