"""The published cases are well-formed data the advisor can read, and the harness matches each
figure kind to the right prediction."""

from __future__ import annotations

import json

import pytest

from advisor.catalog.gpus import get_gpu
from advisor.plans import parse_plan
from benchmarks.published import CASES, UNITS, Row, _context_bytes, case_plan

DATA = json.loads(CASES.read_text())


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["id"] for c in DATA["cases"]])
def test_each_case_names_a_known_model_plan_gpu_figure_and_unit(case: dict) -> None:
    source = DATA["sources"][case["source"]]
    assert case["id"].startswith(case["source"] + "/")
    assert case["model"] in DATA["models"]
    assert case["figure_kind"] in DATA["figure_kinds"]
    assert source["unit"] in UNITS and source["url"].startswith("https://")
    get_gpu(source["gpu"])  # raises for an unknown GPU
    plan = parse_plan(case["plan"])
    if source.get("inferred_cuts"):  # what a source leaves out and was inferred says why
        assert len(source["inferred_because"]) > 40
        inferred = parse_plan(case_plan(case, source))
        assert set(inferred.cut_names) - set(plan.cut_names) == set(parse_plan(source["inferred_cuts"]).cut_names)
    if "micro_batch" in case:  # the YAML's global / micro batch is the plan's accumulation
        steps = case["batch"] // case["micro_batch"]
        assert ("accum" in plan.cut_names) == (steps > 1)
        if steps > 1:
            assert f"accum(steps={steps})" in case["plan"]


def test_the_context_a_source_measured_is_read_from_its_caveats() -> None:
    assert _context_bytes(DATA["sources"]["hf-guide"]) == 1343 * 2**20
    assert _context_bytes(DATA["sources"]["litgpt"]) is None


def test_errors_are_relative_to_the_published_figure() -> None:
    row = Row("s/c", "baseline", "nvml_used", "MiB", 1000.0, 900.0, 1100.0, "simulated", 0.0)
    assert row.error(row.predicted) == pytest.approx(-0.10)
    assert row.error(row.with_their_context) == pytest.approx(0.10)
    assert row.error(None) is None
