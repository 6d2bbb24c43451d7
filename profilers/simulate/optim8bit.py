"""bitsandbytes' 8-bit AdamW on fake tensors: the same state storages, without its kernels.

The real ``bitsandbytes.optim.AdamW8bit`` updates its state in native kernels on raw data
pointers, so the replay runs this stand-in instead. It allocates exactly what bitsandbytes
0.50.2 allocates (``bitsandbytes/optim/optimizer.py``, ``Optimizer2State.init_state``):

* a parameter with at least ``min_8bit_size`` (4096) elements gets ``state1`` and ``state2``
  as ``uint8`` tensors shaped like the parameter, ``absmax1`` and ``absmax2`` as ``float32``
  tensors of one value per block of 256 elements, and the two quantization maps ``qmap1``
  (``create_dynamic_map(signed=True)``) and ``qmap2`` (``signed=False``), 256 ``float32`` each,
  created once per optimizer and shared by every parameter;
* a smaller parameter keeps 32-bit state: ``state1`` and ``state2`` in ``float32``;
* ``step`` is a Python int, not a tensor.

The step itself (``optimizer_update_8bit_blockwise``, ``optimizer_update_32bit``) updates in
place and returns nothing, so it adds no tensor to the step; ``p.data.contiguous()`` and
``p.grad.contiguous()`` copy nothing for the contiguous tensors a training step has.

Paged variants (``PagedAdamW8bit``) put ``state1``/``state2`` of parameters with at least
100 000 elements in CUDA unified memory (``get_state_buffer``: ``F.get_paged``, host-backed,
not from the caching allocator, marked ``is_paged``); on CPU they fall back to ordinary
tensors. Replaying a CUDA target (:func:`profilers.simulate.quant.quantized_target`), the
stand-in marks those tensors ``is_paged`` too, and the replay's tracker counts them as host
memory, apart from the device peak (:attr:`AdamW8bitStandIn.paged_bytes` sums them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from profilers.simulate.quant import current_target

__all__ = [
    "BNB_VERSION_READ",
    "MIN_8BIT_SIZE",
    "PAGED_MIN_NUMEL",
    "QMAP_ENTRIES",
    "STATE_BLOCKSIZE",
    "AdamW8bitStandIn",
    "adamw8bit_state_bytes",
]

BNB_VERSION_READ = "0.50.2"  # the bitsandbytes whose optim/optimizer.py this mirrors
STATE_BLOCKSIZE = 256  # Optimizer2State.init_state: blocksize = 256 (one absmax per block)
MIN_8BIT_SIZE = 4096  # AdamW8bit(min_8bit_size=4096): smaller tensors keep 32-bit state
QMAP_ENTRIES = 256  # create_dynamic_map(): 256 float32 entries
PAGED_MIN_NUMEL = 100_000  # get_state_buffer: paged only for p.numel() >= 1e5


def _blocks(numel: int) -> int:
    return numel // STATE_BLOCKSIZE + bool(numel % STATE_BLOCKSIZE)


def adamw8bit_state_bytes(numels: Iterable[int], min_8bit_size: int = MIN_8BIT_SIZE) -> int:
    """Bytes of 8-bit AdamW state for parameters of these sizes (the shared maps included once).

    Args:
        numels: element counts of the trainable parameters.
        min_8bit_size: below this many elements a parameter keeps 32-bit state.

    Returns:
        The bytes ``AdamW8bit`` holds after its first step.
    """
    total = 0
    any_8bit = False
    for n in numels:
        if n < min_8bit_size:
            total += 2 * 4 * n
        else:
            any_8bit = True
            total += 2 * n + 2 * 4 * _blocks(n)
    return total + (2 * 4 * QMAP_ENTRIES if any_8bit else 0)


class AdamW8bitStandIn(torch.optim.Optimizer):
    """``bitsandbytes.optim.AdamW8bit`` for the replay: its state layout, no arithmetic.

    The defaults are bitsandbytes' (``lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=1e-2, min_8bit_size=4096``).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        min_8bit_size: int = MIN_8BIT_SIZE,
        is_paged: bool = False,
        **_ignored: Any,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.min_8bit_size = int(min_8bit_size)
        self.is_paged = bool(is_paged)
        self.paged_bytes = 0  # state bytes bitsandbytes would put in CUDA unified memory
        self._qmaps: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _qmaps_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Optimizer8bit.fill_qmap: name2qmap["dynamic"] / ["udynamic"], moved to the device once
        maps = self._qmaps.get(device)
        if maps is None:
            maps = (
                torch.zeros(QMAP_ENTRIES, dtype=torch.float32, device=device),
                torch.zeros(QMAP_ENTRIES, dtype=torch.float32, device=device),
            )
            self._qmaps[device] = maps
        return maps

    def _state_buffer(self, p: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # get_state_buffer: paged (unified memory) on CUDA for p.numel() >= 1e5, else zeros_like
        buffer = torch.zeros_like(p, dtype=dtype)
        if self.is_paged and p.numel() >= PAGED_MIN_NUMEL and current_target() == "cuda":
            buffer.is_paged = True  # type: ignore[attr-defined]
            self.paged_bytes += buffer.numel() * buffer.element_size()
        return buffer

    def _init_state(self, p: torch.Tensor) -> None:
        state = self.state[p]
        state["step"] = 0
        n = p.numel()
        if n < self.min_8bit_size:
            state["state1"] = self._state_buffer(p, torch.float32)
            state["state2"] = self._state_buffer(p, torch.float32)
            return
        qmap1, qmap2 = self._qmaps_on(p.device)
        state["state1"] = self._state_buffer(p, torch.uint8)
        state["qmap1"] = qmap1
        state["state2"] = self._state_buffer(p, torch.uint8)
        state["qmap2"] = qmap2
        blocks = _blocks(n)
        state["absmax1"] = torch.zeros((blocks,), dtype=torch.float32, device=p.device)
        state["absmax2"] = torch.zeros((blocks,), dtype=torch.float32, device=p.device)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if len(self.state[p]) == 0:
                    self._init_state(p)
                self.state[p]["step"] += 1  # the update kernels work in place: no new tensor
        return loss
