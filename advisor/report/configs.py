"""A plan written back in the formats people train with: ``TrainingArguments`` keyword
arguments, ``LoraConfig``, ``BitsAndBytesConfig``, an axolotl YAML and torchtune overrides.

The values come from each cut's own code fragment (:meth:`advisor.plans.Cut.add_code`, the same
that :mod:`advisor.report.snippets` lays out as Python) and, for the quantization,
:meth:`QLoRA.bnb_config`; :func:`advisor.plan_from_config` reads every format back to the same
plan (the tests check it, and load each with the real library). What a format cannot say is a
note beside it, not a silent difference.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from advisor.catalog.presets import PRESETS
from advisor.plans import Cut, Plan, TrainingCode
from advisor.plans.configs import ConfigPlan
from advisor.plans.cuts import Sgd
from advisor.recommend import PlanVerdict, Recommendation
from advisor.report.launch import launch_snippets
from advisor.report.snippets import verdict_cuts

__all__ = [
    "ConfigSnippet",
    "axolotl_config",
    "bitsandbytes_kwargs",
    "config_plan_for",
    "config_snippets",
    "configs_markdown",
    "distributed_snippets",
    "lora_config_kwargs",
    "torchtune_overrides",
    "training_arguments_kwargs",
]


@dataclass(frozen=True)
class ConfigSnippet:
    """One format's text for a plan, with what it could not express."""

    format: str  # "TrainingArguments", "LoraConfig", "BitsAndBytesConfig", "axolotl", "torchtune",
    # "DeepSpeed", "accelerate"
    language: str  # "python", "yaml" or "json", for a Markdown code block
    text: str
    notes: tuple[str, ...] = ()


def _code(plan: Plan) -> TrainingCode:
    code = TrainingCode(cut_names=frozenset(plan.cut_names))
    for cut in plan.cuts:
        cut.add_code(code)
    return code


def _cut(plan: Plan, name: str) -> Cut | None:
    return next((c for c in plan.cuts if c.name == name), None)


def _accumulation(plan: Plan) -> int:
    cut = _cut(plan, "accum")
    return int(getattr(cut, "steps", 1)) if cut is not None else 1


def training_arguments_kwargs(plan: Plan, micro_batch_size: int) -> tuple[dict[str, Any], list[str]]:
    """(``TrainingArguments`` keyword arguments, notes) for ``plan`` at ``micro_batch_size``
    samples per forward pass. Baseline AdamW is written ``optim="adamw_torch"`` (torch's own
    implementation choice, foreach on CUDA), since the Trainer's default is the fused one."""
    code = _code(plan)
    kwargs: dict[str, Any] = {"output_dir": "out", "per_device_train_batch_size": micro_batch_size}
    for key, value in code.training_arguments.items():
        # transformers 5.25's names (gradient_checkpointing* are its deprecated aliases)
        kwargs[key.replace("gradient_checkpointing", "activation_checkpointing")] = ast.literal_eval(value)
    notes: list[str] = []
    sgd = _cut(plan, "sgd")
    if isinstance(sgd, Sgd) and sgd.momentum:
        kwargs["optim_args"] = f"momentum={sgd.momentum}"
    impl = _cut(plan, "optim-impl")
    if "optim" not in kwargs:
        kwargs["optim"] = "adamw_torch"
        if impl is not None and getattr(impl, "kind", "") == "loop":
            notes.append(
                "the Trainer has no optim name for AdamW one tensor at a time: pass foreach=False yourself"
            )
    for name, what in (("bf16-weights", "load the model with dtype=torch.bfloat16"),
                       ("offload", "activation offload has no TrainingArguments flag"),
                       ("eager-attn", 'load with attn_implementation="eager"'),
                       ("sdpa-attn", 'load with attn_implementation="sdpa"')):  # fmt: skip
        if name in plan.cut_names:
            notes.append(what)
    return kwargs, notes


def lora_config_kwargs(plan: Plan, task_type: str | None = "CAUSAL_LM") -> dict[str, Any] | None:
    """``LoraConfig`` keyword arguments for the plan's lora or qlora cut (``None`` without one)."""
    code = _code(plan)
    if code.lora_kwargs is None:
        return None
    kwargs: dict[str, Any] = {k: ast.literal_eval(v) for k, v in code.lora_kwargs.items()}
    if code.lora_targets:
        kwargs["target_modules"] = list(code.lora_targets)
    if task_type:
        kwargs["task_type"] = task_type
    return kwargs


def bitsandbytes_kwargs(plan: Plan) -> dict[str, Any] | None:
    """``BitsAndBytesConfig`` keyword arguments for the plan's qlora cut (``None`` without one)."""
    cut = _cut(plan, "qlora")
    return cut.bnb_config(frozenset(plan.cut_names)) if cut is not None else None  # type: ignore[attr-defined]


def _hub_id(model: str | None) -> str | None:
    preset = PRESETS.get((model or "").lower())
    return preset.hf_id if preset is not None else model


def axolotl_config(cp: ConfigPlan) -> tuple[dict[str, Any], list[str]]:
    """(an axolotl config's memory-deciding keys, notes) for the plan of ``cp``."""
    plan = cp.plan
    kwargs, _ = training_arguments_kwargs(plan, cp.micro_batch_size)  # the Trainer's optim name
    notes: list[str] = []
    out: dict[str, Any] = {}
    if cp.model:
        out["base_model"] = _hub_id(cp.model)
    qlora = _cut(plan, "qlora")
    lora = qlora or _cut(plan, "lora")
    if qlora is not None:
        bits = int(getattr(qlora, "bits", 4))
        out["load_in_4bit" if bits == 4 else "load_in_8bit"] = True
        out["adapter"] = "qlora" if bits == 4 else "lora"
        if bits == 4 and (qlora.quant_type, qlora.double_quant) != ("nf4", True):  # type: ignore[attr-defined]
            notes.append("axolotl always quantizes NF4 with double quantization")
    elif lora is not None:
        out["adapter"] = "lora"
    if lora is not None:
        out.update(lora_r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout)  # type: ignore[attr-defined]
        if lora.targets:  # type: ignore[attr-defined]
            out["lora_target_modules"] = list(lora.targets)  # type: ignore[attr-defined]
    if cp.seq_len:
        out["sequence_len"] = cp.seq_len
    out["micro_batch_size"] = cp.micro_batch_size
    out["gradient_accumulation_steps"] = _accumulation(plan)
    out["optimizer"] = kwargs["optim"]
    if "optim_args" in kwargs:
        out["optim_args"] = kwargs["optim_args"]
    names = set(plan.cut_names)
    if names & {"bf16", "bf16-weights"}:
        out["bf16"] = True
        if "bf16" in names and qlora is None:
            notes.append("under bf16 axolotl also loads the base in bfloat16 (bf16-weights)")
    if "fp16" in names:
        out["fp16"] = True
    if "grad-ckpt" in names:
        out["gradient_checkpointing"] = True
    if "offload" in names:
        out["activation_offloading"] = True
    if "sdpa-attn" in names:
        out["sdp_attention"] = True
    if "compile" in names:
        out["torch_compile"] = True
    if "eager-attn" in names:
        notes.append("eager attention: leave flash_attention and sdp_attention off")
    return out, notes


def _torchtune_builder(model: str | None, prefix: str) -> str | None:
    import re

    m = re.fullmatch(r"llama-(\d)\.(\d)-(\d+b)", (model or "").lower())
    if m:
        return f"torchtune.models.llama{m[1]}_{m[2]}.{prefix}llama{m[1]}_{m[2]}_{m[3]}"
    m = re.fullmatch(r"qwen(\d)\.(\d)-(\d+)(?:\.(\d+))?b", (model or "").lower())
    if m:
        size = f"{m[3]}_{m[4]}b" if m[4] else f"{m[3]}b"
        return f"torchtune.models.qwen{m[1]}_{m[2]}.{prefix}qwen{m[1]}_{m[2]}_{size}"
    return None


_TT_NAMES = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "o_proj": "output_proj"}
_TT_OPTIMIZERS = {None: "torch.optim.AdamW", "sgd": "torch.optim.SGD", "adamw8bit": "bitsandbytes.optim.AdamW8bit",
                  "paged-adamw8bit": "bitsandbytes.optim.PagedAdamW8bit"}  # fmt: skip


def torchtune_overrides(cp: ConfigPlan) -> tuple[dict[str, Any], list[str]]:
    """(torchtune recipe overrides, notes) for the plan of ``cp``."""
    plan = cp.plan
    notes: list[str] = []
    qlora = _cut(plan, "qlora")
    lora = qlora or _cut(plan, "lora")
    prefix = "qlora_" if qlora is not None else "lora_" if lora is not None else ""
    model: dict[str, Any] = {}
    builder = _torchtune_builder(cp.model, prefix)
    if builder:
        model["_component_"] = builder
    else:
        notes.append(f"no torchtune builder known for {cp.model}: keep your recipe's model._component_")
    if lora is not None:
        targets = list(lora.targets) or ["q_proj", "v_proj"]  # type: ignore[attr-defined]
        model["lora_attn_modules"] = [_TT_NAMES[t] for t in targets if t in _TT_NAMES]
        model["apply_lora_to_mlp"] = bool({"gate_proj", "up_proj", "down_proj"} & set(targets))
        model["apply_lora_to_output"] = "lm_head" in targets
        model.update(lora_rank=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout)  # type: ignore[attr-defined]
        if qlora is not None and int(getattr(qlora, "bits", 4)) == 8:
            notes.append("torchtune has no 8-bit base: qlora_ builders quantize to NF4")
    out: dict[str, Any] = {"model": model} if model else {}
    names = set(plan.cut_names)
    out["dtype"] = "bf16" if names & {"bf16", "bf16-weights"} else "fp32"
    if "fp16" in names:
        notes.append("torchtune trains in bf16 or fp32, not fp16")
    if "bf16" in names and qlora is None:
        notes.append("torchtune has no autocast: dtype bf16 trains in pure bf16 (bf16-weights)")
    out["batch_size"] = cp.micro_batch_size
    out["gradient_accumulation_steps"] = _accumulation(plan)
    out["enable_activation_checkpointing"] = "grad-ckpt" in names
    out["enable_activation_offloading"] = "offload" in names
    optimizer_cut = next((c for c in plan.cuts if c.group == "optimizer"), None)
    component = _TT_OPTIMIZERS.get(optimizer_cut.name if optimizer_cut else None)
    if component is None:
        notes.append(f"{optimizer_cut.name if optimizer_cut else 'AdamW'}: keep your recipe's optimizer")
    else:
        optimizer: dict[str, Any] = {"_component_": component}
        impl = _cut(plan, "optim-impl")
        if impl is not None:
            kind = getattr(impl, "kind", "fused")
            optimizer["fused" if kind == "fused" else "foreach"] = kind in ("fused", "foreach")
        if isinstance(optimizer_cut, Sgd) and optimizer_cut.momentum:
            optimizer["momentum"] = optimizer_cut.momentum
        out["optimizer"] = optimizer
    out["compile"] = "compile" in names
    if cp.seq_len:
        out["tokenizer"] = {"max_seq_len": cp.seq_len}
    return out, notes


def _python_call(name: str, kwargs: dict[str, Any]) -> str:
    return f"{name}(\n" + "".join(f"    {k}={v!r},\n" for k, v in kwargs.items()) + ")"


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()


def config_snippets(cp: ConfigPlan) -> list[ConfigSnippet]:
    """The plan of ``cp`` in every format it has a place in."""
    out: list[ConfigSnippet] = []
    kwargs, notes = training_arguments_kwargs(cp.plan, cp.micro_batch_size)
    out.append(
        ConfigSnippet("TrainingArguments", "python", _python_call("TrainingArguments", kwargs), tuple(notes))
    )
    lora = lora_config_kwargs(cp.plan)
    if lora is not None:
        out.append(ConfigSnippet("LoraConfig", "python", _python_call("LoraConfig", lora)))
    bnb = bitsandbytes_kwargs(cp.plan)
    if bnb is not None:
        out.append(ConfigSnippet("BitsAndBytesConfig", "python", _python_call("BitsAndBytesConfig", bnb)))
    axolotl, notes = axolotl_config(cp)
    out.append(ConfigSnippet("axolotl", "yaml", _dump(axolotl), tuple(notes)))
    tune, notes = torchtune_overrides(cp)
    out.append(ConfigSnippet("torchtune", "yaml", _dump(tune), tuple(notes)))
    out += distributed_snippets(cp)
    return out


def distributed_snippets(cp: ConfigPlan) -> list[ConfigSnippet]:
    """A distributed plan's DeepSpeed JSON and ``accelerate config`` YAML: the files of
    :func:`advisor.report.launch.launch_snippets` (one implementation), which
    :func:`advisor.plan_from_config` reads back to the same plan. Nothing for a single-GPU plan
    or one whose GPU count is unknown."""
    if cp.gpus is None or not any(getattr(c, "distributed", False) for c in cp.plan.cuts):
        return []
    settings = {c.name: dataclasses.asdict(c) for c in cp.plan.cuts}  # type: ignore[call-overload]
    launch = launch_snippets(settings, cp.gpus, cp.nodes, micro_batch=cp.micro_batch_size)
    if launch is None:
        return []
    out = []
    for name, text in launch.files.items():
        if name.endswith(".json"):
            out.append(ConfigSnippet("DeepSpeed", "json", text.rstrip(), (f"save as {name}",)))
        elif name.endswith(".yaml"):
            out.append(ConfigSnippet("accelerate", "yaml", text.rstrip(),
                                     (f"save as {name}; launch: {launch.command}",)))  # fmt: skip
    return out


def configs_markdown(cp: ConfigPlan) -> str:
    """Markdown: one code block per format, each with its notes."""
    parts = [f"Plan `{cp.plan.name}` in your training tool's own format."]
    for s in config_snippets(cp):
        parts.append(f"**{s.format}**\n\n```{s.language}\n{s.text}\n```")
        parts += [f"- {n}" for n in s.notes]
    return "\n\n".join(parts)


def config_plan_for(rec: Recommendation, v: PlanVerdict) -> ConfigPlan:
    """The config view of plan ``v`` of ``rec``: its cuts at the workload's sizes, for ``rec``'s model."""
    recorded = tuple(v.trial.extra.get("lora_targets") or ()) if v.trial is not None else ()
    cuts = [
        dataclasses.replace(c, targets=recorded)  # type: ignore[type-var]
        if recorded and c.name in ("lora", "qlora") and not getattr(c, "targets", ())
        else c
        for c in verdict_cuts(v)
    ]  # automatic LoRA targets: the ones the trial chose, so every format names them
    return ConfigPlan.for_plan(Plan.of(cuts), rec.workload.micro_batch, rec.workload.seq_len, rec.model)
