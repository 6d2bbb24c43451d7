"""Small transformers models for the repeat-block tests: the same few shapes, any depth
(vocabulary 512, width 64, 4 heads), built from a config on any device; and hand-made probes
for the extrapolation's own tests."""

from __future__ import annotations

from typing import Any

from advisor.models import HFModelSource
from profilers.records import (
    MemoryBreakdown,
    ParamCounts,
    Provenance,
    SimulationRecord,
    TensorPeak,
    TrialResult,
    TrialStatus,
)
from profilers.simulate.repeat import Probe


def llama(layers: int = 10, name: str = "llama", **shape: Any) -> HFModelSource:
    """The small Llama, or another shape of it (``shape``: LlamaConfig's values to change)."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(**{
        "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": layers,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256, **shape,
    })  # fmt: skip
    cfg.architectures = ["LlamaForCausalLM"]
    return HFModelSource(f"{name}-{layers}", cfg)


def gpt2(layers: int = 10) -> HFModelSource:
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=512, n_embd=64, n_layer=layers, n_head=4, n_positions=256)
    cfg.architectures = ["GPT2LMHeadModel"]
    return HFModelSource(f"gpt2-{layers}", cfg)


def bert(layers: int = 10, head: str = "BertForMaskedLM") -> HFModelSource:
    """The small BERT with a masked-LM head, or ``BertForSequenceClassification`` (2 labels)."""
    from transformers import BertConfig

    cfg = BertConfig(
        vocab_size=512, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=256,
    )  # fmt: skip
    cfg.architectures = [head]
    if head == "BertForSequenceClassification":
        cfg.num_labels = 2
        return HFModelSource(f"bert-seqcls-{layers}", cfg)
    return HFModelSource(f"bert-{layers}", cfg)


def gemma2(layers: int = 20) -> HFModelSource:
    """Alternating sliding-window and global attention: a block of two layers."""
    from transformers import Gemma2Config

    cfg = Gemma2Config(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
        sliding_window=8,
    )  # fmt: skip
    cfg.architectures = ["Gemma2ForCausalLM"]
    return HFModelSource(f"gemma2-{layers}", cfg)


def one_segment_probe(blocks: int, peak: int, activations: int, *, frozen: int = 0, plain: int = 0) -> Probe:
    """A probe of ``blocks`` blocks (the first ``frozen`` of them frozen) whose one segment
    peaks at ``peak`` bytes, ``activations`` of them activations; 10 parameters a block."""
    rest = peak - activations
    breakdown = MemoryBreakdown(rest, 0, 0, 0, 0, activations)
    trainable = blocks - frozen
    result = TrialResult(
        model="m", plan="p", cuts=(), device="fake-cpu", batch_size=1, seq_len=8, status=TrialStatus.OK,
        params=ParamCounts(10 * blocks, 10 * trainable, 40 * blocks, 40 * trainable, Provenance.SIMULATED),
        tensor_peak=TensorPeak(peak, breakdown, rest, "backward", Provenance.SIMULATED),
        simulation=SimulationRecord(phase_peaks={"backward": peak}),
    )  # fmt: skip
    probe = Probe(blocks, frozen=frozen, result=result, plain_params=plain or 10 * blocks)
    probe.segment_peaks = {("backward", "outside"): peak}
    probe.segment_breakdowns = {("backward", "outside"): breakdown}
    return probe
