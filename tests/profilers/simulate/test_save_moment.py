"""The checkpoint-save moment: what ``save_pretrained`` allocates on the weights' device,
measured on this CPU with the exact tracker during the real save, against the prediction."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

import advisor
from advisor.engines.simulate import simulate
from advisor.report.trial import trial_text
from profilers.simulate.moments import save_extra_bytes
from profilers.tracker import Role, TensorMemoryTracker


def _mixtral() -> Any:
    """A tiny Mixtral whose experts outweigh the rest (8 experts, small vocabulary)."""
    from transformers import MixtralConfig

    return MixtralConfig(
        vocab_size=128, hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=8, architectures=["MixtralForCausalLM"],
    )  # fmt: skip


def _llama() -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, architectures=["LlamaForCausalLM"],
    )  # fmt: skip


def _measured_save_extra(model: torch.nn.Module, **save_kwargs: Any) -> int:
    """Bytes the real ``save_pretrained`` allocates beyond the weights, tracked op by op."""
    tracker = TensorMemoryTracker("cpu")
    with tracker:
        tracker.register([*model.parameters(), *model.buffers()], Role.PARAMETER)
        before = tracker.result().peak_bytes
        with tempfile.TemporaryDirectory() as out:
            model.save_pretrained(out, **save_kwargs)  # type: ignore[operator]
        extra = tracker.result().peak_bytes - before
    tracker.close()
    return extra


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_saving_a_dense_model_or_an_adapter_allocates_nothing_on_the_device(dtype: torch.dtype) -> None:
    """safetensors moves each weight to the CPU itself (host memory); a dense model's weights are
    already contiguous and in the checkpoint layout; a PEFT save takes the adapter's own views."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_llama(), dtype=dtype)
    assert _measured_save_extra(model) == 0 == save_extra_bytes(model)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert _measured_save_extra(peft_model) == 0


def test_saving_an_moe_model_allocates_its_experts_in_the_checkpoint_layout() -> None:
    """transformers 5.25 reverts the fused ``gate_up_proj`` (E, 2I, H) to per-expert w1/w3 for the
    whole state dict before writing: one new copy of every layer's gate_up_proj, alive at once."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_mixtral(), dtype=torch.bfloat16)
    measured = _measured_save_extra(model)
    layers, experts, inter, hidden = 2, 8, 256, 64
    assert measured == layers * experts * 2 * inter * hidden * 2  # bf16, from the shapes
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(_mixtral(), dtype=torch.bfloat16)
    assert save_extra_bytes(meta) == measured
    assert _measured_save_extra(model, save_original_format=False) == 0  # the fix the note names


def test_saving_decides_the_peak_of_a_frozen_moe_run(tmp_path: Path) -> None:
    """With every layer frozen the step adds little beyond the weights, while the save adds the
    reverted experts: the resident bytes measured in a real CPU step plus the real save's
    allocation equal the predicted saving moment, and it decides."""
    from transformers import AutoModelForCausalLM

    _mixtral().save_pretrained(tmp_path)
    plan = "freeze-layers(k=2)+bf16-weights"
    r = simulate(str(tmp_path), plan, 1, 8, target="cpu", count_cost=False)
    assert r.ok and r.simulation is not None and r.simulation.moments is not None, r.reason
    moments = r.simulation.moments
    measured = advisor.profile(
        str(tmp_path), plan=advisor.parse_plans(plan)[0], batch_size=1, seq_len=8, device="cpu", steps=1
    )
    assert measured.tensor_peak is not None and r.tensor_peak is not None
    resident = measured.tensor_peak.resident_before_step_bytes
    assert resident == r.tensor_peak.resident_before_step_bytes
    extra = _measured_save_extra(AutoModelForCausalLM.from_config(_mixtral(), dtype=torch.bfloat16))
    assert moments.saving_bytes == resident + extra > moments.step_bytes
    assert moments.deciding == "saving" and "MoE experts" in moments.saving_path
    assert "peak while saving" in trial_text(r) and "deciding moment" in trial_text(r)


def test_a_lora_run_saves_its_adapter_only(tmp_path: Path) -> None:
    _mixtral().save_pretrained(tmp_path)
    r = simulate(str(tmp_path), "lora", 1, 8, target="cpu", count_cost=False)
    assert r.ok and r.simulation is not None and r.simulation.moments is not None
    assert r.tensor_peak is not None
    moments = r.simulation.moments
    assert moments.saving_bytes == r.tensor_peak.resident_before_step_bytes
    assert moments.saving_path.startswith("PEFT adapter") and moments.deciding == "step"


def test_the_recommendation_notes_a_plan_whose_peak_is_the_save(tmp_path: Path) -> None:
    from advisor.api import advise
    from advisor.recommend import Workload

    _mixtral().save_pretrained(tmp_path)
    plan = "freeze-layers(k=2)+bf16-weights"
    rec = advise(
        str(tmp_path), gpu="rtx-4090", workload=Workload(micro_batch=1, seq_len=8),
        plans=plan, mode="simulate", check_top=0,
    )  # fmt: skip
    notes = [n for n in rec.notes if n.startswith("Saving a checkpoint decides the peak")]
    assert len(notes) == 1 and plan in notes[0] and "save_original_format=False" in notes[0]
