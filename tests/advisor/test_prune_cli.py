"""``vram-advisor convergence --prune``: the pruning probe from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.cli import main


@pytest.mark.slow
def test_convergence_prune_prints_the_loss_change_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "probe.json"
    args = ["convergence", "--model", "tiny-llama", "--prune", "prune(amount=0.5,scope=mlp)"]
    code = main([*args, "--steps", "3", "--batch", "1", "--seq", "8", "-q", "--json", str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Pruning probe: tiny-llama, prune(amount=0.5,scope=mlp)" in text and "change" in text
    doc = json.loads(out_json.read_text())
    assert doc["kind"] == "vram-advisor/pruning-probe"
    # 344 of 688 MLP channels × 3 projections × width 256 × 2 layers
    assert doc["result"]["params_before"] - doc["result"]["params_after"] == 344 * 3 * 256 * 2
