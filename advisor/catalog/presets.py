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
    # where ``params`` comes from; the tests check it against the model built from ``config``
    params_source: str = "the parameter count of hf_id's released safetensors weights"


_LLAMA3_ROPE_8B = {
    "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
}  # fmt: skip
_LLAMA3_ROPE_1B = {**_LLAMA3_ROPE_8B, "factor": 32.0}
_QWEN_ROPE = {"rope_type": "default", "rope_theta": 1000000.0}
# Gemma 3: global layers use linear-scaled rope (theta 1e6, factor 8), sliding layers theta 1e4;
# config.json writes it as rope_scaling + rope_theta + rope_local_base_freq
_GEMMA3_ROPE = {
    "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
}  # fmt: skip

# Gemma 3 12B/27B are released as multimodal checkpoints (12,187,325,040 and 27,432,406,640
# parameters on the Hub). The text decoder is that total less the SigLIP vision tower
# (416,866,032, the same in both) and the projector (a 1152-wide norm and 1152 x hidden_size):
# the difference between the two releases' extras, 1,769,472 = 1152 x (5376 - 3840), confirms
# the split.
_GEMMA3_TEXT_SOURCE = (
    "the multimodal release's count less its SigLIP vision tower (416,866,032) and projector "
    "(1152 + 1152 x hidden_size)"
)

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
    # -- bigger dense models: fields from each hf_id's config.json
    Preset(
        "llama-3.2-3b", "meta-llama/Llama-3.2-3B", 3_212_749_824,
        "Llama 3.2 3B: 28 layers, d=3072, GQA 24/8, 128k vocab, tied embeddings",
        {
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": 128256, "hidden_size": 3072, "intermediate_size": 8192,
            "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _LLAMA3_ROPE_1B, "tie_word_embeddings": True,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "bos_token_id": 128000, "eos_token_id": 128001,
        },
    ),
    Preset(
        "llama-3.1-70b", "meta-llama/Llama-3.1-70B", 70_553_706_496,
        "Llama 3.1 70B: 80 layers, d=8192, GQA 64/8, 128k vocab",
        {
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": 128256, "hidden_size": 8192, "intermediate_size": 28672,
            "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _LLAMA3_ROPE_8B, "tie_word_embeddings": False,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "bos_token_id": 128000, "eos_token_id": 128001,
        },
    ),
    Preset(
        "llama-3.1-405b", "meta-llama/Llama-3.1-405B", 405_853_388_800,
        "Llama 3.1 405B: 126 layers, d=16384, GQA 128/8, 128k vocab",
        {
            "model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": 128256, "hidden_size": 16384, "intermediate_size": 53248,
            "num_hidden_layers": 126, "num_attention_heads": 128, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _LLAMA3_ROPE_8B, "tie_word_embeddings": False,
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "bos_token_id": 128000, "eos_token_id": 128001,
        },
    ),
    Preset(
        "qwen2.5-14b", "Qwen/Qwen2.5-14B", 14_770_033_664,
        "Qwen2.5 14B: 48 layers, d=5120, GQA 40/8, 152k vocab",
        {
            "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
            "vocab_size": 152064, "hidden_size": 5120, "intermediate_size": 13824,
            "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _QWEN_ROPE, "use_sliding_window": False, "max_window_layers": 48,
            "tie_word_embeddings": False, "hidden_act": "silu",
            "bos_token_id": 151643, "eos_token_id": 151643,
        },
    ),
    Preset(
        "qwen2.5-32b", "Qwen/Qwen2.5-32B", 32_763_876_352,
        "Qwen2.5 32B: 64 layers, d=5120, GQA 40/8, 152k vocab",
        {
            "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
            "vocab_size": 152064, "hidden_size": 5120, "intermediate_size": 27648,
            "num_hidden_layers": 64, "num_attention_heads": 40, "num_key_value_heads": 8,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _QWEN_ROPE, "use_sliding_window": False, "max_window_layers": 64,
            "tie_word_embeddings": False, "hidden_act": "silu",
            "bos_token_id": 151643, "eos_token_id": 151643,
        },
    ),
    Preset(
        "qwen2.5-72b", "Qwen/Qwen2.5-72B", 72_706_203_648,
        "Qwen2.5 72B: 80 layers, d=8192, GQA 64/8, 152k vocab",
        {
            "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
            "vocab_size": 152064, "hidden_size": 8192, "intermediate_size": 29568,
            "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_parameters": _QWEN_ROPE, "use_sliding_window": False, "max_window_layers": 80,
            "tie_word_embeddings": False, "hidden_act": "silu",
            "bos_token_id": 151643, "eos_token_id": 151643,
        },
    ),
    Preset(
        "gemma-2-9b", "google/gemma-2-9b", 9_241_705_984,
        "Gemma 2 9B: 42 layers, sliding (4096) / global alternating, d=3584, GQA 16/8, "
        "256k vocab, tied",
        {
            "model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"],
            "vocab_size": 256000, "hidden_size": 3584, "intermediate_size": 14336,
            "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8,
            "head_dim": 256, "max_position_embeddings": 8192, "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256,
            "sliding_window": 4096, "final_logit_softcapping": 30.0,
            "attn_logit_softcapping": 50.0, "tie_word_embeddings": True,
            "attention_bias": False, "attention_dropout": 0.0,
            "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1,
        },
    ),
    Preset(
        "gemma-2-27b", "google/gemma-2-27b", 27_227_128_320,
        "Gemma 2 27B: 46 layers, sliding (4096) / global alternating, d=4608, GQA 32/16, "
        "256k vocab, tied",
        {
            "model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"],
            "vocab_size": 256000, "hidden_size": 4608, "intermediate_size": 36864,
            "num_hidden_layers": 46, "num_attention_heads": 32, "num_key_value_heads": 16,
            "head_dim": 128, "max_position_embeddings": 8192, "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 144,
            "sliding_window": 4096, "final_logit_softcapping": 30.0,
            "attn_logit_softcapping": 50.0, "tie_word_embeddings": True,
            "attention_bias": False, "attention_dropout": 0.0,
            "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1,
        },
    ),
    Preset(
        "gemma-3-12b", "google/gemma-3-12b-pt", 11_766_034_176,
        "Gemma 3 12B text decoder (of the multimodal release): 48 layers, 5 sliding (1024) : "
        "1 global, d=3840, GQA 16/8, 262k vocab, tied",
        {
            "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
            "vocab_size": 262208, "hidden_size": 3840, "intermediate_size": 15360,
            "num_hidden_layers": 48, "num_attention_heads": 16, "num_key_value_heads": 8,
            "head_dim": 256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
            "rope_parameters": _GEMMA3_ROPE, "sliding_window": 1024,
            "sliding_window_pattern": 6, "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": 256, "final_logit_softcapping": None,
            "attn_logit_softcapping": None, "tie_word_embeddings": True,
            "attention_bias": False, "attention_dropout": 0.0,
            "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1,
        },
        _GEMMA3_TEXT_SOURCE,
    ),
    Preset(
        "gemma-3-27b", "google/gemma-3-27b-pt", 27_009_346_304,
        "Gemma 3 27B text decoder (of the multimodal release): 62 layers, 5 sliding (1024) : "
        "1 global, d=5376, GQA 32/16, 262k vocab, tied",
        {
            "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
            "vocab_size": 262208, "hidden_size": 5376, "intermediate_size": 21504,
            "num_hidden_layers": 62, "num_attention_heads": 32, "num_key_value_heads": 16,
            "head_dim": 128, "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
            "rope_parameters": _GEMMA3_ROPE, "sliding_window": 1024,
            "sliding_window_pattern": 6, "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": 168, "final_logit_softcapping": None,
            "attn_logit_softcapping": None, "tie_word_embeddings": True,
            "attention_bias": False, "attention_dropout": 0.0,
            "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1,
        },
        _GEMMA3_TEXT_SOURCE,
    ),
    Preset(
        "mistral-nemo-12b", "mistralai/Mistral-Nemo-Base-2407", 12_247_782_400,
        "Mistral NeMo 12B: 40 layers, d=5120, GQA 32/8 (head_dim 128), 131k vocab",
        {
            "model_type": "mistral", "architectures": ["MistralForCausalLM"],
            "vocab_size": 131072, "hidden_size": 5120, "intermediate_size": 14336,
            "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
            "head_dim": 128, "max_position_embeddings": 1024000, "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "sliding_window": None, "tie_word_embeddings": False, "hidden_act": "silu",
            "bos_token_id": 1, "eos_token_id": 2,
        },
    ),
    Preset(
        "phi-4", "microsoft/phi-4", 14_659_507_200,
        "Phi-4 14B: 40 layers, d=5120, GQA 40/10, 100k vocab, fused qkv_proj and gate_up_proj",
        {
            "model_type": "phi3", "architectures": ["Phi3ForCausalLM"],
            "vocab_size": 100352, "hidden_size": 5120, "intermediate_size": 17920,
            "num_hidden_layers": 40, "num_attention_heads": 40, "num_key_value_heads": 10,
            "max_position_embeddings": 16384, "original_max_position_embeddings": 16384,
            "rms_norm_eps": 1e-5, "rope_parameters": {"rope_type": "default", "rope_theta": 250000.0},
            "sliding_window": None, "tie_word_embeddings": False, "hidden_act": "silu",
            "attention_dropout": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
            "bos_token_id": 100257, "eos_token_id": 100257, "pad_token_id": 100257,
        },
    ),
    # -- mixture of experts: simulated under an explicit routing assumption (balanced default)
    Preset(
        "mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", 46_702_792_704,
        "Mixtral 8x7B: 32 layers, d=4096, GQA 32/8, 8 experts (top-2) of 14336, 32k vocab",
        {
            "model_type": "mixtral", "architectures": ["MixtralForCausalLM"],
            "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "num_local_experts": 8, "num_experts_per_tok": 2, "router_aux_loss_coef": 0.02,
            "output_router_logits": False, "sliding_window": None,
            "tie_word_embeddings": False, "hidden_act": "silu",
            "bos_token_id": 1, "eos_token_id": 2,
        },
    ),
    Preset(
        "qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B-Base", 30_532_122_624,
        "Qwen3 30B-A3B: 48 layers, d=2048, GQA 32/4 (head_dim 128), 128 fine-grained experts "
        "(top-8) of 768, 152k vocab",
        {
            "model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"],
            "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144,
            "moe_intermediate_size": 768, "num_hidden_layers": 48, "num_attention_heads": 32,
            "num_key_value_heads": 4, "head_dim": 128, "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6, "rope_parameters": _QWEN_ROPE, "num_experts": 128,
            "num_experts_per_tok": 8, "norm_topk_prob": True, "decoder_sparse_step": 1,
            "mlp_only_layers": [], "output_router_logits": False,
            "router_aux_loss_coef": 0.001, "use_sliding_window": False,
            "tie_word_embeddings": False, "hidden_act": "silu", "attention_bias": False,
            "bos_token_id": 151643, "eos_token_id": 151643,
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
    # encoder-decoder models: T5 counts its shared embedding once (the LM head is tied in t5-small
    # and t5-base); BART's released config names BartModel, the seq2seq head is trained here
    Preset(
        "t5-small", "google-t5/t5-small", 60_506_624,
        "T5 small, seq2seq: 6+6 layers, d=512, 8 heads, relative positions, tied head",
        {
            "model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
            "vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,
            "num_heads": 8, "relative_attention_num_buckets": 32, "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu", "is_encoder_decoder": True,
            "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1,
        },
    ),
    Preset(
        "t5-base", "google-t5/t5-base", 222_903_552,
        "T5 base, seq2seq: 12+12 layers, d=768, 12 heads, relative positions, tied head",
        {
            "model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
            "vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12,
            "num_heads": 12, "relative_attention_num_buckets": 32, "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu", "is_encoder_decoder": True,
            "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1,
        },
    ),
    Preset(
        "bart-base", "facebook/bart-base", 139_420_416,
        "BART base, seq2seq: 6+6 layers, d=768, 12 heads, 1024 positions, tied head",
        {
            "model_type": "bart", "architectures": ["BartForConditionalGeneration"],
            "vocab_size": 50265, "d_model": 768, "encoder_layers": 6, "decoder_layers": 6,
            "encoder_attention_heads": 12, "decoder_attention_heads": 12, "encoder_ffn_dim": 3072,
            "decoder_ffn_dim": 3072, "max_position_embeddings": 1024, "activation_function": "gelu",
            "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.1,
            "scale_embedding": False, "is_encoder_decoder": True, "pad_token_id": 1,
            "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2,
            "forced_eos_token_id": 2,
        },
    ),
)}
# fmt: on
