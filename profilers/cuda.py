"""The CUDA backend: caching-allocator statistics and synchronised timing."""

from __future__ import annotations

import torch

from profilers.records import BackendStatus, CudaMemory

__all__ = ["read_peaks", "reset_peaks", "status", "synchronize"]


def status() -> BackendStatus:
    """Whether CUDA can be used here, and why not."""
    if not torch.backends.cuda.is_built():
        return BackendStatus("cuda", False, f"this torch build ({torch.__version__}) has no CUDA")
    if not torch.cuda.is_available():
        return BackendStatus("cuda", False, "torch has CUDA but sees no GPU (driver or device missing)")
    return BackendStatus("cuda", True, None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peaks(device: torch.device) -> None:
    """Free cached blocks and start the allocator's peak counters afresh."""
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)


def read_peaks(device: torch.device) -> CudaMemory:
    """The allocator's peaks since :func:`reset_peaks`."""
    torch.cuda.synchronize(device)
    stats = torch.cuda.memory_stats(device)
    props = torch.cuda.get_device_properties(device)
    return CudaMemory(
        device_name=props.name,
        max_allocated_bytes=int(torch.cuda.max_memory_allocated(device)),
        max_reserved_bytes=int(torch.cuda.max_memory_reserved(device)),
        max_active_bytes=int(stats.get("active_bytes.all.peak", 0)),
        total_memory_bytes=int(props.total_memory),
    )
