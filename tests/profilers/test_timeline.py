"""Memory over time: the tracker's timeline, its downsampling, the memory_viz snapshot, charts."""

from __future__ import annotations

import json
import pickle
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import torch

import advisor
from profilers.records import TrialResult
from profilers.timeline import CATEGORIES, MemoryTimeline, build_timeline
from profilers.tracker import Role, TensorMemoryTracker


def _mlp_step() -> TensorMemoryTracker:
    """One real CPU step of a two-layer MLP under the exact tracker, phases marked."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(8, 32)
    tracker = TensorMemoryTracker("cpu")
    tracker.register_training_state(model, opt, x)
    with tracker:
        model(x).square().mean().backward()
        tracker.note_gradients(model.parameters())
        tracker.set_phase("optimizer")
        opt.step()
        tracker.note_optimizer_state(opt)
    return tracker


def test_timeline_of_a_real_step_peaks_where_the_tracker_does() -> None:
    tracker = _mlp_step()
    peak = tracker.result()
    tl = tracker.timeline()
    tracker.close()
    assert tl.peak_bytes == peak.peak_bytes
    assert max(tl.totals()) == peak.peak_bytes
    assert tl.peak_phase == peak.peak_phase == "optimizer"  # SGD's momentum appears there
    assert [p.name for p in tl.phases] == ["forward", "optimizer"]
    # the first sample is the resident state: the parameters and the batch (shapes)
    params = (32 * 64 + 64 + 64 * 4 + 4) * 4
    first = {c: tl.live[i][0] for i, c in enumerate(tl.categories)}
    assert first["parameter"] == params and first["input"] == 8 * 32 * 4 and first["activation"] == 0
    # at the peak: the momentum buffers (one per parameter) were made by the optimizer's ops
    momentum = [t for t in tl.top_tensors if t.category == Role.OPTIMIZER.value]
    assert momentum and all(t.op.startswith("aten.") for t in momentum)
    assert any(t.op == "resident" and t.category == "parameter" and t.nbytes == 32 * 64 * 4 for t in tl.top_tensors)
    assert not tl.downsampled and len(tl.t) == tl.events - tl.t[0] + 1


def test_downsampling_keeps_the_peak_and_bounds_the_size() -> None:
    # a saw-tooth of 10,000 events with one spike: bucketing must keep the spike exactly
    events: list[int] = []
    nbytes: dict[int, int] = {}
    roles: dict[int, str] = {}
    for serial in range(1, 5001):
        nbytes[serial] = 1000 if serial != 3333 else 10**6
        roles[serial] = "activation"
        events += [serial, -serial]
    tl = build_timeline(events, nbytes, roles, [(0, "forward")], {}, max_samples=100)
    assert tl.downsampled and len(tl.t) <= 101
    assert tl.peak_bytes == 10**6 and max(tl.totals()) == 10**6
    assert tl.t[tl.totals().index(10**6)] == tl.peak_t == events.index(3333) + 1


def test_timeline_json_round_trip_and_old_results_load() -> None:
    tracker = _mlp_step()
    tl = tracker.timeline()
    tracker.close()
    assert MemoryTimeline.from_dict(json.loads(json.dumps(tl.to_dict()))) == tl
    result = TrialResult("m", "baseline", (), "cpu", 1, 8, advisor.TrialStatus.OK, timeline=tl)
    back = TrialResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.timeline == tl
    old = result.to_dict()
    del old["timeline"]  # a file written before timelines existed
    assert TrialResult.from_dict(old).timeline is None


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrialResult, dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("timeline")
    result = advisor.timeline(
        "tiny-llama", "lora+grad-ckpt", batch_size=2, seq_len=32, target="cuda",
        chart=out / "chart.svg", memory_snapshot=out / "step.pickle", gpu="t4",
    )  # fmt: skip
    with open(out / "step.pickle", "rb") as fh:
        snapshot = pickle.load(fh)
    return result, snapshot, out


@pytest.mark.slow  # one full replay of tiny-llama for the module
def test_simulated_timeline_agrees_with_simulate(simulated: tuple[TrialResult, dict[str, Any], Path]) -> None:
    result, _, _ = simulated
    plain = advisor.simulate("tiny-llama", "lora+grad-ckpt", batch_size=2, seq_len=32, target="cuda", extrapolate=False)
    assert result.ok and result.timeline is not None and plain.tensor_peak is not None
    assert result.timeline.peak_bytes == plain.tensor_peak.peak_bytes
    assert [p.name for p in result.timeline.phases][:2] == ["forward", "backward"]


@pytest.mark.slow  # one full replay of tiny-llama for the module
def test_memory_viz_snapshot_replays_to_the_simulated_peak(simulated: tuple[TrialResult, dict[str, Any], Path]) -> None:
    from torch.cuda import _memory_viz

    result, snap, _ = simulated
    assert result.tensor_peak is not None
    trace = snap["device_traces"][0]
    assert {e["action"] for e in trace} == {"alloc", "free_requested", "free_completed"}
    for seg in snap["segments"]:
        assert {"address", "total_size", "stream", "blocks"} <= set(seg)
        assert all(b["state"] == "active_allocated" for b in seg["blocks"])
    # memory_viz's own readers (torch 2.13) accept it
    assert "Device 0" in _memory_viz.trace(snap)
    assert "segments:" in _memory_viz.segsum(snap)
    assert "snapshot.pickle" in _memory_viz.trace_plot(snap)
    # what lived before the trace = what lives at its end − allocated in it + freed in it;
    # from there, replaying alloc/free sizes reaches the simulated peak exactly, at its moment
    at_end = sum(s["total_size"] for s in snap["segments"])
    allocated = sum(e["size"] for e in trace if e["action"] == "alloc")
    freed = sum(e["size"] for e in trace if e["action"] == "free_completed")
    live = at_end - allocated + freed
    assert live == result.tensor_peak.resident_before_step_bytes
    peak = live
    for e in trace:
        live += e["size"] if e["action"] == "alloc" else -e["size"] if e["action"] == "free_completed" else 0
        peak = max(peak, live)
    assert peak == result.tensor_peak.peak_bytes


@pytest.mark.slow  # one full replay of tiny-llama for the module
def test_chart_svg_parses_and_shows_the_parts(simulated: tuple[TrialResult, dict[str, Any], Path]) -> None:
    _, _, out = simulated
    root = ET.parse(out / "chart.svg").getroot()
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "peak" in text and "usable budget" in text and "forward" in text and "backward" in text
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    assert {"parameters", "activations"} <= titles


@pytest.mark.slow  # one full replay of tiny-llama for the module
def test_chart_png_with_matplotlib(simulated: tuple[TrialResult, dict[str, Any], Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from advisor.report.timeline import write_timeline

    result, _, _ = simulated
    assert result.timeline is not None
    path = write_timeline(result.timeline, tmp_path / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_categories_are_the_tracker_roles() -> None:
    assert set(CATEGORIES) == {r.value for r in Role}


@pytest.mark.slow  # one measured step and one simulated step of tiny-llama
def test_measured_timeline_matches_the_simulated_one_on_cpu(tmp_path: Path) -> None:
    measured = advisor.timeline(
        "tiny-llama", "lora", batch_size=2, seq_len=32, measure=True, device="cpu",
        memory_snapshot=tmp_path / "m.pickle",
    )  # fmt: skip
    simulated = advisor.timeline("tiny-llama", "lora", batch_size=2, seq_len=32, target="cpu")
    mt, st = measured.timeline, simulated.timeline
    assert mt is not None and st is not None and measured.tensor_peak is not None
    assert mt.peak_bytes == measured.tensor_peak.peak_bytes == st.peak_bytes
    assert (mt.events, mt.peak_t, mt.peak_phase) == (st.events, st.peak_t, st.peak_phase)
    assert "memory_viz_snapshot" not in measured.extra  # written to its file, not kept on the result
    with open(tmp_path / "m.pickle", "rb") as fh:
        assert pickle.load(fh)["device_traces"][0]
