"""The model's inventory for the estimate, read on the ``meta`` device: its linear layers (where
LoRA may go), embeddings, and the traits of its transformer architecture (norms, gated MLPs,
fused q/k/v, dropout) that the activation accounting needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "CALIBRATED_TYPES",
    "ENCODER_TYPES",
    "LORA_DEFAULTS",
    "QKV_NAMES",
    "Arch",
    "LinearSite",
    "arch_of",
    "input_embedding_weight",
    "linear_sites",
    "output_weight",
]


@dataclass
class LinearSite:
    name: str
    in_features: int
    out_features: int
    weight: torch.Tensor
    bias: torch.Tensor | None
    in_block: int | None  # index of the repeated block holding it, None outside the blocks


def _linear_dims(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight"):  # transformers' GPT-2
        w = module.weight
        if isinstance(w, torch.Tensor) and w.dim() == 2:
            return int(w.shape[0]), int(w.shape[1])
    return None


def _block_index(name: str, block_path: str) -> int | None:
    if not block_path or not name.startswith(block_path + "."):
        return None
    head = name[len(block_path) + 1 :].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def linear_sites(model: nn.Module, block_path: str) -> list[LinearSite]:
    out: list[LinearSite] = []
    for name, module in model.named_modules():
        dims = _linear_dims(module)
        if dims is None:
            continue
        weight = module.weight
        bias = getattr(module, "bias", None)
        out.append(
            LinearSite(name, dims[0], dims[1], weight, bias if isinstance(bias, nn.Parameter) else None,
                    _block_index(name, block_path))
        )  # fmt: skip
    return out


# PEFT's own default LoRA targets for common architectures (peft.utils.constants), kept here so
# that an estimate does not import peft (seconds, with bitsandbytes); others ask PEFT
LORA_DEFAULTS: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "v_proj"), "mistral": ("q_proj", "v_proj"), "mixtral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"), "qwen3": ("q_proj", "v_proj"), "gemma": ("q_proj", "v_proj"),
    "gemma2": ("q_proj", "v_proj"), "gpt2": ("c_attn",),
    "bert": ("query", "value"), "roberta": ("query", "value"),
    "t5": ("q", "v"), "mt5": ("q", "v"), "bart": ("q_proj", "v_proj"), "mbart": ("q_proj", "v_proj"),
}  # fmt: skip


# -- the architecture's traits ----------------------------------------------------------------------

_GATED_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3",
    "olmo", "olmo2", "starcoder2_gated", "granite", "cohere",
}  # fmt: skip
ENCODER_TYPES = {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2"}
CALIBRATED_TYPES = {"llama", "gpt2", "bert"}
_COMPOSITE_GELU = {"gelu_new", "gelu_fast", "gelu_accurate"}  # written as Python ops: 4 saves
QKV_NAMES = {"q_proj", "k_proj", "v_proj", "query", "key", "value", "c_attn", "qkv_proj",
              "query_key_value", "Wqkv", "qkv", "in_proj"}  # fmt: skip


def _first(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


@dataclass(frozen=True)
class Arch:
    """What the activation accounting needs to know about a transformer."""

    model_type: str
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    norm: str  # "rms" or "layer"
    gated: bool
    act_saves: int  # BSI-sized tensors the MLP activation keeps (gated: gate, act, up)
    qkv_linears: int  # separate q/k/v projections (3), or one fused (1)
    fc_linears: int  # gate + up (2), or one
    rotary: bool
    encoder: bool  # BERT-style: embedding LayerNorm, MLM transform head
    attn_dropout: float
    hidden_dropout: float
    embd_dropout: float
    causal_loss_upcast: bool  # transformers' causal-LM loss casts logits to fp32
    attn_implementation: str  # "sdpa" or "eager"


def arch_of(config: Any, attn_implementation: str) -> Arch:
    model_type = str(getattr(config, "model_type", "") or "")
    hidden = int(_first(config, "hidden_size", "n_embd", "d_model"))
    heads = int(_first(config, "num_attention_heads", "n_head", "num_heads"))
    kv = int(_first(config, "num_key_value_heads", "multi_query_group_num", default=heads))
    head_dim = int(_first(config, "head_dim", default=hidden // heads))
    inter = _first(config, "intermediate_size", "n_inner", "ffn_dim", "d_ff")
    act = str(_first(config, "hidden_act", "activation_function", default="gelu"))
    encoder = model_type in ENCODER_TYPES
    gated = model_type in _GATED_TYPES or (
        model_type not in ENCODER_TYPES
        and act in ("silu", "swish")
        and hasattr(config, "num_key_value_heads")
    )
    if gated:
        act_saves = 3
    elif act in _COMPOSITE_GELU:
        act_saves = 4
    else:
        act_saves = 1
    fused_qkv = model_type in ("gpt2", "phi3", "gpt_neox", "falcon", "bloom", "phi")
    attn_p = float(
        _first(config, "attention_dropout", "attn_pdrop", "attention_probs_dropout_prob", default=0.0)
    )
    hid_p = float(_first(config, "hidden_dropout_prob", "resid_pdrop", "hidden_dropout", default=0.0))
    emb_p = float(_first(config, "embd_pdrop", "hidden_dropout_prob", default=0.0))
    rotary = not encoder and model_type not in ("gpt2", "opt", "bloom")
    return Arch(
        model_type=model_type,
        layers=int(_first(config, "num_hidden_layers", "n_layer", "num_layers")),
        hidden=hidden,
        intermediate=int(inter) if inter else 4 * hidden,
        vocab=int(config.vocab_size),
        heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        norm="rms" if gated else "layer",
        gated=gated,
        act_saves=act_saves,
        qkv_linears=1 if fused_qkv else 3,
        fc_linears=1 if (not gated or model_type == "phi3") else 2,
        rotary=rotary,
        encoder=encoder,
        attn_dropout=attn_p,
        hidden_dropout=hid_p,
        embd_dropout=emb_p if not encoder else hid_p,
        causal_loss_upcast=not encoder,
        attn_implementation=attn_implementation,
    )


def input_embedding_weight(model: nn.Module) -> torch.Tensor | None:
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            emb = getter()
        except (NotImplementedError, AttributeError):
            emb = None
        if isinstance(emb, nn.Embedding):
            return emb.weight
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return module.weight
    return None


def output_weight(model: nn.Module) -> torch.Tensor | None:
    getter = getattr(model, "get_output_embeddings", None)
    if callable(getter):
        try:
            out = getter()
        except (NotImplementedError, AttributeError):
            out = None
        weight = getattr(out, "weight", None)
        if isinstance(weight, torch.Tensor):
            return weight
    return None
