"""A saved report for the TUI tests to open (made once, by simulation)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def saved_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import advisor
    from advisor.recommend.workload import Workload

    rec = advisor.advise(
        "tiny-llama",
        gpu="t4",
        workload=Workload(micro_batch=2, seq_len=64),
        plans="lora;grad-ckpt;bf16",
        mode="simulate",
        check_top=0,
    )
    prefix = tmp_path_factory.mktemp("report") / "tiny-llama-t4"
    return Path(rec.save(str(prefix))["json"])
