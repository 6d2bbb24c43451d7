"""Ready-to-paste code for a plan: ``peft.LoraConfig``, ``transformers.TrainingArguments`` flags,
or plain PyTorch lines for a plain ``nn.Module``. Text only: nothing here imports peft or
transformers.

Each cut writes its own fragment (:meth:`advisor.plans.Cut.add_code` fills a
:class:`~advisor.plans.TrainingCode`); this module only lays the fragments out."""

from __future__ import annotations

import json
import logging

from advisor.core.errors import AdvisorError
from advisor.plans import CUTS, Cut, TrainingCode
from advisor.plans.code import TRAINABLE_PARAMETERS
from advisor.recommend import PlanVerdict, Recommendation

log = logging.getLogger(__name__)

__all__ = [
    "lora_config_code",
    "plain_pytorch_code",
    "snippet",
    "snippet_for",
    "training_arguments_code",
    "training_code",
    "transformers_code",
    "verdict_cuts",
]

# keyword arguments in the order generated code lists them (others follow, in plan order)
_TRAINING_ARGUMENT_ORDER = (
    "output_dir",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
    "gradient_checkpointing_kwargs",
    "bf16",
    "fp16",
    "optim",
    "torch_compile",
)
_LOAD_ORDER = ("dtype", "quantization_config", "attn_implementation")


def verdict_cuts(v: PlanVerdict) -> list[Cut]:
    """The plan's cuts rebuilt from the settings a report keeps, in plan order; cut names this
    version does not know (an older or newer report), or settings it cannot take, are left out."""
    classes = []
    for name in v.cuts:
        cls = CUTS.get(name)
        if cls is None:
            log.warning("no cut named %r: it is left out of the generated code", name)
            continue
        classes.append(cls)
    cuts: list[Cut] = []
    for cls in sorted(classes, key=lambda c: (c.order, c.name)):
        try:
            cuts.append(cls.from_settings(v.cut_settings.get(cls.name, {})))
        except (AdvisorError, TypeError, ValueError) as exc:
            log.warning("cut %s with settings %s: %s; left out of the generated code", cls.name,
                        v.cut_settings.get(cls.name), exc)  # fmt: skip
    return cuts


def training_code(v: PlanVerdict) -> TrainingCode:
    """The fragments the plan's cuts contribute, each cut adding its own (in plan order)."""
    recorded = v.trial.extra.get("lora_targets") if v.trial is not None else None
    code = TrainingCode(cut_names=frozenset(v.cuts), recorded_lora_targets=tuple(recorded or ()))
    for cut in verdict_cuts(v):
        cut.add_code(code)
    return code


def _ordered(kwargs: dict[str, str], order: tuple[str, ...]) -> list[str]:
    keys = [k for k in order if k in kwargs] + [k for k in kwargs if k not in order]
    return [f"{k}={kwargs[k]}" for k in keys]


def _call(name: str, args: list[str]) -> str:
    return f"{name}(\n    " + ",\n    ".join(args) + ",\n)"


def _lora_config(code: TrainingCode, task_type: str | None) -> str | None:
    if code.lora_kwargs is None:
        return None
    args = [f"{k}={v}" for k, v in code.lora_kwargs.items()]
    targets = list(code.lora_targets or code.recorded_lora_targets)
    if targets:
        args.append(f"target_modules={json.dumps(targets)}")
    args.append('bias="none"')
    if task_type:
        args.append(f'task_type="{task_type}"')
    return _call("LoraConfig", args)


def _training_arguments(code: TrainingCode, micro_batch: int) -> str:
    steps = code.accumulation_steps
    kwargs = {
        "output_dir": '"out"',
        "per_device_train_batch_size": str(max(1, micro_batch // steps) if steps > 1 else micro_batch),
        **code.training_arguments,
    }
    return _call("TrainingArguments", _ordered(kwargs, _TRAINING_ARGUMENT_ORDER))


def lora_config_code(v: PlanVerdict, task_type: str | None = "CAUSAL_LM") -> str | None:
    """``LoraConfig(...)`` for the plan's lora or qlora cut (``None`` without one)."""
    return _lora_config(training_code(v), task_type)


def training_arguments_code(v: PlanVerdict, micro_batch: int) -> str:
    """``TrainingArguments(...)`` with the flags that realise the plan."""
    return _training_arguments(training_code(v), micro_batch)


def _model_ref(rec: Recommendation) -> tuple[str, str]:
    """(Python expression of the model id or path, a comment line) for ``from_pretrained``."""
    from pathlib import Path

    try:
        from advisor.catalog.presets import PRESETS
    except ImportError:  # pragma: no cover - presets ship with the package
        PRESETS = {}
    preset = PRESETS.get(rec.model.lower())
    if preset is not None:
        return json.dumps(preset.hf_id), ""
    if Path(rec.model).exists():
        path = Path(rec.model)
        return json.dumps(str(path.parent if path.suffix == ".json" else path)), ""
    if "/" in rec.model and ":" not in rec.model:  # a Hub id, org/name[@revision]
        repo, _, revision = rec.model.partition("@")
        return json.dumps(repo) + (f", revision={json.dumps(revision)}" if revision else ""), ""
    return '"path/to/your-model"', f"# {rec.model} is a built-in test model: put your checkpoint here"


# the model's task (advisor.models.Task values) -> (transformers auto class, peft task_type)
_HEADS: dict[str, tuple[str, str | None]] = {
    "causal-lm": ("AutoModelForCausalLM", "CAUSAL_LM"),
    "masked-lm": ("AutoModelForMaskedLM", None),
    "sequence-classification": ("AutoModelForSequenceClassification", "SEQ_CLS"),
    "token-classification": ("AutoModelForTokenClassification", "TOKEN_CLS"),
}


def transformers_code(rec: Recommendation, v: PlanVerdict, micro_batch: int | None = None) -> str:
    """Python for a transformers model: load, LoRA (peft), and the TrainingArguments flags
    (``micro_batch``: another than the workload's, e.g. the largest that fits)."""
    code = training_code(v)
    micro_batch = micro_batch or rec.workload.micro_batch
    auto, task_type = _HEADS.get(rec.model_task, _HEADS["causal-lm"])
    imports = ["import torch"]
    lora = _lora_config(code, task_type)
    peft_names = (["LoraConfig", "get_peft_model"] if lora is not None else []) + code.peft_imports
    if peft_names:
        imports.append(f"from peft import {', '.join(peft_names)}")
    hf_names = [auto, "TrainingArguments", *code.transformers_imports]
    imports.append(f"from transformers import {', '.join(sorted(hf_names))}")

    ref, comment = _model_ref(rec)
    lines = list(code.before_load)
    if comment:
        lines.append(comment)
    if code.from_config:  # random init: build from the config, load no weights
        dtype = f", dtype={code.load_kwargs['dtype']}" if "dtype" in code.load_kwargs else ""
        lines.append(f"model = {auto}.from_config(AutoConfig.from_pretrained({ref}){dtype})")
    else:
        lines.append(f"model = {auto}.from_pretrained({', '.join([ref, *_ordered(code.load_kwargs, _LOAD_ORDER)])})")
    lines += code.after_load
    lines += code.freeze
    if lora is not None:
        lines += [
            f"lora = {lora}",
            "model = get_peft_model(model, lora)",
            "model.print_trainable_parameters()",
        ]
    lines.append(f"args = {_training_arguments(code, micro_batch)}")
    lines += code.after_arguments
    lines.append("# then: Trainer(model=model, args=args, train_dataset=...).train()")
    return "\n".join([*imports, "", *lines])


def plain_pytorch_code(rec: Recommendation, v: PlanVerdict, micro_batch: int | None = None) -> str:
    """Plain PyTorch lines for a plain ``nn.Module`` (your factory, batch and loss)."""
    code = training_code(v)
    micro_batch = micro_batch or rec.workload.micro_batch
    lines = ["import torch"]
    lora = _lora_config(code, None)
    if lora is not None:
        lines.append("from peft import LoraConfig, get_peft_model")
    lines += ["", f"model = build().cuda()  # your factory ({rec.model})"]
    if lora is not None:
        lines.append(f"model = get_peft_model(model, {lora})")
    lines += code.torch_dtype + code.torch_freeze + code.torch_recompute + code.torch_compile
    lines += code.torch_optimizer or [f"optimizer = torch.optim.AdamW({TRAINABLE_PARAMETERS}, lr=1e-4)"]
    steps = code.accumulation_steps
    micro = max(1, micro_batch // steps)
    if code.grad_scaler:
        lines.append('scaler = torch.amp.GradScaler("cuda")')
    lines.append(f"for i, batch in enumerate(loader):  # micro-batches of {micro}")
    body = "loss = compute_loss(model, batch)" + (f" / {steps}" if steps > 1 else "")
    if code.torch_contexts:
        lines.append(f"    with {', '.join(code.torch_contexts)}:")
        lines.append(f"        {body}")
    else:
        lines.append(f"    {body}")
    lines.append("    " + ("scaler.scale(loss).backward()" if code.grad_scaler else "loss.backward()"))
    indent = "    "
    if steps > 1:
        lines.append(f"    if (i + 1) % {steps}:")
        lines.append("        continue")
    step = ["scaler.step(optimizer)", "scaler.update()"] if code.grad_scaler else ["optimizer.step()"]
    lines += [indent + s for s in step]
    lines.append(indent + f"optimizer.zero_grad(set_to_none={code.zero_grad_set_to_none})")
    return "\n".join(lines)


def snippet(rec: Recommendation, v: PlanVerdict, micro_batch: int | None = None) -> str:
    """Markdown: the code block for plan ``v`` of ``rec``, with a line on what it sets
    (``micro_batch``: run it at that micro-batch instead of the workload's)."""
    if rec.model_task == "custom":
        code, what = plain_pytorch_code(rec, v, micro_batch), "plain PyTorch for your module"
    else:
        code, what = transformers_code(rec, v, micro_batch), "transformers + peft"
    batch_note = ""
    if micro_batch:
        batch_note = f" At micro-batch {micro_batch}, the largest that fits on the {rec.gpu.name}."
    elif v.max_micro_batch and v.max_micro_batch > rec.workload.micro_batch:
        batch_note = f" Up to micro-batch {v.max_micro_batch} fits on the {rec.gpu.name}."
    return f"Code for `{v.plan}` ({what}).{batch_note}\n\n```python\n{code}\n```"


def snippet_for(rec: Recommendation, v: PlanVerdict, micro_batch: int | None = None) -> str:
    """The code alone (no Markdown) for plan ``v`` of ``rec`` (at ``micro_batch`` if given)."""
    if rec.model_task == "custom":
        return plain_pytorch_code(rec, v, micro_batch)
    return transformers_code(rec, v, micro_batch)
