"""Old spellings kept working: one place that reads sizes still given positionally."""

from __future__ import annotations

import warnings

from advisor.core.errors import InvalidInputError

__all__ = ["legacy_sizes"]


def legacy_sizes(func: str, sizes: tuple[int, ...], batch_size: int, seq_len: int) -> tuple[int, int]:
    """``(batch_size, seq_len)`` for ``func(model, plan, *sizes, batch_size=…, seq_len=…)``.

    Sizes given positionally (``func(model, plan, 2, 512)``, the old spelling) override the
    keywords with a ``DeprecationWarning``; more than two raise :class:`InvalidInputError`.
    """
    if not sizes:
        return batch_size, seq_len
    if len(sizes) > 2:
        raise InvalidInputError(
            f"{func}() takes at most 4 positional arguments ({2 + len(sizes)} given)",
            f"pass the sizes by name: {func}(model, plan, batch_size=2, seq_len=512)",
        )
    warnings.warn(
        f"{func}(model, plan, batch, seq) is deprecated; pass batch_size= and seq_len= by name",
        DeprecationWarning,
        stacklevel=3,
    )
    return sizes[0], sizes[1] if len(sizes) == 2 else seq_len
