"""The pruning probe: pruning a trained model costs loss (direction only), and the parameters
it reports removed match the pruned shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from advisor.core.errors import InvalidInputError
from advisor.engines.prune_quality import pruning_probe
from advisor.models import HFModelSource, resolve_model

BATCH, SEQ, STEPS = 2, 16, 3


def _trained_tiny_llama(tmp_path: Path) -> HFModelSource:
    """tiny-llama trained until it has memorised the probe's batches, saved with its weights."""
    source = resolve_model("tiny-llama")
    assert isinstance(source, HFModelSource)
    torch.manual_seed(0)
    model: Any = source.build("cpu", pretrained=False)
    batches = [source.make_batch(BATCH, SEQ, "cpu", seed=i) for i in range(STEPS)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(8):
        for batch in batches:
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad()
    model.save_pretrained(tmp_path)
    return HFModelSource("trained-tiny-llama", source.config, weights_path=tmp_path)


@pytest.mark.slow
def test_pruning_a_trained_model_raises_its_loss(tmp_path: Path) -> None:
    source = _trained_tiny_llama(tmp_path)
    result = pruning_probe(source, "prune(amount=0.5)", steps=STEPS, batch_size=BATCH, seq_len=SEQ, lr=1e-4)
    assert result.loss_change > 0  # the pruned model forgot part of what it had learnt
    assert result.pruned.losses[0] > result.unpruned.losses[0]
    # 0.5 of tiny-llama: 1 of 2 KV groups (q 128 rows, k/v 64 rows, o 128 cols of width 256)
    # and 344 of 688 MLP channels (3 × 256 each), in 2 layers, float32
    removed = 2 * (256 * (128 + 64 + 64 + 128) + 3 * 256 * 344)
    assert result.params_before - result.params_after == removed
    assert result.param_bytes_saved == 4 * removed
    assert result.to_dict()["loss_change"] == result.loss_change


def test_the_probe_takes_pruning_cuts_only() -> None:
    with pytest.raises(InvalidInputError, match="pruning cuts only"):
        pruning_probe("tiny-llama", "lora", steps=3)
