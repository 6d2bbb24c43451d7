"""Shared test setup: GPU tests skip cleanly where there is no CUDA device."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist's workers start with COLUMNS=80 and LINES=24 set; a plain ``pytest`` run has
    # neither (its output is not a terminal), and the CLI tests render for that: tables unwrapped.
    # Tests that want a width set COLUMNS themselves.
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def fast_simulations() -> Iterator[None]:
    """For modules of many simulations: each replay collects garbage once, and freezing what
    torch and transformers keep alive makes that cheap; one intra-op thread keeps small real
    steps from spinning. Byte counts depend on neither."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_user_calibrations(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Predictions in tests never pick up a calibration saved on the developer's machine."""
    monkeypatch.setenv("VRAM_ADVISOR_CALIBRATION_DIR", str(tmp_path_factory.mktemp("calibration")))
