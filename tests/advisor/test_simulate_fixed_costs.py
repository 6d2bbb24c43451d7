"""What a simulated sweep does once rather than per plan or per probe (issue #14's speed)."""

from __future__ import annotations

import gc

from advisor.engines import simulate as sim
from advisor.models import resolve_model


def test_an_outer_freeze_survives_each_plan() -> None:
    """A sweep's worker freezes what it imported; a plan must not thaw it (every later
    collection would scan all of torch and transformers again)."""
    assert gc.get_freeze_count() == 0
    kept = [object() for _ in range(10)]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with sim._young_garbage_only():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
    with sim._young_garbage_only():  # no outer freeze: what it froze is thawed again
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    del kept


def test_the_plain_model_is_built_once_per_source(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    source = resolve_model("tiny-llama")
    builds = []
    real = type(source).build

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(source), "build", counting)
    first = sim._plain_model(source)
    assert sim._plain_model(source) == first and len(builds) == 1
    # the figures are the real model's: its parameters counted on a fresh build
    model = real(source, "meta")
    assert first[0] == sum(p.numel() for p in model.parameters())
    other = resolve_model("tiny-llama")  # another source object: built again
    sim._plain_model(other)
    assert len(builds) == 2
