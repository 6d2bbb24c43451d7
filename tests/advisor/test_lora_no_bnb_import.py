"""LoRA wraps a model without importing bitsandbytes when nothing imported it (issue #14: the
import costs each sweep worker ~3.5 s of CPU), and wraps it exactly as PEFT does otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model
    from advisor.plans.cuts.lora import _no_bitsandbytes_import

    def wrapped(patch):
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2)
        model = LlamaForCausalLM(cfg)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], bias="none")
        if patch:
            with _no_bitsandbytes_import():
                model = get_peft_model(model, lora)
        else:
            model = get_peft_model(model, lora)
        return {
            "bnb": "bitsandbytes" in sys.modules,
            "modules": [[n, type(m).__module__ + "." + type(m).__qualname__] for n, m in model.named_modules()],
            "params": [[n, list(p.shape), p.requires_grad] for n, p in model.named_parameters()],
        }

    print(json.dumps(wrapped(sys.argv[1] == "patched")))
    """
)


def _run(mode: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, env=env, check=True, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_lora_without_bitsandbytes_import_wraps_as_peft_does() -> None:
    patched, plain = _run("patched"), _run("plain")
    assert patched["bnb"] is False  # the guard kept PEFT from importing it
    assert plain["bnb"] is True  # PEFT 0.22.0 alone imports it (else this test proves nothing)
    assert patched["modules"] == plain["modules"]
    assert patched["params"] == plain["params"]
    assert any(cls.endswith("lora.layer.Linear") for _, cls in patched["modules"])
