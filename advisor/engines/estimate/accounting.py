"""The accounting: bytes of parameters, gradients, optimizer state and the activations autograd
keeps, per layer and per step moment, from the model's inventory and the plan's view."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from advisor.core.errors import InvalidInputError
from advisor.engines.estimate.arch import (
    CALIBRATED_TYPES,
    ENCODER_TYPES,
    LORA_DEFAULTS,
    QKV_NAMES,
    Arch,
    LinearSite,
    arch_of,
    input_embedding_weight,
    linear_sites,
    output_weight,
)
from advisor.plans.cuts import default_lora_targets, find_repeated_blocks
from advisor.plans.cuts.blocks import matches_target
from advisor.plans.view import EstimateView
from profilers.records import ParamCounts, Provenance

__all__ = ["Accounting", "account"]

_FP32 = 4
_INT64 = 8
_ADAMW8BIT_MIN_ELEMENTS = 4096  # bitsandbytes' min_8bit_size: smaller tensors keep fp32 state
_ADAMW8BIT_BLOCK = 256  # elements per fp32 absmax scale in blockwise 8-bit state
_NF4_BLOCK = 64  # elements per fp32 absmax in bitsandbytes' 4-bit weights


@dataclass(frozen=True)
class _Sizes:
    """Bytes per element of each kind of tensor under the plan's precision on the target."""

    param: int  # parameters, gradients, optimizer moments
    act: int  # linear outputs and the elementwise ops after them
    resid: int  # the residual stream (embedding dtype)
    norm_in: int  # what a norm keeps of its input
    norm_out: int  # what a norm keeps of its normalized output
    lin_in: int  # a trained linear's saved input
    lin_copies: bool  # autocast: each linear keeps its own cast copy of an fp32 input
    loss: int  # the log-softmax and its gradients
    cuda: bool

    def mask(self, of: int) -> int:
        """A dropout mask over a tensor of ``of`` bytes per element (bool on CUDA)."""
        return 1 if self.cuda else of


def _sizes(precision: str, target: str, causal_upcast: bool) -> _Sizes:
    cuda = target == "cuda"
    if precision == "autocast":
        return _Sizes(_FP32, 2, _FP32, _FP32, _FP32, 2, True, _FP32, cuda)
    if precision == "bf16":
        return _Sizes(2, 2, 2, _FP32, 2, 2, False, _FP32 if causal_upcast else 2, cuda)
    return _Sizes(_FP32, _FP32, _FP32, _FP32, _FP32, _FP32, False, _FP32, cuda)


@dataclass
class _LayerFlags:
    grads_in: bool  # the layer's input requires grad
    trained: bool  # the layer's own base weights (linears, norms) train
    saves_frozen_inputs: bool  # frozen linears still keep their inputs (bitsandbytes' matmuls)
    lora_sites: list[LinearSite]  # targeted linears in this layer


def _norm_saved(arch: Arch, s: _Sizes, grads_in: bool, weight_trains: bool) -> int:
    """Bytes per token a norm over the hidden size keeps."""
    h = arch.hidden
    if arch.norm == "rms":  # transformers' RMSNorm: fp32 input for the variance, normalized × weight
        return h * ((s.norm_in if grads_in else 0) + (s.norm_out if weight_trains else 0))
    size = s.norm_in if s.param == _FP32 else s.param
    return h * size if (grads_in or weight_trains) else 0


def _attention_path(arch: Arch, s: _Sizes, view: EstimateView) -> str:
    impl = view.attention or arch.attn_implementation
    if impl == "eager":
        return "eager"
    if not s.cuda and arch.attn_dropout > 0.0:
        return "math"  # SDPA with dropout on a CPU runs its math path: scores materialized
    return "fused"


def _layer_bytes(arch: Arch, s: _Sizes, view: EstimateView, f: _LayerFlags, batch: int, seq: int) -> int:
    """Bytes one transformer layer keeps for backward."""
    if not (f.grads_in or f.trained or f.lora_sites):
        return 0
    t = batch * seq
    h, i = arch.hidden, arch.intermediate
    q_dim, kv_dim = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    lin_saved = f.trained or f.saves_frozen_inputs
    per_token = 0
    # attention block: norm, q/k/v inputs, LoRA branches
    per_token += _norm_saved(arch, s, f.grads_in, f.trained)
    if lin_saved:
        per_token += h * (s.lin_in * arch.qkv_linears if s.lin_copies else s.lin_in)
    for site in f.lora_sites:
        first = site.name.rsplit(".", 1)[-1] in QKV_NAMES
        mask_needed = view.lora_dropout > 0.0 and (f.grads_in or not first)
        dropped = site.in_features * (s.lin_in if s.lin_copies else s.resid if first else s.act)
        per_token += dropped + (site.in_features * s.mask(s.resid if first else s.act) if mask_needed else 0)
        per_token += view.lora_r * s.act
    path = _attention_path(arch, s, view)
    scores = 0
    if path == "fused":
        per_token += (2 * q_dim + 2 * kv_dim) * s.act  # q, k, v and the output
        per_token += arch.heads * _FP32  # log-sum-exp
    else:
        qkv_size = _FP32 if path == "math" and not s.cuda else s.act
        per_token += 3 * q_dim * qkv_size  # q, k and v (grouped k/v expanded)
        if f.trained or f.saves_frozen_inputs:
            per_token += q_dim * s.lin_in  # the output, copied for the output projection
        probs = _FP32 if (path == "math" or s.act == _FP32) else _FP32 + s.act
        dropped = 2 * (_FP32 if path == "math" else s.act) if arch.attn_dropout > 0.0 else 0
        # torch ≤ 1.10: softmax also keeps its input (the scores, plus a decoder's mask: fp32
        # where the residual stream is)
        kept_in = (s.act if arch.encoder else max(s.act, s.resid)) if view.softmax_keeps_input else 0
        scores = batch * arch.heads * seq * seq * (probs + dropped + kept_in)
    if arch.hidden_dropout > 0.0:
        per_token += h * s.mask(s.act)
    # MLP block
    per_token += _norm_saved(arch, s, True, f.trained)
    if lin_saved:
        per_token += h * (s.lin_in * arch.fc_linears if s.lin_copies else s.lin_in)
        per_token += i * s.act  # the down projection's input
    per_token += arch.act_saves * i * s.act
    if arch.hidden_dropout > 0.0:
        per_token += h * s.mask(s.act)
    return t * per_token + scores


@dataclass
class Accounting:
    """Everything the peak candidates are built from (bytes)."""

    parameter_bytes: int = 0
    buffer_bytes: int = 0
    gradient_bytes: int = 0
    optimizer_bytes: int = 0
    input_bytes: int = 0
    # what autograd keeps at the end of forward, by where it is released in backward
    head_saved_bytes: int = 0  # loss, output layer, final norm: released first
    logits_bytes: int = 0  # the log-softmax kept by the loss (part of head_saved_bytes)
    layer_saved: list[int] = field(default_factory=list)  # each layer, without checkpointing
    layer_checkpoint: list[int] = field(default_factory=list)  # each layer's input, checkpointed
    layer_grads: list[int] = field(default_factory=list)  # each layer's trainable bytes
    layer_bump: list[int] = field(default_factory=list)  # inside a layer's backward: MLP grads
    layer_first_grad: list[int] = field(default_factory=list)  # its first weight gradient
    other_saved_bytes: int = 0  # embeddings, rotary tables, autocast copies of outer weights
    layer_weight_copies: list[int] = field(default_factory=list)  # autocast copies per layer
    checkpointed: bool = False
    loss_grad_bytes: int = 0  # the loss's gradients when backward starts
    head_grad_bytes: int = 0  # output-layer gradients, present once backward passes it
    hidden_grad_bytes: int = 0  # the gradient of one hidden state
    optimizer_temp_bytes: int = 0
    backward_tail_bytes: int = 0  # tied embeddings: the two gradients summed at the end


def _optimizer_state(view: EstimateView, shapes: Iterable[tuple[tuple[int, ...], int]]) -> int:
    total = 0
    for shape, elem in shapes:
        n = math.prod(shape)
        if view.optimizer == "adamw":
            total += 2 * n * elem + _FP32
        elif view.optimizer == "sgd":
            total += n * elem if view.momentum > 0.0 else 0
        elif view.optimizer == "adafactor":
            if len(shape) >= 2:
                rows = math.prod(shape[:-1])
                cols = math.prod(shape[:-2]) * shape[-1]
                total += (rows + cols) * elem + _FP32
            else:
                total += n * elem + _FP32
        elif view.optimizer == "adamw8bit":
            if n >= _ADAMW8BIT_MIN_ELEMENTS:
                total += 2 * (n + _FP32 * math.ceil(n / _ADAMW8BIT_BLOCK))
            else:
                total += 2 * n * _FP32
    return total


def _optimizer_temp(view: EstimateView, target: str, trainable: list[int]) -> int:
    """Temporaries of one optimizer step over the trainable tensors' bytes, in step order.

    With ``foreach`` (CUDA's default) one temporary per tensor exists at once (AdamW's ``sqrt``
    of every second moment); ``fused`` updates in place. In a loop (a CPU's default) tensors go
    one at a time: AdamW's ``sqrt`` and
    the division by the bias correction, while the previous tensor's ``denom`` is still bound.
    """
    if not trainable or view.optimizer in ("sgd", "adamw8bit") or view.optimizer_impl == "fused":
        return 0
    impl = view.optimizer_impl or ("foreach" if target == "cuda" else "loop")
    if impl == "foreach":
        return sum(trainable)
    if view.optimizer != "adamw":
        return max(trainable)
    previous = [0, *trainable[:-1]]
    return max(2 * size + prev for size, prev in zip(trainable, previous, strict=True))


def _quantized_bytes(numel: int, bits: int) -> int:
    if bits == 4:
        return numel // 2 + _FP32 * math.ceil(numel / _NF4_BLOCK)
    return numel  # int8, plus a small per-row scale counted with the bias


def account(
    meta: nn.Module,
    config: Any,
    view: EstimateView,
    batch: int,
    seq: int,
    target: str,
    notes: list[str],
) -> tuple[Accounting, ParamCounts]:
    block_path, blocks = find_repeated_blocks(meta)
    n_blocks = len(blocks)
    linears = linear_sites(meta, block_path)
    emb = input_embedding_weight(meta)
    out_emb = output_weight(meta)
    tied = emb is not None and out_emb is not None and out_emb is emb
    causal = config is not None and str(getattr(config, "model_type", "")) not in ENCODER_TYPES
    s = _sizes(view.precision, target, causal)

    # LoRA targets: the linears PEFT would wrap
    lora_sites: list[LinearSite] = []
    if view.lora:
        model_type = str(getattr(config, "model_type", "") or "")
        targets = view.lora_targets or LORA_DEFAULTS.get(model_type) or tuple(default_lora_targets(meta))
        lora_sites = [lin for lin in linears if any(matches_target(lin.name, t) for t in targets)]
        if not lora_sites:
            raise InvalidInputError(
                f"LoRA targets {', '.join(targets)} match no linear layer of {type(meta).__name__}",
                "name layers that exist, e.g. lora(targets=q_proj|v_proj)",
            )

    # parameters: bytes, trainable or not
    frozen_ids: set[int] = set()
    block_of: dict[int, int] = {}
    for idx, block in enumerate(blocks):
        for p in block.parameters():
            block_of[id(p)] = idx
    quantized: set[int] = set()
    if view.qlora_bits:
        quantized = {id(lin.weight) for lin in linears if lin.in_block is not None}
    total = total_bytes = trainable = trainable_bytes = 0
    train_shapes: list[tuple[tuple[int, ...], int]] = []
    for p in meta.parameters():
        n = p.numel()
        elem = 2 if view.precision == "bf16" else p.element_size()
        nbytes = _quantized_bytes(n, view.qlora_bits) if id(p) in quantized else n * elem
        trains = p.requires_grad
        if view.lora:
            trains = False
        if view.frozen_embedding and emb is not None and p is emb:
            trains = False
        if view.frozen_layers and block_of.get(id(p), n_blocks) < view.frozen_layers:
            trains = False
        if not trains:
            frozen_ids.add(id(p))
        total += n
        total_bytes += nbytes
        if trains:
            trainable += n
            trainable_bytes += nbytes
            train_shapes.append((tuple(p.shape), elem))
    adapter_elem = 2 if view.precision == "bf16" else _FP32
    for lin in lora_sites:
        for shape in ((view.lora_r, lin.in_features), (lin.out_features, view.lora_r)):
            n = math.prod(shape)
            total += n
            total_bytes += n * adapter_elem
            trainable += n
            trainable_bytes += n * adapter_elem
            train_shapes.append((shape, adapter_elem))
    params = ParamCounts(total, trainable, total_bytes, trainable_bytes, Provenance.ESTIMATED)
    if trainable == 0:
        raise InvalidInputError(
            "the plan leaves no trainable parameter", "drop a freezing cut or unfreeze some layers"
        )

    acc = Accounting()
    acc.parameter_bytes = total_bytes
    buffer_elem = {id(b): b.element_size() for b in meta.buffers()}
    acc.buffer_bytes = sum(b.numel() * buffer_elem[id(b)] for b in meta.buffers())
    acc.gradient_bytes = trainable_bytes
    acc.optimizer_bytes = _optimizer_state(view, train_shapes)
    train_sizes = [math.prod(shape) * elem for shape, elem in train_shapes]
    acc.optimizer_temp_bytes = _optimizer_temp(view, target, train_sizes)
    if tied and emb is not None and id(emb) not in frozen_ids:
        acc.backward_tail_bytes = 2 * emb.numel() * s.param
    if view.optimizer == "adamw8bit":
        notes.append("adamw8bit: bitsandbytes' blockwise state; temporaries not counted")
    if view.qlora_bits:
        notes.append(f"qlora: {view.qlora_bits}-bit block linears, dequantized one at a time")

    t = batch * seq
    if config is None or n_blocks == 0 or not hasattr(config, "vocab_size"):
        _plain_activations(acc, meta, linears, frozen_ids, lora_sites, view, s, batch, seq, notes)
        return acc, params

    arch = arch_of(config, str(getattr(config, "_attn_implementation", None) or "sdpa"))
    if arch.model_type not in CALIBRATED_TYPES:
        family = "llama" if arch.gated else ("bert" if arch.encoder else "gpt2")
        notes.append(f"{arch.model_type}: activations counted as in the {family} family it resembles")
    acc.input_bytes = 3 * t * _INT64  # input_ids, attention_mask, labels
    emb_trains = emb is not None and id(emb) not in frozen_ids

    # per layer
    lora_by_block: dict[int, list[LinearSite]] = {}
    for lin in lora_sites:
        if lin.in_block is not None:
            lora_by_block.setdefault(lin.in_block, []).append(lin)
    grads_flow = emb_trains
    for idx in range(n_blocks):
        trained = not view.lora and idx >= view.frozen_layers
        sites = lora_by_block.get(idx, [])
        flags = _LayerFlags(grads_flow, trained, bool(view.qlora_bits), sites)
        saved = _layer_bytes(arch, s, view, flags, batch, seq)
        acc.layer_saved.append(saved)
        acc.layer_checkpoint.append(t * arch.hidden * s.resid if saved else 0)
        grads_flow = grads_flow or trained or bool(sites)
    acc.checkpointed = view.grad_ckpt
    acc.layer_grads = [0] * n_blocks
    for p in meta.parameters():
        where = block_of.get(id(p))
        if where is not None and id(p) not in frozen_ids:
            acc.layer_grads[where] += p.numel() * (2 if view.precision == "bf16" else p.element_size())
    for lin in lora_sites:
        if lin.in_block is not None:
            acc.layer_grads[lin.in_block] += view.lora_r * (lin.in_features + lin.out_features) * adapter_elem
    # a layer's backward begins in its MLP: the gradient of the intermediate activation and of
    # one more hidden state, and the output projection's weight gradient. With that projection
    # frozen (LoRA) its input was never kept, and the activation's backward peaks with two
    # intermediate-sized gradients live beside what the activation kept
    for idx in range(n_blocks):
        active = acc.layer_saved[idx] > 0
        trained = not view.lora and idx >= view.frozen_layers
        intermediates = 1 if trained else 2
        bump = t * (intermediates * arch.intermediate * s.act + arch.hidden * _FP32)
        acc.layer_bump.append(bump if active else 0)
        acc.layer_first_grad.append(arch.intermediate * arch.hidden * s.param if trained else 0)

    # autocast keeps bf16 copies of the weights (frozen ones too, while gradients flow through)
    acc.layer_weight_copies = [0] * n_blocks
    if view.precision == "autocast":
        for lin in linears:
            if lin.in_block is None:
                acc.other_saved_bytes += 2 * lin.weight.numel()
            elif acc.layer_saved[lin.in_block]:
                acc.layer_weight_copies[lin.in_block] += 2 * lin.weight.numel()
    # embeddings, rotary tables
    if emb_trains:
        acc.other_saved_bytes += t * _INT64
        if arch.embd_dropout > 0.0:
            acc.other_saved_bytes += t * arch.hidden * s.mask(s.resid)
    if arch.rotary:
        acc.other_saved_bytes += 2 * seq * arch.head_dim * s.resid  # cos and sin
    head_trains = not view.lora
    if arch.encoder:
        if head_trains or emb_trains:  # the embedding LayerNorm's input, its dropout's mask
            acc.other_saved_bytes += t * arch.hidden * s.resid
            if arch.hidden_dropout > 0.0:
                acc.other_saved_bytes += t * arch.hidden * s.mask(s.resid)
        # MLM transform: dense input, activation input, LayerNorm input
        head = t * arch.hidden * ((s.lin_in if head_trains else 0) + s.act + s.resid)
    else:
        head = t * _norm_saved(arch, s, True, head_trains)
    out_trains = out_emb is not None and id(out_emb) not in frozen_ids
    if out_trains:
        head += t * arch.hidden * s.lin_in
    loss_size = s.loss if (causal or view.precision == "autocast") else s.param
    acc.logits_bytes = t * arch.vocab * loss_size
    acc.head_saved_bytes = head + acc.logits_bytes + t * _INT64
    if view.softmax_keeps_input:  # torch ≤ 1.10: log-softmax also keeps its input
        acc.head_saved_bytes += acc.logits_bytes
    acc.loss_grad_bytes = 2 * acc.logits_bytes
    acc.hidden_grad_bytes = t * arch.hidden * _FP32
    if out_trains and out_emb is not None:
        acc.head_grad_bytes = out_emb.numel() * s.param
    if view.offload and target == "cuda":  # saved tensors wait in host memory
        notes.append("offload: saved activations counted in host memory, not on the GPU")
        acc.layer_saved = [0] * n_blocks
        acc.layer_checkpoint = [0] * n_blocks
        acc.layer_weight_copies = [0] * n_blocks
    return acc, params


def _plain_activations(
    acc: Accounting,
    meta: nn.Module,
    linears: list[LinearSite],
    frozen_ids: set[int],
    lora_sites: list[LinearSite],
    view: EstimateView,
    s: _Sizes,
    batch: int,
    seq: int,
    notes: list[str],
) -> None:
    """A rough activation term for a module without a transformers config: each linear keeps
    its input (when it trains) and one copy of its output; the last output is the loss input."""
    notes.append(
        f"{type(meta).__name__}: no transformers config, so activations are a rough count "
        "(inputs and outputs of its linear layers)"
    )
    t = batch * seq
    first = next((m for m in meta.modules() if not list(m.children())), None)
    acc.input_bytes = t * (
        _INT64 if isinstance(first, nn.Embedding) else _FP32 * getattr(first, "in_features", 1)
    )
    saved = 0
    for lin in linears:
        if id(lin.weight) not in frozen_ids:
            saved += t * lin.in_features * s.lin_in
        saved += t * lin.out_features * s.act
    for lin in lora_sites:
        saved += t * (lin.in_features * 2 + view.lora_r) * s.act
    if view.grad_ckpt:
        saved //= 2  # a rough halving: checkpointing keeps only block inputs
    last = linears[-1].out_features if linears else 0
    acc.layer_saved = [saved]
    acc.layer_checkpoint = [saved]
    acc.layer_grads = [0]
    acc.layer_bump = [0]
    acc.layer_first_grad = [0]
    acc.layer_weight_copies = [0]
    acc.logits_bytes = t * last * _FP32
    acc.head_saved_bytes = acc.logits_bytes
    acc.loss_grad_bytes = 2 * acc.logits_bytes
