"""Encoder-decoder models (T5, BART) from their config, and activation variants as configured.

Peaks are checked against a real measured CPU run with the exact tracker (``advisor.profile``);
LoRA targets against PEFT's own table and the shapes of the built model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import advisor
from advisor.models import resolve_model
from advisor.models.sources import HFModelSource, Task, task_of_config


def _t5(**overrides: Any) -> Any:
    import transformers

    fields: dict[str, Any] = dict(
        vocab_size=300, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        decoder_start_token_id=0, architectures=["T5ForConditionalGeneration"],
    )  # fmt: skip
    return transformers.T5Config(**{**fields, **overrides})


def _bart(**overrides: Any) -> Any:
    import transformers

    fields: dict[str, Any] = dict(
        vocab_size=300, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_position_embeddings=64, architectures=["BartForConditionalGeneration"],
    )  # fmt: skip
    return transformers.BartConfig(**{**fields, **overrides})


CONFIGS = {"t5": _t5, "bart": _bart}


def _saved(tmp_path: Path, config: Any) -> str:
    config.save_pretrained(tmp_path)
    return str(tmp_path)


def _peaks(model: str, plan: str, batch: int = 2, seq: int = 16) -> tuple[int, int]:
    parsed = advisor.parse_plans(plan)[0]
    simulated = advisor.simulate(model, parsed, batch_size=batch, seq_len=seq, target="cpu")
    measured = advisor.profile(model, plan=parsed, batch_size=batch, seq_len=seq, device="cpu", steps=1)
    assert simulated.tensor_peak is not None, simulated.reason
    assert measured.tensor_peak is not None, measured.reason
    return simulated.tensor_peak.peak_bytes, measured.tensor_peak.peak_bytes


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_an_encoder_decoder_config_trains_its_seq2seq_head(tmp_path: Path, kind: str) -> None:
    """Source ids in, target ids as labels; the model makes its decoder inputs from the labels
    (shifted right behind ``decoder_start_token_id``), so the loss covers every target token."""
    source = resolve_model(_saved(tmp_path, CONFIGS[kind]()))
    assert isinstance(source, HFModelSource) and source.task is Task.SEQ2SEQ_LM
    model = source.build("cpu", pretrained=False)
    assert type(model).__name__ == f"{'T5' if kind == 't5' else 'Bart'}ForConditionalGeneration"
    batch = source.make_batch(3, 10)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert tuple(batch["labels"].shape) == (3, 10) and not torch.equal(batch["labels"], batch["input_ids"])
    out = model(**batch)
    assert tuple(out.logits.shape) == (3, 10, 300)  # one row per target token
    out.loss.backward()
    embedding = model.get_submodule("shared" if kind == "t5" else "model.shared")
    assert isinstance(embedding, torch.nn.Embedding) and embedding.weight.grad is not None


def test_conditional_generation_without_an_encoder_decoder_is_not_seq2seq() -> None:
    """Vision-language decoders are also ``...ForConditionalGeneration``: only an encoder-decoder
    config is read as seq2seq."""
    import transformers

    config = transformers.LlamaConfig(architectures=["LlavaForConditionalGeneration"])
    assert task_of_config(config) is not Task.SEQ2SEQ_LM
    assert task_of_config(_t5(architectures=None)) is Task.SEQ2SEQ_LM  # by model type


def test_t5_takes_any_length_bart_its_position_table() -> None:
    """T5's positions are relative buckets (no table), BART's a learned table of 1024 (+2)."""
    t5 = resolve_model("t5-small")
    t5.check_sizes(1, 4096)
    with pytest.raises(advisor.AdvisorError, match="at most 1024 positions"):
        resolve_model("bart-base").check_sizes(1, 1025)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("plan", ["scratch", "lora+grad-ckpt"])
def test_seq2seq_simulates_exactly_as_it_measures(tmp_path: Path, kind: str, plan: str) -> None:
    simulated, measured = _peaks(_saved(tmp_path, CONFIGS[kind]()), plan)
    assert simulated == measured


@pytest.mark.parametrize(("kind", "targets"), [("t5", ("q", "v")), ("bart", ("q_proj", "v_proj"))])
def test_lora_on_seq2seq_defaults_to_peft_targets(
    tmp_path: Path, kind: str, targets: tuple[str, ...]
) -> None:
    """PEFT 0.22's table (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``): T5 ``q, v``,
    BART ``q_proj, v_proj``, in encoder self-, decoder self- and cross-attention alike."""
    from advisor.plans.cuts.blocks import default_lora_targets

    path = _saved(tmp_path, CONFIGS[kind]())
    source = resolve_model(path)
    model = source.build("cpu", pretrained=False)
    assert default_lora_targets(model) == targets
    # trainable parameters of the LoRA run = r × (in + out) for each targeted linear, from shapes
    r = 8
    linears = [
        m
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets
    ]
    assert len(linears) == 2 * (2 + 2 + 2)  # q and v of 2 encoder, 2 decoder self, 2 cross layers
    expected = sum(r * (m.in_features + m.out_features) for m in linears)
    measured = advisor.profile(
        path, plan=advisor.parse_plans(f"lora(r={r})")[0], batch_size=1, seq_len=8, device="cpu", steps=1
    )
    assert measured.params is not None and measured.params.trainable == expected


@pytest.mark.parametrize("name", ["t5-small", "t5-base", "bart-base"])
def test_seq2seq_presets_build_the_seq2seq_head(name: str) -> None:
    source = resolve_model(name)
    assert isinstance(source, HFModelSource) and source.task is Task.SEQ2SEQ_LM
    config: Any = source.build("meta").config
    assert config.is_encoder_decoder and config.tie_word_embeddings


# -- activation variants as the config says ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "field", "variants"),
    [
        (_bart, "activation_function", ("gelu_new", "gelu_pytorch_tanh")),
        (_t5, "feed_forward_proj", ("gated-gelu", "gated-silu")),
    ],
)
def test_the_configured_activation_is_replayed(
    tmp_path: Path, make: Any, field: str, variants: tuple[str, str]
) -> None:
    """The replay builds the Hugging Face module from the config, so the activation it names is
    the one replayed: two configs differing only there each simulate to their own measured peak,
    and the peaks differ (``gelu_new`` is written as Python ops that save their intermediates,
    ``gelu_pytorch_tanh``, the same function as one op, saves its input only)."""
    peaks = []
    for i, variant in enumerate(variants):
        path = _saved(tmp_path / str(i), make(**{field: variant}))
        simulated, measured = _peaks(path, "scratch")
        assert simulated == measured, variant
        peaks.append(measured)
    assert peaks[0] != peaks[1]
