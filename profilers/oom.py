"""The one place that decides whether an exception means "out of memory"."""

from __future__ import annotations

import torch

__all__ = ["is_oom"]

_OOM_MESSAGES = (
    "out of memory",  # CUDA caching allocator, HIP
    "can't allocate memory",  # CPU allocator (c10::alloc_cpu)
    "cannot allocate memory",  # ENOMEM from the OS
    "defaultcpuallocator: not enough memory",
    "not enough memory",
)


def is_oom(exc: BaseException) -> bool:
    """True when ``exc`` is an out-of-memory on any device (CUDA error type or allocator message)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(m in text for m in _OOM_MESSAGES)
    return False
