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

The plan reaches the accounting only as an :class:`~advisor.plans.view.EstimateView` that each
cut fills in itself (:meth:`~advisor.plans.Cut.shape_estimate`); a cut that does not is counted
as the baseline, with a note. The package: :mod:`.arch` reads the model's inventory and its
architecture's traits, :mod:`.accounting` counts the bytes, :mod:`.peak` picks the step moment
that decides the peak.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from advisor.core.deprecation import legacy_sizes
from advisor.core.errors import InvalidInputError
from advisor.engines.estimate.accounting import account
from advisor.engines.estimate.peak import EstimatedPeak, peak_of
from advisor.models import HFModelSource, ModelSource, resolve_model
from advisor.plans import Plan, parse_plan
from advisor.plans.view import EstimateView

__all__ = ["TARGETS", "EstimatedPeak", "estimate_peak", "plan_view"]

TARGETS = ("cpu", "cuda")


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
        return parse_plan(plan)
    return plan


def plan_view(plan: Plan) -> EstimateView:
    """What ``plan`` changes, as the estimate sees it: each cut fills in its own part."""
    view = EstimateView()
    for cut in plan.cuts:
        cut.shape_estimate(view)
    return view


def estimate_peak(
    model: Any,
    plan: Plan | str | None = None,
    *legacy_sizes_given: int,
    batch_size: int = 4,
    seq_len: int = 128,
    target: str = "cuda",
) -> EstimatedPeak:
    """Estimate the peak of live tensor bytes of one training step (see the module doc).

    ``model`` is anything :func:`advisor.resolve_model` takes, a transformers config (object or
    dict), or an ``nn.Module``; ``plan`` a :class:`~advisor.plans.Plan` or its text
    (``"lora+grad-ckpt"``); ``batch_size`` the effective batch (``accum`` cuts divide it);
    ``target`` ``"cuda"`` or ``"cpu"`` (dropout masks, attention kernels and optimizer
    implementation differ). Bad input raises :class:`advisor.AdvisorError`.

    Sizes given positionally (``estimate_peak(model, plan, 2, 512)``), the old spelling, still
    work with a ``DeprecationWarning``.
    """
    batch_size, seq_len = legacy_sizes("estimate_peak", legacy_sizes_given, batch_size, seq_len)
    if target not in TARGETS:
        raise InvalidInputError(f"unknown estimate target '{target}'", "use cuda or cpu")
    if batch_size < 1 or seq_len < 1:
        raise InvalidInputError(
            f"batch and sequence length must be ≥ 1, got {batch_size} × {seq_len}",
            "pass batch_size=1 or more and seq_len=1 or more",
        )
    plan = _resolve_plan(plan)
    source, module = _source_of(model)
    view = plan_view(plan)
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
    acc, params = account(meta, config, view, micro, seq_len, target, notes)
    return peak_of(name, plan, batch_size, seq_len, target, view, acc, params, notes)
