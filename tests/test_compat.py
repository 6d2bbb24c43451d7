"""Old import paths keep working: each old flat module imports, warns, and has its old names."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

# the public names of each flat module of version 0.1.0 (read from that release's source)
OLD_NAMES: dict[str, tuple[str, ...]] = {
    "advisor.errors": (
        "AdvisorError",
        "InvalidInputError",
        "PlanError",
        "ReportError",
        "UnknownGpuError",
        "UnknownModelError",
    ),
    "advisor.units": (
        "format_bytes",
        "format_count",
        "format_rate",
        "format_seconds",
    ),
    "advisor.io": (
        "atomic_write_bytes",
        "atomic_write_text",
        "environment",
        "write_json",
    ),
    "advisor.render": (
        "backend_notes",
        "table",
        "trial_rows",
        "trial_text",
    ),
    "advisor.gpus": (
        "CATALOG",
        "GpuSpec",
        "NUMERIC_FIELDS",
        "VENDORS",
        "custom_gpu",
        "get_gpu",
        "list_gpus",
        "parse_memory",
    ),
    "advisor.presets": (
        "PRESETS",
        "Preset",
        "preset_config",
        "preset_source",
    ),
    "advisor.cuts": (
        "Accumulation",
        "ActivationOffload",
        "AdafactorCut",
        "AdamW8bit",
        "Bf16Autocast",
        "Bf16Weights",
        "Compile",
        "EagerAttention",
        "Fp16Autocast",
        "FreezeLayers",
        "FrozenEmbeddings",
        "GradCheckpointing",
        "LoRA",
        "PlanSpace",
        "PrunedPlan",
        "QLoRA",
        "Scratch",
        "SdpaAttention",
        "Sgd",
        "check_targets",
        "checkpoint_blocks",
        "combinations",
        "default_cuts",
        "default_lora_targets",
        "describe_cuts",
        "find_repeated_blocks",
        "input_embeddings",
        "leaf_modules_summary",
        "load_embedding_file",
        "parse_cut",
        "parse_cuts",
        "parse_plan",
        "parse_plans",
        "register_cut",
        "singles",
        "user_plans",
    ),
    "advisor.estimate": (
        "EstimatedPeak",
        "TARGETS",
        "estimate_peak",
    ),
    "advisor.overheads": (
        "CONSTANTS",
        "Constant",
        "PredictedNeed",
        "allocator_model",
        "cublas_workspace_bytes",
        "observed_overheads",
        "predict_gpu_need",
    ),
    "advisor.flops": (
        "DEFAULT_COMPUTE_EFFICIENCY",
        "DEFAULT_MEMORY_EFFICIENCY",
        "EFFICIENCY_SOURCES",
        "StepTimeEstimate",
        "calibrate_compute_efficiency",
        "estimate_for_gpu",
        "estimate_step_time",
        "peak_flops_by_dtype",
        "step_cost_of",
    ),
    "advisor.growth": (
        "DEFAULT_TERMS",
        "GrowthFit",
        "SizePoint",
        "default_sizes",
        "fit_growth",
        "point_from_result",
        "simulate_growth",
    ),
    "advisor.convergence": (
        "ConvergenceResult",
        "LossCurve",
        "convergence_probe",
        "convergence_text",
        "sample_text",
        "smoothed",
        "steps_to_reach",
        "text_batches",
    ),
    "advisor.workload": (
        "RankBy",
        "SCRATCH_TOKENS_PER_PARAM",
        "Workload",
    ),
    "advisor.snippets": (
        "lora_config_code",
        "plain_pytorch_code",
        "snippet",
        "snippet_for",
        "training_arguments_code",
        "transformers_code",
    ),
}


@pytest.mark.parametrize("old", sorted(OLD_NAMES))
def test_an_old_module_path_imports_with_a_deprecation_warning(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.") + " is deprecated"):
        module = importlib.import_module(old)
    missing = [name for name in OLD_NAMES[old] if not hasattr(module, name)]
    assert not missing, f"{old} lost {missing}"


def test_an_old_path_gives_the_same_objects_as_the_new_one() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from advisor.cuts import LoRA as old_lora
        from advisor.gpus import get_gpu as old_get_gpu
    from advisor.catalog.gpus import get_gpu
    from advisor.plans.cuts import LoRA

    assert old_lora is LoRA and old_get_gpu is get_gpu


def test_simulate_and_sweep_are_the_api_functions_not_modules() -> None:
    import advisor
    import advisor.engines.simulate
    import advisor.engines.sweep
    from advisor import api

    assert advisor.simulate is api.simulate and advisor.sweep is api.sweep


def test_old_positional_sizes_of_simulate_warn_and_mean_the_same() -> None:
    import advisor

    with pytest.warns(DeprecationWarning, match="batch_size= and seq_len="):
        old = advisor.simulate("tiny-llama", "lora", 2, 64, target="cpu", count_flops=False)
    new = advisor.simulate("tiny-llama", "lora", batch_size=2, seq_len=64, target="cpu", count_flops=False)
    assert old.batch_size == 2 and old.seq_len == 64
    assert old.tensor_peak is not None and new.tensor_peak is not None
    assert old.tensor_peak.peak_bytes == new.tensor_peak.peak_bytes


def test_importing_advisor_loads_neither_torch_nor_textual() -> None:
    code = "import sys, advisor; print('torch' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
