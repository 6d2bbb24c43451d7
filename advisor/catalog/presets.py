"""Architecture presets: popular models by their published shapes, no download needed.

Each preset is the model's published ``config.json`` reduced to what decides its shapes and its
training-step memory (sizes, heads, vocabulary, tying, dropout, rotary settings), kept as plain
data. :mod:`advisor.models.presets` builds one into a transformers config and a model source. A
preset has no weights: it is for simulation, which builds the model on the ``meta`` device.
Pure data: this module imports nothing of the advisor, nor transformers.

A user's own ``config.json`` (``--model path/to/config.json``) works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset:
    """One published architecture: its config fields and where they come from."""

    name: str  # lower-case registry name, e.g. "llama-3.1-8b"
    hf_id: str  # the Hugging Face repository whose config.json these fields are from
    params: int  # published/known parameter count of this exact config, checked by the tests
    description: str
    config: dict[str, Any]  # config.json fields; "model_type" picks the transformers class


_LLAMA3_ROPE_8B = {
    "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
}  # fmt: skip
_LLAMA3_ROPE_1B = {**_LLAMA3_ROPE_8B, "factor": 32.0}

# fmt: off
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "llama-3.2-1b", "meta-llama/Llama-3.2-1B", 1_235_814_400,
        "Llama 3.2 1B: 16 layers, d=2048, GQA 32/8, 128k vocab, tied embeddings",
        {
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
            "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 64, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _LLAMA3_ROPE_1B, "tie_word_embeddings": True,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "bos_token_id": 128000, "eos_token_id": 128001,
        },
    ),
    Preset(
        "llama-3.1-8b", "meta-llama/Llama-3.1-8B", 8_030_261_248,
        "Llama 3.1 8B: 32 layers, d=4096, GQA 32/8, 128k vocab",
        {
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _LLAMA3_ROPE_8B, "tie_word_embeddings": False,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "bos_token_id": 128000, "eos_token_id": 128001,
        },
    ),
    Preset(
        "mistral-7b", "mistralai/Mistral-7B-v0.3", 7_248_023_552,
        "Mistral 7B v0.3: 32 layers, d=4096, GQA 32/8, 32k vocab, full attention",
        {
            "model_type": "mistral", "architectures": ["MistralForCausalLM"],
            "vocab_size": 32768, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 32768, "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "sliding_window": None, "tie_word_embeddings": False, "hidden_act": "silu",
            "bos_token_id": 1, "eos_token_id": 2,
        },
    ),
    Preset(
        "qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B", 494_032_768,
        "Qwen2.5 0.5B: 24 layers, d=896, GQA 14/2, 152k vocab, tied embeddings",
        {
            "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
            "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
            "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "use_sliding_window": False, "max_window_layers": 24, "tie_word_embeddings": True,
            "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151643,
        },
    ),
    Preset(
        "qwen2.5-7b", "Qwen/Qwen2.5-7B", 7_615_616_512,
        "Qwen2.5 7B: 28 layers, d=3584, GQA 28/4, 152k vocab",
        {
            "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
            "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
            "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "use_sliding_window": False, "max_window_layers": 28, "tie_word_embeddings": False,
            "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151643,
        },
    ),
    Preset(
        "phi-3-mini", "microsoft/Phi-3-mini-4k-instruct", 3_821_079_552,
        "Phi-3 mini 4k: 32 layers, d=3072, 32 heads (no GQA), fused qkv_proj and gate_up_proj",
        {
            "model_type": "phi3", "architectures": ["Phi3ForCausalLM"],
            "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "max_position_embeddings": 4096, "original_max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "sliding_window": 2047, "tie_word_embeddings": False, "hidden_act": "silu",
            "attention_dropout": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
            "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000,
        },
    ),
    Preset(
        "gpt2", "openai-community/gpt2", 124_439_808,
        "GPT-2 124M: 12 layers, d=768, 1024 positions, tied embeddings",
        {
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
            "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
            "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5,
            "bos_token_id": 50256, "eos_token_id": 50256,
        },
    ),
    Preset(
        "gpt2-xl", "openai-community/gpt2-xl", 1_557_611_200,
        "GPT-2 XL 1.5B: 48 layers, d=1600, 1024 positions, tied embeddings",
        {
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": 50257, "n_positions": 1024, "n_embd": 1600, "n_layer": 48, "n_head": 25,
            "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
            "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5,
            "bos_token_id": 50256, "eos_token_id": 50256,
        },
    ),
    Preset(
        "bert-base", "google-bert/bert-base-uncased", 109_514_298,
        "BERT base uncased, masked LM: 12 layers, d=768, 512 positions",
        {
            "model_type": "bert", "architectures": ["BertForMaskedLM"],
            "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
            "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0,
        },
    ),
)}
# fmt: on
