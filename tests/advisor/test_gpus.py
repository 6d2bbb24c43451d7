"""Tests for the GPU catalog, forgiving lookup, memory parsing and custom budgets."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.catalog import gpus
from advisor.catalog.gpus import (
    CATALOG,
    NUMERIC_FIELDS,
    GpuSpec,
    custom_gpu,
    get_gpu,
    list_gpus,
    parse_memory,
)
from advisor.core.errors import AdvisorError, InvalidInputError, UnknownGpuError

GIB = 2**30
REPO_ROOT = Path(__file__).resolve().parents[2]

REQUIRED_KEYS = {
    "t4", "l4", "a10g", "a10", "rtx-3060", "rtx-3080", "rtx-3090", "rtx-4060-ti-16gb",
    "rtx-4090", "rtx-5090", "rtx-6000-ada", "rtx-a6000", "l40s", "a100-40gb", "a100-80gb",
    "h100-pcie", "h100-sxm", "h200", "gh200", "b200", "mi300x", "v100-16gb", "v100-32gb",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# catalog


def test_catalog_has_the_required_gpus_with_unique_keys() -> None:
    keys = [spec.key for spec in CATALOG]
    assert len(CATALOG) >= 20
    assert len(keys) == len(set(keys))
    assert REQUIRED_KEYS <= set(keys)


def test_no_lookup_name_is_shared_by_two_gpus() -> None:
    owner: dict[str, str] = {}
    for spec in CATALOG:
        for form in gpus._lookup_forms(spec):
            assert owner.setdefault(form, spec.key) == spec.key, (
                f"{form!r} names both {owner[form]} and {spec.key}"
            )


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.key)
def test_every_key_name_and_alias_finds_its_own_gpu(spec: GpuSpec) -> None:
    for text in (spec.key, spec.name, *spec.aliases):
        assert get_gpu(text) is spec, text


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.key)
def test_every_numeric_field_has_a_source(spec: GpuSpec) -> None:
    fields_with_source = {field for field, _ in spec.sources}
    assert set(NUMERIC_FIELDS) <= fields_with_source
    for field in NUMERIC_FIELDS:
        assert spec.source(field).strip()
    numeric = {
        f.name
        for f in dataclasses.fields(GpuSpec)
        if isinstance(getattr(spec, f.name), (int, float)) and not isinstance(getattr(spec, f.name), bool)
    }
    assert numeric <= fields_with_source


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.key)
def test_catalog_figures_are_plausible(spec: GpuSpec) -> None:
    assert spec.vendor in ("nvidia", "amd")
    assert spec.memory_bytes % GIB == 0
    assert 8 * GIB <= spec.memory_bytes <= 200 * GIB
    assert 100e9 <= spec.bandwidth_bytes_per_s <= 10e12
    assert spec.fp32_tflops < spec.fp16_tflops  # tensor cores beat plain FP32
    if spec.bf16_tflops is not None:
        assert spec.bf16_tflops == pytest.approx(spec.fp16_tflops)
    assert 0.01 < spec.price_usd_per_hour < 20


def test_bf16_support_follows_the_architecture() -> None:
    for key in ("t4", "v100-16gb", "v100-32gb"):
        spec = get_gpu(key)
        assert spec.supports_bf16 is False
        assert spec.bf16_tflops is None
        assert "no BF16" in spec.source("bf16_tflops")
    for key in ("a100-80gb", "rtx-3090", "l4", "h100-sxm", "b200", "mi300x"):
        assert get_gpu(key).supports_bf16 is True


def test_known_figures() -> None:
    assert get_gpu("rtx-4090").memory_bytes == 24 * 1024**3
    assert get_gpu("h100-sxm").memory_bytes == 80 * GIB
    assert get_gpu("h200").memory_bytes == 141 * GIB
    assert get_gpu("mi300x").memory_bytes == 192 * GIB
    assert get_gpu("rtx-3080").memory_bytes == 10 * GIB
    # dense, not the with-sparsity figure
    assert get_gpu("h100-sxm").bf16_tflops == pytest.approx(989.0)
    assert get_gpu("a100-80gb").bf16_tflops == pytest.approx(312.0)
    assert get_gpu("mi300x").vendor == "amd"


def test_list_gpus_is_sorted_by_memory_then_name() -> None:
    listed = list_gpus()
    assert set(listed) == set(CATALOG)
    order = [(spec.memory_bytes, spec.name) for spec in listed]
    assert order == sorted(order)
    assert listed[0].memory_bytes == min(spec.memory_bytes for spec in CATALOG)


# ---------------------------------------------------------------------------------------------
# lookup


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("4090", "rtx-4090"),
        ("rtx-4090", "rtx-4090"),
        ("RTX 4090", "rtx-4090"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("rtx_4090", "rtx-4090"),
        ("  Rtx4090 ", "rtx-4090"),
        ("a100", "a100-80gb"),  # documented default
        ("A100 40GB", "a100-40gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("h100", "h100-sxm"),  # documented default
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("H100 PCIe", "h100-pcie"),
        ("v100", "v100-16gb"),  # documented default
        ("Tesla V100-SXM2-32GB", "v100-32gb"),
        ("Tesla T4", "t4"),
        ("A10", "a10"),
        ("a10g", "a10g"),
        ("L40", "l40"),
        ("L40S", "l40s"),
        ("a6000", "rtx-a6000"),
        ("RTX 6000 Ada", "rtx-6000-ada"),
        ("4060 Ti", "rtx-4060-ti-16gb"),
        ("AMD Instinct MI300X", "mi300x"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("rtx 3090 24GB", "rtx-3090"),  # trailing size that matches
        ("h100 80gb", "h100-sxm"),
    ],
)
def test_forgiving_lookup(text: str, key: str) -> None:
    assert get_gpu(text).key == key


def test_unknown_name_suggests_close_keys() -> None:
    with pytest.raises(UnknownGpuError) as caught:
        get_gpu("rtx 4009")
    err = caught.value
    assert isinstance(err, AdvisorError)
    assert "rtx 4009" in err.message
    assert "rtx-4090" in err.message
    suggested = err.message.split("closest catalog entries: ")[1].split(", ")
    assert 3 <= len(suggested) <= 5
    assert all(s in {spec.key for spec in CATALOG} for s in suggested)
    assert err.hint is not None
    assert "vram-advisor gpus" in err.hint and "advisor.list_gpus()" in err.hint and "gpu_mem=22GiB" in err.hint


def test_unknown_name_suggestions_favour_the_family() -> None:
    with pytest.raises(UnknownGpuError) as caught:
        get_gpu("h100 nvl")
    assert "h100-sxm" in caught.value.message or "h100-pcie" in caught.value.message


def test_trailing_size_that_does_not_match_is_refused() -> None:
    with pytest.raises(UnknownGpuError) as caught:
        get_gpu("rtx 4060 ti 8gb")
    assert "rtx-4060-ti-16gb" in caught.value.message
    assert caught.value.hint is not None and "gpu_mem=8GiB" in caught.value.hint


@pytest.mark.parametrize("text", ["", "   ", "---"])
def test_empty_name_is_invalid(text: str) -> None:
    with pytest.raises(InvalidInputError):
        get_gpu(text)


def test_vendor_words_alone_do_not_match_a_gpu() -> None:
    with pytest.raises(UnknownGpuError):
        get_gpu("nvidia geforce rtx")


# ---------------------------------------------------------------------------------------------
# memory parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22GiB", 22 * 2**30),
        ("22 GiB", 22 * 2**30),
        ("22gib", 22 * 2**30),
        ("22GB", 22 * 10**9),
        ("16GB", 16 * 10**9),
        ("16g", 16 * 2**30),
        ("16G", 16 * 2**30),
        ("24000MiB", 24000 * 2**20),
        ("512MB", 512 * 10**6),
        ("1.5GiB", 3 * 2**29),
        ("1TiB", 2**40),
        ("17179869184", 17179869184),
        ("4096B", 4096),
    ],
)
def test_parse_memory(text: str, expected: int) -> None:
    result = parse_memory(text)
    assert result == expected
    assert isinstance(result, int)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "GiB",
        "22 GiBs",
        "twenty GiB",
        "22 PB",
        "0",
        "0GiB",
        "-5GiB",
        "1.5",
        "22GiB 4",
        "nan",
    ],
)
def test_parse_memory_rejects_bad_text(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_memory(text)
    assert caught.value.hint is not None
    assert "GiB" in caught.value.hint and "10**9" in caught.value.hint


# ---------------------------------------------------------------------------------------------
# serialisation and copies


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.key)
def test_to_dict_from_dict_round_trips_through_json(spec: GpuSpec) -> None:
    data = spec.to_dict()
    assert list(data) == sorted(data)
    assert isinstance(data["aliases"], list)
    text = json.dumps(data, sort_keys=True)
    assert GpuSpec.from_dict(json.loads(text)) == spec


def test_from_dict_ignores_unknown_keys_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = get_gpu("t4").to_dict()
    data["added_in_a_later_version"] = 1
    with caplog.at_level(logging.WARNING, logger="advisor.gpus"):
        assert GpuSpec.from_dict(data) == get_gpu("t4")
    assert "added_in_a_later_version" in caplog.text


def test_from_dict_rejects_missing_and_mistyped_fields() -> None:
    data = get_gpu("l4").to_dict()
    del data["memory_bytes"]
    with pytest.raises(InvalidInputError, match="memory_bytes"):
        GpuSpec.from_dict(data)
    data = get_gpu("l4").to_dict()
    data["memory_bytes"] = "24GiB"
    with pytest.raises(InvalidInputError, match="memory_bytes"):
        GpuSpec.from_dict(data)


def test_with_price_overrides_and_keeps_the_rest() -> None:
    base = get_gpu("h100-sxm")
    cheaper = base.with_price(1.99)
    assert cheaper.price_usd_per_hour == 1.99
    assert cheaper.source("price_usd_per_hour") == "overridden by the user"
    assert (
        dataclasses.replace(cheaper, price_usd_per_hour=base.price_usd_per_hour, sources=base.sources) == base
    )
    assert base.price_usd_per_hour != 1.99  # the catalog entry is untouched


def test_with_memory_overrides() -> None:
    spec = get_gpu("rtx-4090").with_memory(22 * GIB)
    assert spec.memory_bytes == 22 * GIB
    assert spec.key == "rtx-4090"
    assert spec.source("memory_bytes") == "overridden by the user"


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_with_price_rejects_non_positive(bad: float) -> None:
    with pytest.raises(InvalidInputError) as caught:
        get_gpu("t4").with_price(bad)
    assert caught.value.hint


@pytest.mark.parametrize("bad", [0, -GIB, 1.5])
def test_with_memory_rejects_bad_values(bad: int) -> None:
    with pytest.raises(InvalidInputError):
        get_gpu("t4").with_memory(bad)


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_gpu("t4").memory_bytes = 1  # type: ignore[misc]


def test_post_init_validation() -> None:
    t4 = get_gpu("t4")
    with pytest.raises(InvalidInputError, match="supports_bf16"):
        dataclasses.replace(t4, supports_bf16=True)
    with pytest.raises(InvalidInputError, match="memory_bytes"):
        dataclasses.replace(t4, memory_bytes=0)
    with pytest.raises(InvalidInputError, match="vendor"):
        dataclasses.replace(t4, vendor="acme")
    without_price_source = tuple(p for p in t4.sources if p[0] != "price_usd_per_hour")
    with pytest.raises(InvalidInputError, match="price_usd_per_hour"):
        dataclasses.replace(t4, sources=without_price_source)


def test_source_of_unknown_field_raises() -> None:
    with pytest.raises(InvalidInputError):
        get_gpu("t4").source("name")


# ---------------------------------------------------------------------------------------------
# custom budgets


def test_custom_gpu_without_base_uses_a_labelled_stand_in() -> None:
    spec = custom_gpu(parse_memory("22GiB"))
    assert spec.key == "custom-22GiB"
    assert spec.memory_bytes == 22 * GIB
    assert spec.vendor == "unknown"
    assert spec.source("memory_bytes") == "custom budget given by the user"
    for field in ("bandwidth_bytes_per_s", "fp16_tflops", "fp32_tflops", "bf16_tflops"):
        assert "custom budget: no throughput known" in spec.source(field)
    assert spec.fp16_tflops == get_gpu("rtx-4090").fp16_tflops
    assert GpuSpec.from_dict(spec.to_dict()) == spec


def test_custom_gpu_takes_figures_from_base() -> None:
    t4 = get_gpu("t4")
    spec = custom_gpu(12 * GIB, name="Colab T4 (what is free)", base=t4)
    assert spec.name == "Colab T4 (what is free)"
    assert spec.memory_bytes == 12 * GIB
    assert spec.supports_bf16 is False
    assert spec.fp16_tflops == t4.fp16_tflops
    assert spec.price_usd_per_hour == t4.price_usd_per_hour
    assert spec.source("fp16_tflops").startswith("from t4:")


def test_custom_gpu_names_odd_sizes() -> None:
    assert custom_gpu(24000 * 2**20).key == "custom-24000MiB"
    assert custom_gpu(10**9).key == "custom-1000000000B"


@pytest.mark.parametrize("bad", [0, -1, True])
def test_custom_gpu_rejects_bad_budgets(bad: int) -> None:
    with pytest.raises(InvalidInputError):
        custom_gpu(bad)


def test_import_pulls_in_no_ui() -> None:
    code = "import sys, advisor.gpus; sys.exit(1 if 'textual' in sys.modules else 0)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# the data file


def _raw_entries() -> list[dict[str, Any]]:
    text = (REPO_ROOT / "advisor" / "catalog" / "gpus.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict) and isinstance(data["gpus"], list)
    return data["gpus"]


def test_data_file_entries_are_well_formed() -> None:
    entries = _raw_entries()
    field_names = {f.name for f in dataclasses.fields(GpuSpec)}
    keys = [entry["key"] for entry in entries]
    assert len(keys) == len(set(keys))
    for entry in entries:
        assert set(entry) == field_names, entry["key"]
        sources = entry["sources"]
        assert isinstance(sources, list)
        named = [pair[0] for pair in sources]
        assert len(named) == len(set(named)), entry["key"]
        assert all(len(pair) == 2 and isinstance(pair[1], str) and pair[1].strip() for pair in sources)
        numeric = {
            name for name, value in entry.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }  # fmt: skip
        assert set(NUMERIC_FIELDS) <= set(named), entry["key"]
        assert numeric <= set(named), entry["key"]


def test_loaded_catalog_is_the_data_file_and_what_list_gpus_returns() -> None:
    entries = _raw_entries()
    assert [spec.to_dict() for spec in CATALOG] == entries  # file order, nothing lost or added
    assert CATALOG == tuple(GpuSpec.from_dict(entry) for entry in entries)
    listed = list_gpus()
    assert len(listed) == len(CATALOG) and set(listed) == set(CATALOG)
    assert gpus.CATALOG is CATALOG  # read once


def test_every_name_in_the_data_file_resolves_to_its_entry() -> None:
    for entry in _raw_entries():
        for text in (entry["key"], entry["name"], *entry["aliases"]):
            assert get_gpu(text).key == entry["key"], text


def test_data_file_ships_with_the_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["advisor"]
    assert any(fnmatch.fnmatch("catalog/gpus.json", pattern) for pattern in patterns)


def _write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"gpus": [', "Expecting"),
        ({"entries": []}, '"gpus" list'),
        ({"gpus": [{"key": "x"}]}, "entry 0"),
        ({"gpus": ["t4"]}, "entry 0"),
    ],
)
def test_a_damaged_data_file_is_named_in_the_error(tmp_path: Path, content: object, problem: str) -> None:
    path = _write(tmp_path / "gpus.json", content)
    with pytest.raises(AdvisorError) as caught:
        gpus._read_catalog(path)
    assert str(path) in caught.value.message and problem in caught.value.message
    assert caught.value.hint and "reinstall" in caught.value.hint


def test_a_data_file_with_a_shared_lookup_name_is_rejected(tmp_path: Path) -> None:
    t4 = get_gpu("t4").to_dict()
    twin = {**get_gpu("l4").to_dict(), "aliases": ["tesla t4"]}
    path = _write(tmp_path / "gpus.json", {"gpus": [t4, twin]})
    with pytest.raises(AdvisorError, match="matches both"):
        gpus._read_catalog(path)
    specs, index = gpus._read_catalog(_write(tmp_path / "ok.json", {"gpus": [t4]}))
    assert specs == (get_gpu("t4"),) and index["t4"] == get_gpu("t4")


def test_catalog_and_core_io_import_without_torch() -> None:
    code = (
        "import sys, advisor.catalog.gpus, advisor.catalog.presets, advisor.core.io; "
        "advisor.catalog.gpus.get_gpu('4090'); "
        "sys.exit(1 if {'torch', 'transformers'} & set(sys.modules) else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# -- family names: documented aliases, never a silent guess (issue 18) ---------------------------


def test_a_family_name_keeps_its_documented_variant_and_says_which_others_exist() -> None:
    from advisor.catalog.gpus import family_alias, family_aliases

    assert get_gpu("h100").key == "h100-sxm"  # README and the issue 14/15 commands use --gpu h100
    fam = family_alias("h100")
    assert fam is not None and fam.chosen.key == "h100-sxm" and [o.key for o in fam.others] == ["h100-pcie"]
    assert fam.note() == (
        "h100 means h100-sxm (NVIDIA H100 SXM5 80GB), the most rented variant; "
        "the catalog also has h100-pcie: name it to use it"
    )
    assert family_alias("H100 80GB") is not None  # a checked size does not make it less ambiguous
    for exact in ("h100-sxm", "h100-pcie", "NVIDIA H100 SXM5 80GB", "4090", "a10", "l40", "t4"):
        assert family_alias(exact) is None
    assert [(f.name, f.chosen.key) for f in family_aliases()] == [
        ("a100", "a100-80gb"), ("a100 sxm", "a100-80gb"), ("h100", "h100-sxm"), ("v100", "v100-16gb")
    ]
    with pytest.raises(UnknownGpuError):
        family_alias("h999")


def test_the_cli_says_which_entry_a_family_name_chose(capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.cli import main

    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    assert "  h100      = h100-sxm   also: h100-pcie\n" in out and "  a100      = a100-80gb  also: a100-40gb\n" in out
    assert main(["recommend", "--model", "no-such-model", "--gpu", "h100"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "note: --gpu h100 means h100-sxm (NVIDIA H100 SXM5 80GB), the most rented variant; "
        "the catalog also has h100-pcie: name it to use it"
    )
    assert err[1].startswith("error: unknown model")
    assert main(["recommend", "--model", "no-such-model", "--gpu", "h100-pcie"]) == 1
    assert not capsys.readouterr().err.startswith("note:")
