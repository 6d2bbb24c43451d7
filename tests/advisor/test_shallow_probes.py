"""Repeat-block probes built from a shallow config (issue #14, speed) replay exactly what the
whole model built and cut to the probe's depth replays."""

from __future__ import annotations

from typing import Any

import pytest

import advisor.engines.simulate as sim
from profilers.records import TrialResult
from tests.small_models import gemma2 as _gemma2
from tests.small_models import llama as _llama

BATCH, SEQ = 2, 32


def _counted(monkeypatch: pytest.MonkeyPatch, *, off: bool) -> dict[str, int]:
    """Count the probes built shallow and those cut (``off``: never shallow)."""
    seen = {"shallow": 0, "cut": 0}
    real = sim._shallow_build

    def build(*args: Any, **kwargs: Any) -> Any:
        model = None if off else real(*args, **kwargs)
        seen["shallow" if model is not None else "cut"] += 1
        return model

    monkeypatch.setattr(sim, "_shallow_build", build)
    return seen


def _figures(r: TrialResult) -> tuple[Any, ...]:
    assert r.ok and r.simulation is not None, r.reason
    return r.tensor_peak, r.params, r.extra, r.simulation, r.accumulation_steps


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "plan"),
    [(_llama, "baseline"), (_llama, "lora+bf16-weights"), (_llama, "freeze-layers(k=2)"), (_gemma2, "grad-ckpt+sgd")],
)
def test_shallow_probes_equal_cut_probes(monkeypatch: pytest.MonkeyPatch, make: Any, plan: str) -> None:
    source = make()
    with monkeypatch.context() as m:
        cut_seen = _counted(m, off=True)
        cut = sim.simulate(source, plan, BATCH, SEQ)
    shallow_seen = _counted(monkeypatch, off=False)
    shallow = sim.simulate(source, plan, BATCH, SEQ)
    assert cut_seen["shallow"] == 0 and cut_seen["cut"] >= 3
    assert shallow_seen["cut"] == 0 and shallow_seen["shallow"] == cut_seen["cut"]  # the same probes
    assert shallow.simulation is not None and shallow.simulation.repeats is not None
    assert shallow.simulation.repeats.extrapolated
    assert _figures(shallow) == _figures(cut)  # every figure, the allocator's estimate too


def test_a_shallow_build_unlike_the_cut_model_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the config of the probe's depth builds something else than the whole model cut
    (here: a setting that follows the depth), the probe is cut from the whole model."""
    source = _llama()
    real_config = sim._shallow_config

    def odd(config: Any, pattern: Any, blocks: int) -> Any:
        out = real_config(config, pattern, blocks)
        out.intermediate_size = 96  # what a depth-dependent config might do
        return out

    monkeypatch.setattr(sim, "_shallow_config", odd)
    seen = _counted(monkeypatch, off=False)
    result = sim.simulate(source, "baseline", BATCH, SEQ)
    assert seen["shallow"] == 0 and seen["cut"] >= 3
    with monkeypatch.context() as m:
        _counted(m, off=True)
        expected = sim.simulate(source, "baseline", BATCH, SEQ)
    assert _figures(result) == _figures(expected)
