"""Peaks over the whole run, beyond the steady step: loading and saving the weights.

Loading, as transformers 5.25 does it (``modeling_utils.PreTrainedModel.from_pretrained``, read
as installed): without ``dtype``/``torch_dtype`` the dtype is ``"auto"`` — the checkpoint's
``config.dtype``, else its first floating-point weight's dtype — so an fp32 checkpoint is loaded
as fp32 in full, whatever the training later casts it to. The model is instantiated on ``meta``
and each weight is put in place once in that dtype (no second copy is kept). A cast that
follows (``model.to(torch.bfloat16)``) runs ``nn.Module._apply``: children first, then the
module's own parameters and buffers, one tensor at a time, each old tensor freed once the new
one replaces it. So while tensor ``k`` is cast, the ones before it are in the new dtype, it and
those after it in the old one, and its new copy exists beside its old one.

Saving, as transformers 5.25 does it (``PreTrainedModel.save_pretrained``, read as installed):
the state dict is put back into the checkpoint's original layout first
(``core_model_loading.revert_weight_conversion``, the whole state dict at once: for a
mixture-of-experts model the fused ``gate_up_proj`` is split into per-expert ``w1``/``w3``,
new tensors on the weights' device), then each shard's tensors are made ``.contiguous()`` (no
copy when they already are) and handed to safetensors 0.x ``save_file``, which moves each to the
CPU (``_to_ndarray``: host memory, not the device's). So on the device, saving adds only what the
revert and the contiguous copies allocate: nothing for a plain dense model, the reverted expert
weights for an MoE one. A PEFT model saves its adapter weights only (peft 0.22
``get_peft_model_state_dict``: views of the adapter parameters, no revert): nothing either.
:func:`save_extra_bytes` replays the revert on the ``meta`` model with the exact tracker.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["cast_order", "cast_sizes", "load_peak_bytes", "save_extra_bytes"]


def cast_order(model: nn.Module) -> Iterator[torch.Tensor]:
    """The floating-point parameters and buffers in the order ``model.to(dtype)`` casts them
    (``nn.Module._apply``: children first, then own), each tensor once (tied weights)."""
    seen: set[int] = set()

    def walk(module: nn.Module) -> Iterator[torch.Tensor]:
        for child in module.children():
            yield from walk(child)
        for t in [*module._parameters.values(), *module._buffers.values()]:
            if t is not None and t.is_floating_point() and id(t) not in seen:
                seen.add(id(t))
                yield t

    return walk(model)


def cast_sizes(model: nn.Module) -> tuple[list[int], int]:
    """(element counts of the floating-point tensors in cast order, bytes of the other
    parameters and buffers): all :func:`load_peak_bytes` needs of a model."""
    floats = [t.numel() for t in cast_order(model)]
    others = sum(
        t.numel() * t.element_size()
        for t in [*model.parameters(), *model.buffers()]
        if not t.is_floating_point()
    )
    return floats, others


def load_peak_bytes(
    model: nn.Module | tuple[list[int], int], stored: torch.dtype, train: torch.dtype
) -> int:
    """Peak live bytes of loading ``model``'s weights stored in ``stored`` (``from_pretrained``
    without ``dtype``: they stay in it), then casting them to ``train`` if that differs.
    ``model`` may be on ``meta`` (only shapes are read), or its :func:`cast_sizes`.
    Non-floating tensors keep their dtype."""
    floats, others = cast_sizes(model) if isinstance(model, nn.Module) else model
    old_size = torch.empty((), dtype=stored).element_size()
    new_size = torch.empty((), dtype=train).element_size()
    loaded = sum(floats) * old_size + others
    if stored == train:
        return loaded
    peak, live = loaded, loaded
    for n in floats:
        peak = max(peak, live + n * new_size)  # the new copy beside the old one
        live += n * (new_size - old_size)
    return peak


def save_extra_bytes(model: nn.Module) -> int:
    """Bytes ``model.save_pretrained`` allocates on the weights' device beyond the weights: the
    tensors of transformers' revert to the checkpoint layout and the ``.contiguous()`` copies,
    all alive at once (see the module doc). ``model`` may be on ``meta`` (only shapes are read);
    not a transformers model: 0 (its save path is not known)."""
    try:
        from transformers import PreTrainedModel
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:  # pragma: no cover - transformers is a dependency
        return 0
    if not isinstance(model, PreTrainedModel):
        return 0
    from profilers.tracker import Role, TensorMemoryTracker

    device = next(iter(model.parameters())).device.type
    tracker = TensorMemoryTracker(device)
    with tracker:
        tracker.register([*model.parameters(), *model.buffers()], Role.PARAMETER)
        before = tracker.result().peak_bytes
        state = revert_weight_conversion(model, model.state_dict())
        kept = [t.contiguous() for t in state.values()]  # as the shard loop does
        after = tracker.result().peak_bytes
    tracker.close()
    del kept, state
    return after - before
