"""Python kernels over torch's own, in place while anyone is inside and gone after.

Two replay features register Python kernels on existing dispatch keys of ATen ops: CUDA's
autocast policy on the fake CPU device (:mod:`profilers.simulate.autocast`) and an older torch's
saved tensors (:mod:`profilers.autograd_saves`). Each may be entered from nested code and from
several threads; :class:`KernelOverrides` keeps one registration while any user is inside and
destroys it (torch's own kernels come back) when the outermost leaves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import torch

__all__ = ["KernelOverrides"]


class KernelOverrides:
    """One ``torch.library.Library`` of overriding kernels, made by ``register`` on first entry
    and destroyed on the last exit."""

    def __init__(self, register: Callable[[], torch.library.Library]) -> None:
        self._register = register
        self._lock = threading.Lock()
        self._depth = 0
        self._library: torch.library.Library | None = None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._library = self._register()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._library is not None:
                    self._library._destroy()
                    self._library = None
