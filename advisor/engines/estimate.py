"""Estimate mode: the peak of a training step by closed-form accounting, in a fraction of a second.

The third way to a number (after measuring and simulating): no step is run, real or fake. The
model is built on the ``meta`` device only to read its parameter inventory (shapes, dtypes,
tied weights, which ``nn.Linear`` a LoRA target names); everything else is arithmetic:

* **parameters** by dtype (fp32, bf16 under ``bf16-weights``, 4-/8-bit block linears under
  ``qlora``), trainable or frozen: LoRA adds ``r × (in + out)`` per targeted linear and freezes
  the base, ``frozen-emb`` the token embedding (and a weight tied to it), ``freeze-layers(k)``
  the first k blocks;
* **gradients**: the trainable bytes;
* **optimizer state**: AdamW 2 moments per trainable element + a 4-byte step per tensor, SGD
  nothing (a momentum buffer with ``momentum > 0``), Adafactor (torch) the row and column
  factors ``(rows + cols)`` per matrix (a full buffer for vectors), 8-bit AdamW 2 bytes per
  element plus one fp32 scale per 256-element block (tensors under 4096 elements stay fp32);
* **activations** of Hugging Face transformer decoders and encoders, per layer, as the tensors
  autograd saves for backward: each norm's input (and its normalized output when the norm weight
  trains), each trained linear's input, the attention's q, k, v and output (plus
  ``batch × heads × seq²`` scores, softmax output and dropout mask, where attention is
  materialized: eager, or SDPA with dropout on a CPU), the MLP's activation inputs (gated MLPs
  keep gate, activation and up outputs), dropout masks (the input's dtype on a CPU, one byte on
  CUDA); then the loss: the fp32 log-softmax of ``batch × seq × vocab`` logits plus two
  gradients of the same size when backward starts. Gradient checkpointing keeps one hidden
  state per layer and recomputes one layer at a time; autocast keeps bf16 copies of linear
  inputs and weights; LoRA's frozen linears keep nothing but their adapters' inputs and masks.

The peak is the largest of the step's candidate moments: backward starting (everything saved +
the loss gradients); backward past the output layer; each layer's backward, last to first (the
layers above holding their gradients, the layer itself recomputed under checkpointing, its MLP's
first gradients live); backward ending (all gradients, tied embeddings summing theirs); and the
optimizer step (AdamW's temporaries: ``sqrt`` and division of one tensor at a time on a CPU, of
every trainable tensor at once with CUDA's ``foreach`` implementation).

**Calibration.** The per-op counts were read off, and checked against, the exact measured CPU
peaks (:mod:`profilers.tracker`) of the built-in ``tiny-llama``, ``tiny-gpt2`` and ``tiny-bert``
under baseline, LoRA, gradient checkpointing, SGD, Adafactor, bf16 autocast and pure bf16 at
several batch and sequence sizes, then against simulated CPU peaks of about 700 variants of
those three architectures (1–3 layers, widths 128–256, GQA, vocabularies 1k–3k) under those and
the other cuts: median error under 0.1 %, largest 8.5 % (LoRA with checkpointing on one-layer
models, where the peak falls inside a layer's backward). ``benchmarks/accuracy.py`` reports how
close it comes to measured peaks. Other architectures reuse the nearest family's counts (a note
says so), and a plain ``nn.Module`` gets exact parameter, gradient and optimizer figures but
only a rough activation term (inputs and outputs of its linear layers).

It counts live tensor bytes, as the tracker does: no allocator rounding, CUDA context or
kernel workspaces (the overhead model adds those for a GPU). Figures carry provenance
``estimated``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advisor.core.errors import InvalidInputError
from advisor.models import HFModelSource, ModelSource, resolve_model
from advisor.plans import Cut, Plan
from profilers.records import MemoryBreakdown, ParamCounts, Provenance, TensorPeak

__all__ = ["TARGETS", "EstimatedPeak", "estimate_peak"]

TARGETS = ("cpu", "cuda")

_FP32 = 4
_INT64 = 8
_ADAMW8BIT_MIN_ELEMENTS = 4096  # bitsandbytes' min_8bit_size: smaller tensors keep fp32 state
_ADAMW8BIT_BLOCK = 256  # elements per fp32 absmax scale in blockwise 8-bit state
_NF4_BLOCK = 64  # elements per fp32 absmax in bitsandbytes' 4-bit weights


@dataclass(frozen=True)
class EstimatedPeak:
    """The closed-form estimate of one training step's peak of live tensor bytes.

    ``breakdown`` splits the peak by role, as :class:`~profilers.records.MemoryBreakdown` does
    for measured and simulated peaks; ``peak_phase`` is the step moment that decides it
    (``"backward"`` or ``"optimizer"``). ``notes`` name what the estimate had to assume.
    """

    model: str
    plan: str
    batch_size: int  # the batch of one optimizer step (micro-batch × accumulation_steps)
    seq_len: int
    target: str  # "cpu" or "cuda": what the step is assumed to run on
    peak_bytes: int
    breakdown: MemoryBreakdown
    peak_phase: str
    params: ParamCounts
    resident_bytes: int  # parameters, buffers, optimizer state and batch between steps
    accumulation_steps: int = 1
    notes: tuple[str, ...] = ()
    provenance: Provenance = Provenance.ESTIMATED

    def tensor_peak(self) -> TensorPeak:
        """The estimate as a :class:`~profilers.records.TensorPeak` (provenance ``estimated``)."""
        return TensorPeak(
            peak_bytes=self.peak_bytes,
            breakdown=self.breakdown,
            resident_before_step_bytes=self.resident_bytes,
            peak_phase=self.peak_phase,
            provenance=Provenance.ESTIMATED,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (enums as their values)."""
        b = self.breakdown
        return {
            "model": self.model,
            "plan": self.plan,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "target": self.target,
            "peak_bytes": self.peak_bytes,
            "peak_phase": self.peak_phase,
            "resident_bytes": self.resident_bytes,
            "accumulation_steps": self.accumulation_steps,
            "breakdown": {
                "parameter_bytes": b.parameter_bytes,
                "buffer_bytes": b.buffer_bytes,
                "gradient_bytes": b.gradient_bytes,
                "optimizer_state_bytes": b.optimizer_state_bytes,
                "input_bytes": b.input_bytes,
                "activation_bytes": b.activation_bytes,
                "total_bytes": b.total_bytes,
            },
            "params": {
                "total": self.params.total,
                "trainable": self.params.trainable,
                "parameter_bytes": self.params.parameter_bytes,
                "trainable_bytes": self.params.trainable_bytes,
                "trainable_percent": self.params.trainable_percent,
                "provenance": self.params.provenance.value,
            },
            "notes": list(self.notes),
            "provenance": self.provenance.value,
        }


# -- the plan, as the estimate sees it ------------------------------------------------------------


@dataclass
class _PlanView:
    """What the plan's cuts change, read from their names and parameters."""

    lora: bool = False
    lora_r: int = 8
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ()
    qlora_bits: int = 0  # 0: no quantized base
    frozen_embedding: bool = False
    frozen_layers: int = 0
    grad_ckpt: bool = False
    precision: str = "fp32"  # "fp32", "autocast" (bf16/fp16 autocast) or "bf16" (pure bf16)
    optimizer: str = "adamw"
    momentum: float = 0.0
    accumulation: int = 1
    attention: str | None = None  # "eager" / "sdpa" when a cut chooses it
    offload: bool = False
    notes: list[str] = field(default_factory=list)


_NO_MEMORY_EFFECT = {"scratch", "sdpa-attn"}


def _plan_view(plan: Plan) -> _PlanView:
    view = _PlanView()
    for cut in plan.cuts:
        name = cut.name

        def get(key: str, default: Any, cut: Cut = cut) -> Any:
            return getattr(cut, key, default)

        if name in ("lora", "qlora"):
            view.lora = True
            view.lora_r = int(get("r", 8))
            view.lora_dropout = float(get("dropout", 0.05))
            view.lora_targets = tuple(get("targets", ()))
            if name == "qlora":
                view.qlora_bits = int(get("bits", 4))
        elif name == "frozen-emb":
            view.frozen_embedding = True
        elif name == "freeze-layers":
            view.frozen_layers = int(get("k", 1))
        elif name == "grad-ckpt":
            view.grad_ckpt = True
        elif name in ("bf16", "fp16"):
            view.precision = "autocast"
        elif name == "bf16-weights":
            view.precision = "bf16"
        elif name == "sgd":
            view.optimizer = "sgd"
            view.momentum = float(get("momentum", 0.0))
        elif name in ("adafactor", "adamw8bit"):
            view.optimizer = name
        elif name == "accum":
            view.accumulation = int(get("steps", 4))
        elif name == "eager-attn":
            view.attention = "eager"
        elif name == "offload":
            view.offload = True
        elif name == "compile":
            view.notes.append("compile: counted as the eager step (torch.compile usually needs less)")
        elif name not in _NO_MEMORY_EFFECT:
            view.notes.append(f"{name}: not modelled by the estimate; counted as the baseline")
    return view


# -- the model's inventory, read on the meta device --------------------------------------------------


@dataclass
class _Linear:
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


def _linears(model: nn.Module, block_path: str) -> list[_Linear]:
    out: list[_Linear] = []
    for name, module in model.named_modules():
        dims = _linear_dims(module)
        if dims is None:
            continue
        weight = module.weight
        bias = getattr(module, "bias", None)
        out.append(
            _Linear(name, dims[0], dims[1], weight, bias if isinstance(bias, nn.Parameter) else None,
                    _block_index(name, block_path))
        )  # fmt: skip
    return out


# PEFT's own default LoRA targets for common architectures (peft.utils.constants), kept here so
# that an estimate does not import peft (seconds, with bitsandbytes); others ask PEFT
_LORA_DEFAULTS: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "v_proj"), "mistral": ("q_proj", "v_proj"), "mixtral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"), "qwen3": ("q_proj", "v_proj"), "gemma": ("q_proj", "v_proj"),
    "gemma2": ("q_proj", "v_proj"), "gpt2": ("c_attn",),
    "bert": ("query", "value"), "roberta": ("query", "value"),
}  # fmt: skip


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


# -- the architecture's traits ----------------------------------------------------------------------

_GATED_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3",
    "olmo", "olmo2", "starcoder2_gated", "granite", "cohere",
}  # fmt: skip
_ENCODER_TYPES = {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2"}
_CALIBRATED_TYPES = {"llama", "gpt2", "bert"}
_COMPOSITE_GELU = {"gelu_new", "gelu_fast", "gelu_accurate"}  # written as Python ops: 4 saves
_QKV_NAMES = {"q_proj", "k_proj", "v_proj", "query", "key", "value", "c_attn", "qkv_proj",
              "query_key_value", "Wqkv", "qkv", "in_proj"}  # fmt: skip


def _first(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


@dataclass(frozen=True)
class _Arch:
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


def _arch_of(config: Any, attn_implementation: str) -> _Arch:
    model_type = str(getattr(config, "model_type", "") or "")
    hidden = int(_first(config, "hidden_size", "n_embd", "d_model"))
    heads = int(_first(config, "num_attention_heads", "n_head", "num_heads"))
    kv = int(_first(config, "num_key_value_heads", "multi_query_group_num", default=heads))
    head_dim = int(_first(config, "head_dim", default=hidden // heads))
    inter = _first(config, "intermediate_size", "n_inner", "ffn_dim", "d_ff")
    act = str(_first(config, "hidden_act", "activation_function", default="gelu"))
    encoder = model_type in _ENCODER_TYPES
    gated = model_type in _GATED_TYPES or (
        model_type not in _ENCODER_TYPES
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
    return _Arch(
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


# -- the accounting ------------------------------------------------------------------------------


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
    lora_sites: list[_Linear]  # targeted linears in this layer


def _norm_saved(arch: _Arch, s: _Sizes, grads_in: bool, weight_trains: bool) -> int:
    """Bytes per token a norm over the hidden size keeps."""
    h = arch.hidden
    if arch.norm == "rms":  # transformers' RMSNorm: fp32 input for the variance, normalized × weight
        return h * ((s.norm_in if grads_in else 0) + (s.norm_out if weight_trains else 0))
    size = s.norm_in if s.param == _FP32 else s.param
    return h * size if (grads_in or weight_trains) else 0


def _attention_path(arch: _Arch, s: _Sizes, view: _PlanView) -> str:
    impl = view.attention or arch.attn_implementation
    if impl == "eager":
        return "eager"
    if not s.cuda and arch.attn_dropout > 0.0:
        return "math"  # SDPA with dropout on a CPU runs its math path: scores materialized
    return "fused"


def _layer_bytes(arch: _Arch, s: _Sizes, view: _PlanView, f: _LayerFlags, batch: int, seq: int) -> int:
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
        first = site.name.rsplit(".", 1)[-1] in _QKV_NAMES
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
        scores = batch * arch.heads * seq * seq * (probs + dropped)
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
class _Accounting:
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


def _optimizer_state(view: _PlanView, shapes: Iterable[tuple[tuple[int, ...], int]]) -> int:
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


def _optimizer_temp(view: _PlanView, target: str, trainable: list[int]) -> int:
    """Temporaries of one optimizer step over the trainable tensors' bytes, in step order.

    With CUDA's ``foreach`` implementation one temporary per tensor exists at once (AdamW's
    ``sqrt`` of every second moment). On a CPU tensors go one at a time: AdamW's ``sqrt`` and
    the division by the bias correction, while the previous tensor's ``denom`` is still bound.
    """
    if not trainable or view.optimizer in ("sgd", "adamw8bit"):
        return 0
    if target == "cuda":
        return sum(trainable)
    if view.optimizer != "adamw":
        return max(trainable)
    previous = [0, *trainable[:-1]]
    return max(2 * size + prev for size, prev in zip(trainable, previous, strict=True))


def _quantized_bytes(numel: int, bits: int) -> int:
    if bits == 4:
        return numel // 2 + _FP32 * math.ceil(numel / _NF4_BLOCK)
    return numel  # int8, plus a small per-row scale counted with the bias


# -- the public entry point -----------------------------------------------------------------------


def _source_of(model: Any) -> tuple[ModelSource | None, nn.Module | None]:
    """A model source (or a module to inspect directly) from what the caller gave."""
    if isinstance(model, nn.Module):
        return None, model
    if isinstance(model, Mapping):
        from transformers import AutoConfig

        fields = dict(model)
        model_type = fields.pop("model_type", None)
        if not model_type:
            raise InvalidInputError(
                "a config dict without model_type", "give a transformers config.json's fields"
            )
        config = AutoConfig.for_model(model_type, **fields)
        return HFModelSource(str(model_type), config), None
    if hasattr(model, "model_type") and hasattr(model, "to_dict") and not isinstance(model, ModelSource):
        return HFModelSource(str(model.model_type), model), None  # a transformers config
    return resolve_model(model), None


def _resolve_plan(plan: Plan | str | None) -> Plan:
    if plan is None:
        return Plan()
    if isinstance(plan, str):
        from advisor.plans.cuts import parse_plan

        return parse_plan(plan)
    return plan


def estimate_peak(
    model: Any,
    plan: Plan | str | None = None,
    batch_size: int = 4,
    seq_len: int = 128,
    *,
    target: str = "cuda",
) -> EstimatedPeak:
    """Estimate the peak of live tensor bytes of one training step (see the module doc).

    ``model`` is anything :func:`advisor.resolve_model` takes, a transformers config (object or
    dict), or an ``nn.Module``; ``plan`` a :class:`~advisor.plans.Plan` or its text
    (``"lora+grad-ckpt"``); ``batch_size`` the effective batch (``accum`` cuts divide it);
    ``target`` ``"cuda"`` or ``"cpu"`` (dropout masks, attention kernels and optimizer
    implementation differ). Bad input raises :class:`advisor.AdvisorError`.
    """
    if target not in TARGETS:
        raise InvalidInputError(f"unknown estimate target '{target}'", "use cuda or cpu")
    if batch_size < 1 or seq_len < 1:
        raise InvalidInputError(
            f"batch and sequence length must be ≥ 1, got {batch_size} × {seq_len}",
            "pass --batch 1 or more and --seq 1 or more",
        )
    plan = _resolve_plan(plan)
    source, module = _source_of(model)
    view = _plan_view(plan)
    notes = list(view.notes)
    if view.accumulation > 1 and batch_size % view.accumulation:
        raise InvalidInputError(
            f"accum(steps={view.accumulation}) needs a batch divisible by {view.accumulation}, "
            f"got {batch_size}",
            "pass a batch that is a multiple of the accumulation steps",
        )
    micro = batch_size // view.accumulation if view.accumulation > 1 else batch_size
    if source is not None:
        source.check_sizes(batch_size, seq_len)
        name = source.name
        meta = source.build("meta", pretrained=False, attn_implementation=view.attention)
    else:
        assert module is not None
        name = type(module).__name__
        meta = module
    config = getattr(meta, "config", None) if source is None or isinstance(source, HFModelSource) else None
    if view.offload and target != "cuda":
        notes.append("offload: runs on CUDA only; counted without it")
        view.offload = False
    acc, params = _account(meta, config, view, micro, seq_len, target, notes)
    return _peak(name, plan, batch_size, seq_len, target, view, acc, params, notes)


def _account(
    meta: nn.Module,
    config: Any,
    view: _PlanView,
    batch: int,
    seq: int,
    target: str,
    notes: list[str],
) -> tuple[_Accounting, ParamCounts]:
    from advisor.plans.cuts import default_lora_targets, find_repeated_blocks

    block_path, blocks = find_repeated_blocks(meta)
    n_blocks = len(blocks)
    linears = _linears(meta, block_path)
    emb = _input_embedding(meta)
    out_emb = _output_weight(meta)
    tied = emb is not None and out_emb is not None and out_emb is emb
    causal = config is not None and str(getattr(config, "model_type", "")) not in _ENCODER_TYPES
    s = _sizes(view.precision, target, causal)

    # LoRA targets: the linears PEFT would wrap
    lora_sites: list[_Linear] = []
    if view.lora:
        model_type = str(getattr(config, "model_type", "") or "")
        targets = view.lora_targets or _LORA_DEFAULTS.get(model_type) or tuple(default_lora_targets(meta))
        lora_sites = [lin for lin in linears if any(_matches(lin.name, t) for t in targets)]
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

    acc = _Accounting()
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

    arch = _arch_of(config, str(getattr(config, "_attn_implementation", None) or "sdpa"))
    if arch.model_type not in _CALIBRATED_TYPES:
        family = "llama" if arch.gated else ("bert" if arch.encoder else "gpt2")
        notes.append(f"{arch.model_type}: activations counted as in the {family} family it resembles")
    acc.input_bytes = 3 * t * _INT64  # input_ids, attention_mask, labels
    emb_trains = emb is not None and id(emb) not in frozen_ids

    # per layer
    lora_by_block: dict[int, list[_Linear]] = {}
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
    acc: _Accounting,
    meta: nn.Module,
    linears: list[_Linear],
    frozen_ids: set[int],
    lora_sites: list[_Linear],
    view: _PlanView,
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


def _input_embedding(model: nn.Module) -> torch.Tensor | None:
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


def _output_weight(model: nn.Module) -> torch.Tensor | None:
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


def _peak(
    name: str,
    plan: Plan,
    batch: int,
    seq: int,
    target: str,
    view: _PlanView,
    acc: _Accounting,
    params: ParamCounts,
    notes: list[str],
) -> EstimatedPeak:
    resident = acc.parameter_bytes + acc.buffer_bytes + acc.optimizer_bytes + acc.input_bytes
    # gradients already present while a micro-batch runs forward/backward (accumulation)
    early = acc.gradient_bytes if view.accumulation > 1 else 0
    candidates: list[tuple[int, str, int, int]] = []  # (total, phase, gradients, activations)

    def add(phase: str, grads: int, acts: int) -> None:
        grads = max(grads, early)
        candidates.append((resident + grads + acts, phase, grads, acts))

    n = len(acc.layer_saved)
    kept = acc.layer_checkpoint if acc.checkpointed else acc.layer_saved
    copies = [0] * n if acc.checkpointed else acc.layer_weight_copies
    outer = acc.other_saved_bytes
    body = sum(kept) + sum(copies)
    # backward starts: everything saved, plus the loss's gradients
    add("backward", 0, outer + body + acc.head_saved_bytes + acc.loss_grad_bytes)
    # past the output layer: the log-softmax freed, the logits' gradient and the output layer's
    # weight gradient live
    add("backward", acc.head_grad_bytes, outer + body + acc.head_saved_bytes + acc.hidden_grad_bytes)
    # through the layers, last to first: layer j's backward (recomputed first when checkpointed)
    # while the layers above it hold their gradients
    grads_above = acc.head_grad_bytes
    below = body
    for j in reversed(range(n)):
        below -= kept[j] + copies[j]
        live = outer + below + kept[j] + copies[j] + 2 * acc.hidden_grad_bytes + acc.layer_bump[j]
        if acc.checkpointed:
            live += acc.layer_saved[j] + acc.layer_weight_copies[j]
        add("backward", grads_above + acc.layer_first_grad[j], live)
        grads_above += acc.layer_grads[j]
    # backward ends (tied embeddings sum two gradients), then the optimizer steps
    add("backward", acc.gradient_bytes, acc.backward_tail_bytes)
    add("optimizer", acc.gradient_bytes, acc.optimizer_temp_bytes)
    total, phase, grads, acts = max(candidates, key=lambda c: c[0])
    breakdown = MemoryBreakdown(
        parameter_bytes=acc.parameter_bytes,
        buffer_bytes=acc.buffer_bytes,
        gradient_bytes=grads,
        optimizer_state_bytes=acc.optimizer_bytes,
        input_bytes=acc.input_bytes,
        activation_bytes=acts,
    )
    return EstimatedPeak(
        model=name,
        plan=plan.name,
        batch_size=batch,
        seq_len=seq,
        target=target,
        peak_bytes=total,
        breakdown=breakdown,
        peak_phase=phase,
        params=params,
        resident_bytes=resident,
        accumulation_steps=view.accumulation,
        notes=tuple(notes),
    )
