"""NVML, initialised lazily; every query goes through one wrapper so "no driver" is data."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from profilers.records import BackendStatus

__all__ = ["DeviceReader", "call", "status"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_state: dict[str, Any] = {"initialised": False, "error": None}

NO_DRIVER_HINT = (
    "NVML ships with the NVIDIA display driver; install the driver (nvidia-smi must work) "
    "and the nvidia-ml-py package"
)


def _init() -> str | None:
    """Initialise NVML once; return None on success, else the reason it is unavailable."""
    with _lock:
        if _state["initialised"]:
            return None
        if _state["error"] is not None:
            return str(_state["error"])
        try:
            import pynvml
        except ImportError:
            _state["error"] = f"nvidia-ml-py (pynvml) is not installed; {NO_DRIVER_HINT}"
            return str(_state["error"])
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # pynvml.NVMLError subclasses, OSError from the loader
            _state["error"] = f"NVML not available ({type(exc).__name__}: {exc}); {NO_DRIVER_HINT}"
            return str(_state["error"])
        _state["initialised"] = True
        return None


def call(fn: Callable[..., T], *args: Any) -> T | None:
    """Run one NVML query; any NVML failure becomes ``None`` (logged), never an exception."""
    if _init() is not None:
        return None
    try:
        return fn(*args)
    except Exception as exc:
        log.debug("NVML query %s failed: %s", getattr(fn, "__name__", fn), exc)
        return None


def status() -> BackendStatus:
    """Whether NVML can be used here, and why not."""
    reason = _init()
    if reason is not None:
        return BackendStatus("nvml", False, reason)
    import pynvml

    count = call(pynvml.nvmlDeviceGetCount)
    if not count:
        return BackendStatus("nvml", False, "NVML works but reports no GPU")
    return BackendStatus("nvml", True, None)


class DeviceReader:
    """Reads one GPU's used memory (whole device and this process) through NVML."""

    def __init__(self, index: int) -> None:
        import pynvml

        self._pynvml = pynvml
        self.handle = call(pynvml.nvmlDeviceGetHandleByIndex, index)
        name = call(pynvml.nvmlDeviceGetName, self.handle)
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        info = call(pynvml.nvmlDeviceGetMemoryInfo, self.handle)
        self.total_bytes = int(info.total) if info is not None else 0
        self.pid = os.getpid()

    def device_used_bytes(self) -> int | None:
        info = call(self._pynvml.nvmlDeviceGetMemoryInfo, self.handle)
        return int(info.used) if info is not None else None

    def process_used_bytes(self) -> int | None:
        procs = call(self._pynvml.nvmlDeviceGetComputeRunningProcesses, self.handle)
        if not procs:
            return None
        for proc in procs:
            if proc.pid == self.pid and proc.usedGpuMemory is not None:
                return int(proc.usedGpuMemory)
        return None
