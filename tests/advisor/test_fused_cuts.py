"""Fused-kernel cuts at the API: the fused linear cross-entropy's saving on a 128k-vocab model,
and the recommender offering it."""

from __future__ import annotations

import pytest

import advisor
from advisor.recommend.candidates import candidate_plans


@pytest.mark.slow
def test_fused_linear_ce_saves_the_logits_of_a_128k_vocab_model_at_seq_8192() -> None:
    batch, seq, vocab, width = 1, 8192, 128256, 2048  # llama-3.2-1b's shape
    logits = batch * seq * vocab * 4  # the fp32 logits: 4.2 GB
    base = advisor.simulate("llama-3.2-1b", "baseline", batch_size=batch, seq_len=seq)
    fused = advisor.simulate("llama-3.2-1b", "fused-linear-ce", batch_size=batch, seq_len=seq)
    assert base.status.value == fused.status.value == "ok", (base.reason, fused.reason)
    assert base.tensor_peak is not None and fused.tensor_peak is not None
    saved = base.tensor_peak.peak_bytes - fused.tensor_peak.peak_bytes
    # transformers' loss peaks at the start of backward holding three logits-sized fp32
    # tensors (the logits, the log-softmax cross_entropy saves, the gradient being formed); the
    # fused loss holds instead its saved grad_weight (V × H fp32) and grad_input (BT × H) and
    # one chunk of logits (256 rows): the saving lies between two and three logits' sizes
    assert 2 * logits < saved < 3 * logits - vocab * width * 4 + logits // 4
    assert fused.params == base.params  # same model: only the loss computation changes


def test_the_recommender_tries_fused_linear_ce() -> None:
    names = {p.name for p in candidate_plans()}
    assert "fused-linear-ce" in names
