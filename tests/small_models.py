"""Small transformers models for the repeat-block tests: the same few shapes, any depth
(vocabulary 512, width 64, 4 heads), built from a config on any device."""

from __future__ import annotations

from advisor.models import HFModelSource


def llama(layers: int = 10) -> HFModelSource:
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    cfg.architectures = ["LlamaForCausalLM"]
    return HFModelSource(f"llama-{layers}", cfg)


def gpt2(layers: int = 10) -> HFModelSource:
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=512, n_embd=64, n_layer=layers, n_head=4, n_positions=256)
    cfg.architectures = ["GPT2LMHeadModel"]
    return HFModelSource(f"gpt2-{layers}", cfg)


def bert(layers: int = 10) -> HFModelSource:
    from transformers import BertConfig

    cfg = BertConfig(
        vocab_size=512, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=256,
    )  # fmt: skip
    cfg.architectures = ["BertForMaskedLM"]
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
