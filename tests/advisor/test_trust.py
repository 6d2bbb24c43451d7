"""Trust boundaries (issue 18): code runs only where the user names it; model folders, reports
and sweep files are read as data."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from advisor.cli import main
from advisor.core.errors import UnknownModelError
from advisor.models import TRUST, resolve_model


def _custom_code_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A Hugging Face folder whose config asks for its own code, which would leave a marker."""
    folder, marker = tmp_path / "custom", tmp_path / "RAN"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil-net", "architectures": ["EvilForCausalLM"], "hidden_size": 8,
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                     "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
    }))  # fmt: skip
    (folder / "configuration_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil-net'\n"
    )
    return folder, marker


def test_a_model_folder_that_needs_its_own_code_is_refused_without_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, marker = _custom_code_folder(tmp_path)
    asked: list[str] = []
    # transformers asks "run the custom code? [y/N]" when trust_remote_code is None: a yes there
    # would run the folder's code; it is passed False, so nobody is asked
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "y")
    with pytest.raises(UnknownModelError) as info:
        resolve_model(str(folder))
    assert "needs its own Python code" in info.value.message and "never runs code" in info.value.message
    assert "file.py:build" in (info.value.hint or "")
    assert asked == [] and not marker.exists()


def test_a_module_factory_runs_only_when_named(tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    (tmp_path / "mine.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from torch import nn\ndef build():\n    return nn.Sequential(nn.Embedding(16, 4), nn.Linear(4, 16))\n"
    )
    with pytest.raises(UnknownModelError):
        resolve_model(str(tmp_path / "mine"))  # a path without :factory is not code to run
    assert not marker.exists()
    source = resolve_model(f"{tmp_path / 'mine.py'}:build")  # named: imported and called
    assert marker.exists() and source.name.endswith("mine.py:build")


@pytest.mark.parametrize("command", ["profile", "simulate", "sweep", "recommend", "convergence", "tui"])
def test_help_of_every_command_taking_a_model_states_the_trust_rule(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "trust_remote_code is never set" in TRUST
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Code runs only when you name it" in text and "trust_remote_code is never set" in text
