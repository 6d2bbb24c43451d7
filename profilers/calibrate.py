"""A short probe of one CUDA GPU's device-level overheads, for calibrating predictions.

Measures, on this GPU + driver + torch:

* **context** — device memory this process holds beyond PyTorch's caching allocator once the
  kernels a training step uses are loaded: NVML's figure for this process (or the device's
  used-memory growth since before CUDA was initialised, where the driver gives no per-process
  figure) minus ``torch.cuda.memory_reserved()``, after a forward and backward matmul;
* **workspaces** — what the cuBLAS workspaces of that forward (main thread) and backward
  (autograd's device thread) hold in the allocator: the reserved bytes that
  ``torch._C._cuda_clearCublasWorkspaces()`` gives back after everything else is freed;
* **allocator overhead** — ``max_memory_reserved / max_memory_allocated − 1`` over a fixed
  allocation pattern shaped like a transformer step (activations kept, then freed in reverse,
  temporaries between).

Nothing here runs without CUDA: :func:`probe_cuda_device` raises
:class:`~profilers.trial.UnsupportedConfiguration` with the reason. Written against torch 2.13's
``torch.cuda`` API; not yet run on a GPU in this project.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import torch

from profilers import nvml
from profilers.trial import UnsupportedConfiguration

__all__ = ["DeviceProbe", "probe_cuda_device"]

log = logging.getLogger(__name__)

_MIB = 2**20


@dataclass(frozen=True)
class DeviceProbe:
    """What the probe measured (bytes unless named otherwise)."""

    device_name: str
    context_bytes: int
    workspace_bytes: int
    allocator_overhead_fraction: float
    driver_version: str
    cuda_version: str
    torch_version: str
    cuda_module_loading: str
    alloc_conf: str
    notes: tuple[str, ...]


def _driver_version() -> str:
    import pynvml

    version = nvml.call(pynvml.nvmlSystemGetDriverVersion)
    return version.decode() if isinstance(version, bytes) else str(version or "")


def _matmul_step(device: torch.device) -> None:
    """A forward matmul on this thread and its backward on autograd's device thread."""
    w = torch.randn(1024, 1024, device=device, requires_grad=True)
    x = torch.randn(1024, 1024, device=device)
    (x @ w).float().sum().backward()
    torch.cuda.synchronize(device)


def _allocator_pattern(device: torch.device) -> float:
    """Reserved over allocated at the peak of a transformer-shaped allocation pattern."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    kept = []
    for layer in range(12):
        for mib in (8, 8, 32, 8, 2):  # q/k/v/o-like activations and an MLP-sized one
            kept.append(torch.empty(mib * _MIB + 4096 * layer, dtype=torch.uint8, device=device))
        scratch = torch.empty(24 * _MIB, dtype=torch.uint8, device=device)  # a temporary
        del scratch
    while kept:  # the backward: activations freed in reverse, a temporary now and then
        kept.pop()
        if len(kept) % 7 == 0:
            scratch = torch.empty(3 * _MIB, dtype=torch.uint8, device=device)
            del scratch
    torch.cuda.synchronize(device)
    allocated = torch.cuda.max_memory_allocated(device)
    reserved = torch.cuda.max_memory_reserved(device)
    return reserved / allocated - 1.0 if allocated else 0.0


def probe_cuda_device(index: int = 0) -> DeviceProbe:
    """Measure the context, workspaces and allocator overhead of CUDA device ``index``."""
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = "this torch build has no CUDA" if built is None else "no CUDA device is visible"
        raise UnsupportedConfiguration(f"calibration needs a CUDA GPU: {why} (torch {torch.__version__})")
    notes: list[str] = []
    reader = nvml.DeviceReader(index) if nvml.status().available else None
    used_before = reader.device_used_bytes() if reader is not None else None
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    torch.empty(1, device=device)  # creates the context

    _matmul_step(device)
    worker = threading.Thread(target=_matmul_step, args=(device,))  # a second thread's handle
    worker.start()
    worker.join()
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    with_workspaces = torch.cuda.memory_reserved(device)
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()
        torch.cuda.empty_cache()
    else:
        notes.append("this torch cannot clear cuBLAS workspaces: workspaces not separated")
    reserved = torch.cuda.memory_reserved(device)
    workspace = max(0, with_workspaces - reserved)

    process = reader.process_used_bytes() if reader is not None else None
    if process is None and reader is not None and used_before is not None:
        now = reader.device_used_bytes()
        process = None if now is None else now - used_before
        notes.append("context from the device's used-memory growth (no per-process figure)")
    if process is None:
        free, total = torch.cuda.mem_get_info(device)
        notes.append("NVML unavailable: context not measured, only the allocator figures")
        context = 0
        log.warning("calibration without NVML: %d of %d bytes free, context not measured", free, total)
    else:
        context = max(0, process - reserved)

    overhead = _allocator_pattern(device)
    return DeviceProbe(
        device_name=torch.cuda.get_device_name(device),
        context_bytes=context,
        workspace_bytes=workspace,
        allocator_overhead_fraction=round(overhead, 6),
        driver_version=_driver_version() if reader is not None else "",
        cuda_version=str(torch.version.cuda or ""),
        torch_version=torch.__version__,
        cuda_module_loading=os.environ.get("CUDA_MODULE_LOADING", ""),
        alloc_conf=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
        notes=tuple(notes),
    )
