"""Known values beside fake tensors, so that values read back to Python are the true ones.

Code on the step's path reads values back (``.item()``: transformers' "is there padding?", an
optimizer's step count, a GradScaler's inf check). Under ``FakeTensorMode`` there are no values;
:class:`ShadowValues` keeps real copies of the small tensors whose values are known and answers
from them, else 0 / ``False`` (counted).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    FakeTensor,
    unset_fake_temporarily,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from profilers.tracker import flat_tensors

__all__ = ["ShadowValues"]

# allocations whose contents are undefined: their values are never known
_UNDEFINED_VALUES = {
    "empty",
    "empty_like",
    "empty_strided",
    "empty_permuted",
    "new_empty",
    "new_empty_strided",
}


class ShadowValues(TorchDispatchMode):
    """Keeps real values beside small fake tensors whose values are known, so code that reads a
    value back (``.item()``, ``bool(t)``, ``.tolist()``) gets the true answer.

    The input batch is known (it is made for real first); an op whose tensor inputs all have
    known values and whose outputs are small (integer/bool tensors up to ``max_elements``,
    floating-point up to ``max_float_elements`` — masks, positions, step counters, scales) is
    run again for real on the known values. Reads of unknown values (a gradient-derived
    ``found_inf``, a loss) answer 0 / ``False`` — "no overflow, no NaN" — and are counted in
    :attr:`unknown_reads`. Runs between the fake mode and the tracker: the tracked op sequence
    is untouched, and the real copies are never counted.
    """

    def __init__(self, max_elements: int = 1 << 22, max_float_elements: int = 64) -> None:
        super().__init__()
        self.max_elements = max_elements
        self.max_float_elements = max_float_elements
        self._values: dict[int, tuple[weakref.ref[torch.Tensor], torch.Tensor]] = {}
        self.unknown_reads = 0

    def remember(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        key = id(fake)
        values = self._values

        def forget(ref: weakref.ref[torch.Tensor]) -> None:
            entry = values.get(key)
            if entry is not None and entry[0] is ref:
                del values[key]

        self._values[key] = (weakref.ref(fake, forget), real)

    def value(self, t: torch.Tensor) -> torch.Tensor | None:
        """The real value of ``t`` when known (``t`` itself when it is a real tensor)."""
        if not isinstance(t, FakeTensor):
            return t if t.device.type == "cpu" else None
        entry = self._values.get(id(t))
        if entry is None or entry[0]() is not t:
            return None
        return entry[1]

    def _small(self, t: torch.Tensor) -> bool:
        limit = self.max_float_elements if t.is_floating_point() or t.is_complex() else self.max_elements
        return t.numel() <= limit

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            real = self.value(args[0])
            if real is not None:
                with unset_fake_temporarily():
                    return real.item()
            try:  # the fake mode knows the value of some one-element constants itself
                return func(*args, **kwargs)
            except DataDependentOutputException:
                self.unknown_reads += 1
                return False if args[0].dtype is torch.bool else 0
        out = func(*args, **kwargs)
        self._follow(func, args, kwargs, out)
        return out

    def _follow(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        schema = func._schema
        inputs = flat_tensors((args, kwargs))
        if any(self.value(t) is None for t in inputs):  # the common case: exit fast
            if schema.is_mutable:
                self._forget_written(schema, args, kwargs)
            return
        outputs = flat_tensors(out)
        written = self._written(schema, args, kwargs) if schema.is_mutable else []
        if (
            (not outputs and not written)
            or torch.Tag.nondeterministic_seeded in func.tags
            or func._overloadpacket.__name__ in _UNDEFINED_VALUES
            or not all(self._small(t) for t in outputs)
            or not all(self._small(t) for t in written)
        ):
            self._forget_written(schema, args, kwargs)
            return

        def to_real(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return self.value(x)
            if isinstance(x, torch.device):
                return torch.device("cpu")
            return x

        real_args, real_kwargs = tree_map(to_real, (args, kwargs))
        try:
            with unset_fake_temporarily():
                real_out = func(*real_args, **real_kwargs)
        except Exception:  # a value we cannot follow is just unknown
            for t in (*outputs, *written):
                self._values.pop(id(t), None)
            return
        for fake, real in zip(outputs, flat_tensors(real_out), strict=False):
            if isinstance(fake, FakeTensor) and self.value(fake) is None:
                self.remember(fake, real)

    @staticmethod
    def _written(schema: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
        written = [
            a for a, arg in zip(args, schema.arguments, strict=False)
            if arg.alias_info is not None and arg.alias_info.is_write
        ]  # fmt: skip
        written += [v for k, v in kwargs.items() if k == "out"]
        return flat_tensors(written)

    def _forget_written(self, schema: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for t in self._written(schema, args, kwargs):
            self._values.pop(id(t), None)
