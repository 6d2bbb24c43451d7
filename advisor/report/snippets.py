"""Ready-to-paste code for a plan: ``peft.LoraConfig``, ``transformers.TrainingArguments`` flags,
or plain PyTorch lines for a plain ``nn.Module``. Text only: nothing here imports peft or
transformers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from advisor.recommend import PlanVerdict, Recommendation

__all__ = [
    "lora_config_code",
    "plain_pytorch_code",
    "snippet",
    "snippet_for",
    "training_arguments_code",
    "transformers_code",
]

# TrainingArguments(optim=…) names for the optimizer cuts
HF_OPTIM = {"sgd": "sgd", "adafactor": "adafactor", "adamw8bit": "adamw_bnb_8bit"}


def _targets(v: PlanVerdict, name: str) -> list[str]:
    settings = v.cut_settings.get(name, {})
    targets = list(settings.get("targets") or [])
    if not targets and v.trial is not None:
        targets = list(v.trial.extra.get("lora_targets") or [])
    return targets


def lora_config_code(v: PlanVerdict, task_type: str | None = "CAUSAL_LM") -> str | None:
    """``LoraConfig(...)`` for the plan's lora or qlora cut (``None`` without one)."""
    name = next((c for c in v.cuts if c in ("lora", "qlora")), None)
    if name is None:
        return None
    s = v.cut_settings.get(name, {})
    args = [
        f"r={s.get('r', 8)!r}",
        f"lora_alpha={s.get('alpha', 32)!r}",
        f"lora_dropout={s.get('dropout', 0.05)!r}",
    ]
    targets = _targets(v, name)
    if targets:
        args.append(f"target_modules={json.dumps(targets)}")
    args.append('bias="none"')
    if task_type:
        args.append(f'task_type="{task_type}"')
    return "LoraConfig(\n    " + ",\n    ".join(args) + ",\n)"


def training_arguments_code(v: PlanVerdict, micro_batch: int) -> str:
    """``TrainingArguments(...)`` with the flags that realise the plan."""
    cuts = set(v.cuts)
    args = ['output_dir="out"', f"per_device_train_batch_size={micro_batch}"]
    if "accum" in cuts:
        steps = v.cut_settings.get("accum", {}).get("steps", 4)
        args[1] = f"per_device_train_batch_size={max(1, micro_batch // steps)}"
        args.append(f"gradient_accumulation_steps={steps}")
    if "grad-ckpt" in cuts:
        args.append("gradient_checkpointing=True")
        args.append('gradient_checkpointing_kwargs={"use_reentrant": False}')
    if "bf16" in cuts:
        args.append("bf16=True")
    if "fp16" in cuts:
        args.append("fp16=True")
    for cut, optim in HF_OPTIM.items():
        if cut in cuts:
            args.append(f'optim="{optim}"')
    if "compile" in cuts:
        args.append("torch_compile=True")
    return "TrainingArguments(\n    " + ",\n    ".join(args) + ",\n)"


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
    return '"path/to/your-model"', f"# {rec.model} is a built-in test model: put your checkpoint here"


def transformers_code(rec: Recommendation, v: PlanVerdict) -> str:
    """Python for a transformers model: load, LoRA (peft), and the TrainingArguments flags."""
    cuts = set(v.cuts)
    masked = rec.model_task == "masked-lm"
    auto = "AutoModelForMaskedLM" if masked else "AutoModelForCausalLM"
    imports = ["import torch"]
    lora = lora_config_code(v, None if masked else "CAUSAL_LM")
    if lora is not None:
        peft_names = ["LoraConfig", "get_peft_model"]
        if "qlora" in cuts:
            peft_names.append("prepare_model_for_kbit_training")
        imports.append(f"from peft import {', '.join(peft_names)}")
    hf_names = [auto, "TrainingArguments"]
    if "qlora" in cuts:
        hf_names.append("BitsAndBytesConfig")
    imports.append(f"from transformers import {', '.join(sorted(hf_names))}")

    ref, comment = _model_ref(rec)
    kwargs: list[str] = []
    lines: list[str] = []
    if "bf16-weights" in cuts:
        kwargs.append("dtype=torch.bfloat16")
    if "qlora" in cuts:
        bits = v.cut_settings.get("qlora", {}).get("bits", 4)
        if bits == 4:
            compute = "torch.bfloat16" if "bf16" in cuts else "torch.float32"
            lines += [
                "bnb = BitsAndBytesConfig(",
                "    load_in_4bit=True,",
                '    bnb_4bit_quant_type="nf4",',
                f"    bnb_4bit_compute_dtype={compute},",
                ")",
            ]
        else:
            lines += ["bnb = BitsAndBytesConfig(load_in_8bit=True)"]
        kwargs.append("quantization_config=bnb")
    if "eager-attn" in cuts:
        kwargs.append('attn_implementation="eager"')
    if "sdpa-attn" in cuts:
        kwargs.append('attn_implementation="sdpa"')
    if comment:
        lines.append(comment)
    if "scratch" in cuts:  # random init: build from the config, load no weights
        imports[-1] = imports[-1].replace("import ", "import AutoConfig, ", 1)
        dtype = ", dtype=torch.bfloat16" if "bf16-weights" in cuts else ""
        lines.append(f"model = {auto}.from_config(AutoConfig.from_pretrained({ref}){dtype})")
    else:
        lines.append(f"model = {auto}.from_pretrained({', '.join([ref, *kwargs])})")
    if "qlora" in cuts:
        lines.append(
            "model = prepare_model_for_kbit_training(model, use_gradient_checkpointing="
            f"{'grad-ckpt' in cuts})"
        )
    if "frozen-emb" in cuts:
        path = v.cut_settings.get("frozen-emb", {}).get("path")
        if path:
            lines += [
                "with torch.no_grad():",
                f"    model.get_input_embeddings().weight.copy_(torch.load({path!r}))",
            ]
        lines.append("model.get_input_embeddings().weight.requires_grad_(False)")
    if "freeze-layers" in cuts:
        k = v.cut_settings.get("freeze-layers", {}).get("k", 1)
        lines += [
            f"for layer in model.base_model.layers[:{k}]:  # the first {k} transformer layer(s)",
            "    layer.requires_grad_(False)",
        ]
    if lora is not None:
        lines += [
            f"lora = {lora}",
            "model = get_peft_model(model, lora)",
            "model.print_trainable_parameters()",
        ]
    lines.append(f"args = {training_arguments_code(v, rec.workload.micro_batch)}")
    if "offload" in cuts:
        lines += [
            "# activation offload has no TrainingArguments flag: run forward and backward under",
            "# torch.autograd.graph.save_on_cpu(pin_memory=True) (e.g. in a Trainer.training_step override)",
        ]
    lines.append("# then: Trainer(model=model, args=args, train_dataset=...).train()")
    return "\n".join([*imports, "", *lines])


def plain_pytorch_code(rec: Recommendation, v: PlanVerdict) -> str:
    """Plain PyTorch lines for a plain ``nn.Module`` (your factory, batch and loss)."""
    cuts = set(v.cuts)
    lines = ["import torch", ""]
    lines.append(f"model = build().cuda()  # your factory ({rec.model})")
    lora = lora_config_code(v, None)
    if lora is not None:
        lines[0:1] = ["import torch", "from peft import LoraConfig, get_peft_model"]
        lines += [f"model = get_peft_model(model, {lora})"]
    if "bf16-weights" in cuts:
        lines.append("model = model.to(torch.bfloat16)")
    if "frozen-emb" in cuts:
        lines.append(
            "next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)).weight.requires_grad_(False)"
        )
    if "freeze-layers" in cuts:
        k = v.cut_settings.get("freeze-layers", {}).get("k", 1)
        lines.append(f"for block in model.layers[:{k}]:  # your repeated blocks")
        lines.append("    block.requires_grad_(False)")
    if "grad-ckpt" in cuts:
        lines += [
            "from torch.utils.checkpoint import checkpoint",
            "for block in model.layers:  # your repeated blocks: recompute their activations in backward",
            "    block.forward = (lambda f: lambda *a, **k: checkpoint(f, *a, use_reentrant=False, **k))(block.forward)",
        ]
    if "compile" in cuts:
        lines.append("model = torch.compile(model)")
    params = "[p for p in model.parameters() if p.requires_grad]"
    if "sgd" in cuts:
        momentum = v.cut_settings.get("sgd", {}).get("momentum", 0.0)
        lines.append(f"optimizer = torch.optim.SGD({params}, lr=1e-4, momentum={momentum!r})")
    elif "adafactor" in cuts:
        lines.append(f"optimizer = torch.optim.Adafactor({params}, lr=1e-4)")
    elif "adamw8bit" in cuts:
        lines += ["import bitsandbytes as bnb", f"optimizer = bnb.optim.AdamW8bit({params}, lr=1e-4)"]
    else:
        lines.append(f"optimizer = torch.optim.AdamW({params}, lr=1e-4)")
    steps = v.cut_settings.get("accum", {}).get("steps", 4) if "accum" in cuts else 1
    micro = max(1, rec.workload.micro_batch // steps)
    contexts: list[str] = []
    if "bf16" in cuts:
        contexts.append('torch.autocast("cuda", dtype=torch.bfloat16)')
    if "fp16" in cuts:
        contexts.append('torch.autocast("cuda", dtype=torch.float16)')
        lines.append('scaler = torch.amp.GradScaler("cuda")')
    if "offload" in cuts:
        contexts.append("torch.autograd.graph.save_on_cpu(pin_memory=True)")
    lines.append(f"for i, batch in enumerate(loader):  # micro-batches of {micro}")
    body = "loss = compute_loss(model, batch)" + (f" / {steps}" if steps > 1 else "")
    if contexts:
        lines.append(f"    with {', '.join(contexts)}:")
        lines.append(f"        {body}")
    else:
        lines.append(f"    {body}")
    lines.append("    " + ("scaler.scale(loss).backward()" if "fp16" in cuts else "loss.backward()"))
    indent = "    "
    if steps > 1:
        lines.append(f"    if (i + 1) % {steps}:")
        lines.append("        continue")
    step = ["scaler.step(optimizer)", "scaler.update()"] if "fp16" in cuts else ["optimizer.step()"]
    lines += [indent + s for s in step]
    lines.append(indent + "optimizer.zero_grad(set_to_none=True)")
    return "\n".join(lines)


def snippet(rec: Recommendation, v: PlanVerdict) -> str:
    """Markdown: the code block for plan ``v`` of ``rec``, with a line on what it sets."""
    if rec.model_task == "custom":
        code, what = plain_pytorch_code(rec, v), "plain PyTorch for your module"
    else:
        code, what = transformers_code(rec, v), "transformers + peft"
    batch_note = ""
    if v.max_micro_batch and v.max_micro_batch > rec.workload.micro_batch:
        batch_note = f" Up to micro-batch {v.max_micro_batch} fits on the {rec.gpu.name}."
    return f"Code for `{v.plan}` ({what}).{batch_note}\n\n```python\n{code}\n```"


def snippets_for(rec: Recommendation, plans: Sequence[str]) -> dict[str, Any]:
    """``{plan name: code}`` for several plans of ``rec`` (front ends)."""
    out = {}
    for name in plans:
        v = rec.verdict(name)
        out[name] = snippet_for(rec, v)
    return out


def snippet_for(rec: Recommendation, v: PlanVerdict) -> str:
    """The code alone (no Markdown) for plan ``v`` of ``rec``."""
    return plain_pytorch_code(rec, v) if rec.model_task == "custom" else transformers_code(rec, v)
