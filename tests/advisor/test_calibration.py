"""Calibration profiles: versioned files, used by every later prediction for their GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advisor import api
from advisor.catalog.calibration import (
    CALIBRATION_DIR_ENV,
    CalibrationProfile,
    calibration_dir,
    calibration_for,
    load_calibration,
    save_calibration,
)
from advisor.catalog.gpus import get_gpu
from advisor.cli import main
from advisor.core.errors import HardwareUnavailableError, ReportError
from advisor.engines.need import CONTEXT, WORKSPACES, PredictedNeed
from advisor.engines.overheads import predict_gpu_need
from profilers.records import Provenance

MIB = 2**20


def _profile(key: str = "rtx-4090", **changes: object) -> CalibrationProfile:
    fields = dict(gpu_key=key, device_name="NVIDIA GeForce RTX 4090", context_bytes=612 * MIB,
                  workspace_bytes=9 * MIB, allocator_overhead_fraction=0.031, torch_version="2.13.0+cu130")  # fmt: skip
    fields.update(changes)
    return CalibrationProfile(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def simulated() -> object:
    return api.simulate("tiny-llama", "lora", batch_size=2, seq_len=32)


def test_profiles_round_trip_and_live_in_the_configured_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CALIBRATION_DIR_ENV, str(tmp_path / "cal"))
    path = save_calibration(_profile())
    assert path == tmp_path / "cal" / "rtx-4090.json" and calibration_dir() == tmp_path / "cal"
    assert load_calibration(path) == _profile()
    assert calibration_for("rtx-4090") == _profile()
    assert calibration_for("a10g") is None


def test_another_schema_version_or_kind_is_refused_by_name(tmp_path: Path) -> None:
    body = _profile().to_dict()
    (tmp_path / "v2.json").write_text(json.dumps({**body, "schema_version": 2}))
    with pytest.raises(ReportError, match="schema_version 2"):
        load_calibration(tmp_path / "v2.json")
    (tmp_path / "other.json").write_text(json.dumps({**body, "kind": "something-else"}))
    with pytest.raises(ReportError, match="not a vram-advisor calibration"):
        load_calibration(tmp_path / "other.json")
    (tmp_path / "neg.json").write_text(json.dumps({**body, "context_bytes": -5}))
    with pytest.raises(ReportError, match="damaged"):
        load_calibration(tmp_path / "neg.json")
    (tmp_path / "newer.json").write_text(json.dumps({**body, "a_later_field": 1}))
    assert load_calibration(tmp_path / "newer.json") == _profile()  # unknown keys are ignored


def test_a_calibration_replaces_the_estimated_context_and_workspaces_of_its_gpu(simulated: object) -> None:
    gpu = get_gpu("rtx-4090")
    before = predict_gpu_need(simulated, gpu)  # type: ignore[arg-type]
    assert not before.calibrated and before.source(CONTEXT) is Provenance.ESTIMATED
    save_calibration(_profile())
    after = predict_gpu_need(simulated, gpu)  # type: ignore[arg-type]
    assert after.calibrated
    assert after.part(CONTEXT) == 612 * MIB and after.part(WORKSPACES) == 9 * MIB
    assert after.source(CONTEXT) is Provenance.MEASURED
    assert after.total_bytes - before.total_bytes == (612 * MIB + 9 * MIB) - (
        before.part(CONTEXT) + before.part(WORKSPACES)
    )
    assert after.tensor_bytes == before.tensor_bytes
    other = predict_gpu_need(simulated, get_gpu("a10g"))  # type: ignore[arg-type]
    assert not other.calibrated  # a profile calibrates its own GPU only
    again = PredictedNeed.from_dict(after.to_dict())
    assert again == after and again.calibrated
    old = after.to_dict()
    for part in old["parts"]:
        del part["calibrated"]  # a report from before calibration existed
    assert not PredictedNeed.from_dict(old).calibrated


def test_gpus_calibrated_lists_saved_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gpus", "--calibrated"]) == 0
    assert "no calibrations in" in capsys.readouterr().out
    save_calibration(_profile())
    assert main(["gpus", "--calibrated"]) == 0
    out = capsys.readouterr().out
    assert "rtx-4090" in out and "612.0 MiB" in out and "2.13.0+cu130" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_calibrate_without_a_cuda_gpu_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(HardwareUnavailableError, match="needs a CUDA GPU"):
        api.calibrate()
    code = main(["calibrate"])
    err = capsys.readouterr().err
    assert code != 0 and "needs a CUDA GPU" in err and "Traceback" not in err
    assert calibration_for("rtx-4090") is None  # nothing saved


@pytest.mark.gpu
def test_calibrate_on_a_cuda_gpu_measures_a_context_and_workspaces() -> None:
    profile = api.calibrate(get_gpu_key_or_none(), save=False)
    assert 50 * MIB < profile.context_bytes < 4096 * MIB  # published contexts: ~300–1400 MiB
    assert profile.workspace_bytes > 0  # two threads' cuBLAS workspaces
    assert profile.allocator_overhead_fraction >= 0
    assert profile.torch_version == torch.__version__


def get_gpu_key_or_none() -> str | None:
    """The catalog key of the GPU here when the driver's name matches one, else a stand-in
    (the probe's figures do not depend on the key)."""
    from advisor.catalog.gpus import get_gpu as lookup
    from advisor.core.errors import UnknownGpuError

    try:
        return lookup(torch.cuda.get_device_name(0)).key
    except UnknownGpuError:
        return "h100"


def test_the_markdown_report_says_which_parts_are_calibrated() -> None:
    save_calibration(_profile())
    workload = api.Workload(micro_batch=2, seq_len=32)
    advice = api.advise("tiny-llama", gpu="rtx-4090", plans="lora", workload=workload, mode="simulate", check_top=0)
    text = advice.to_markdown()
    assert "CUDA context" in text and "measured (calibrated)" in text
