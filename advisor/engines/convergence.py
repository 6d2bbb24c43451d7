"""The convergence probe: the compute side of "fine-tune, don't train from scratch".

A step costs the same memory and time from pretrained weights as from random initialisation;
what differs is how many steps it takes to get somewhere. The probe trains the same model twice
on the same batches, once from its pretrained weights and once from random init, records both
loss curves, and counts the steps each needs to reach a loss threshold.

Data: text (the built-in English sample, or a user's text file) tokenized with the model's own
tokenizer, as masked-LM batches (15 % of tokens chosen; 80 % masked, 10 % random, 10 % kept) or
causal-LM batches. A model without a tokenizer (a ``module:factory``) trains on its own
``make_batch``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advisor.core.errors import InvalidInputError, check_device
from advisor.models import Batch, HFModelSource, ModelSource, Task, quiet_transformers, resolve_model
from profilers.records import Provenance

log = logging.getLogger(__name__)

SAMPLE_TEXT = "sample.txt"  # in advisor/data
SMOOTHING = 3  # steps in the trailing mean that decides when a curve reaches the threshold


def sample_text() -> str:
    """The built-in English prose sample (about 6 KB)."""
    return resources.files("advisor").joinpath("data", SAMPLE_TEXT).read_text(encoding="utf-8")


@dataclass(frozen=True)
class LossCurve:
    """One run of the probe."""

    start: str  # "pretrained" or "random-init"
    losses: tuple[float, ...]  # the training loss of each step, before its update
    steps_to_threshold: int | None  # first step whose trailing mean is ≤ the threshold
    wall_time_s: float

    @property
    def final_loss(self) -> float:
        return smoothed(self.losses)[-1]

    @property
    def best_loss(self) -> float:
        return min(smoothed(self.losses))


@dataclass(frozen=True)
class ConvergenceResult:
    """Both runs of the probe, the threshold, and what it means in steps and tokens."""

    model: str
    task: str
    data: str  # where the batches came from
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    seed: int
    threshold: float
    threshold_source: str  # "given" or "random-init best" (the scratch run's best smoothed loss)
    tokens_per_step: int
    pretrained: LossCurve
    scratch: LossCurve
    provenance: Provenance = Provenance.MEASURED

    @property
    def step_ratio(self) -> float | None:
        """How many times more steps random init needs (``None`` when a run never got there)."""
        p, s = self.pretrained.steps_to_threshold, self.scratch.steps_to_threshold
        if p is None or s is None:
            return None
        return s / p

    def to_dict(self) -> dict[str, Any]:
        def curve(c: LossCurve) -> dict[str, Any]:
            return {
                "start": c.start,
                "losses": list(c.losses),
                "steps_to_threshold": c.steps_to_threshold,
                "tokens_to_threshold": None
                if c.steps_to_threshold is None
                else c.steps_to_threshold * self.tokens_per_step,
                "final_loss": c.final_loss,
                "wall_time_s": c.wall_time_s,
            }

        return {
            "model": self.model,
            "task": self.task,
            "data": self.data,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "lr": self.lr,
            "seed": self.seed,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "smoothing_steps": SMOOTHING,
            "tokens_per_step": self.tokens_per_step,
            "step_ratio": self.step_ratio,
            "pretrained": curve(self.pretrained),
            "scratch": curve(self.scratch),
            "provenance": self.provenance.value,
        }


def smoothed(losses: tuple[float, ...] | list[float], window: int = SMOOTHING) -> list[float]:
    """Trailing mean over up to ``window`` steps (step-to-step noise would decide thresholds)."""
    out = []
    for i in range(len(losses)):
        part = losses[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


def steps_to_reach(losses: tuple[float, ...] | list[float], threshold: float) -> int | None:
    """The first step (1-based) whose smoothed loss is ≤ ``threshold``, else ``None``."""
    for i, value in enumerate(smoothed(losses), 1):
        if value <= threshold:
            return i
    return None


# -- batches -----------------------------------------------------------------------------------


def _load_tokenizer(source: HFModelSource) -> Any:
    from transformers import AutoTokenizer

    if source.weights_path is None:
        return None
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(source.weights_path))
    except Exception as exc:  # no tokenizer files next to the weights
        log.warning("no tokenizer for %s (%s); training on synthetic batches", source.name, exc)
        return None


def text_batches(
    tokenizer: Any, text: str, task: Task, steps: int, batch_size: int, seq_len: int, seed: int
) -> list[Batch]:
    """``steps`` deterministic batches of windows of ``text`` (cycled), masked for masked LM."""
    with quiet_transformers():
        ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    specials = [t for t in (cls_id, sep_id) if t is not None]
    body = seq_len - len(specials)
    if body < 1 or len(ids) < body:
        raise InvalidInputError(
            f"the text has {len(ids)} tokens, too few for one sequence of {seq_len}",
            f"give a longer text file, or seq_len={max(1, len(ids) + len(specials))} or less",
        )
    windows = []
    for start in range(0, len(ids) - body + 1, body):
        chunk = ids[start : start + body]
        windows.append(
            ([cls_id] if cls_id is not None else []) + chunk + ([sep_id] if sep_id is not None else [])
        )
    mask_id = tokenizer.mask_token_id
    vocab = len(tokenizer)
    batches = []
    for step in range(steps):
        gen = torch.Generator().manual_seed(seed * 100_003 + step)
        rows = [windows[(step * batch_size + j) % len(windows)] for j in range(batch_size)]
        x = torch.tensor(rows, dtype=torch.long)
        attention = torch.ones_like(x)
        if task is Task.MASKED_LM:
            if mask_id is None:
                raise InvalidInputError(
                    "the tokenizer has no mask token", "use a masked-LM model's tokenizer"
                )
            chosen = torch.rand(x.shape, generator=gen) < 0.15
            for special in specials:
                chosen &= x != special
            chosen[:, 1 if cls_id is not None else 0] = True  # at least one label per row
            labels = torch.where(chosen, x, torch.full_like(x, -100))
            inputs = x.clone()
            roll = torch.rand(x.shape, generator=gen)
            inputs[chosen & (roll < 0.8)] = mask_id
            swap = chosen & (roll >= 0.8) & (roll < 0.9)
            inputs[swap] = torch.randint(0, vocab, (int(swap.sum()),), generator=gen)
            batches.append({"input_ids": inputs, "attention_mask": attention, "labels": labels})
        else:
            batches.append({"input_ids": x, "attention_mask": attention, "labels": x.clone()})
    return batches


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _train(
    source: ModelSource,
    pretrained: bool,
    batches: list[Batch],
    lr: float,
    seed: int,
    device: torch.device,
    say: Callable[[str], None],
) -> LossCurve:
    label = "pretrained" if pretrained else "random-init"
    torch.manual_seed(seed)  # the same random init (and dropout) every time
    model: nn.Module = source.build(device, pretrained=pretrained)
    curve = train_curve(label, model, source, batches, lr, device, say)
    del model
    return curve


def train_curve(
    label: str,
    model: nn.Module,
    source: ModelSource,
    batches: list[Batch],
    lr: float,
    device: torch.device,
    say: Callable[[str], None],
) -> LossCurve:
    """Train ``model`` (its trainable parameters, AdamW at ``lr``) one step per batch and return
    its loss curve; a loss that stops being finite is an :class:`InvalidInputError` naming ``lr``."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses: list[float] = []
    started = time.perf_counter()
    for i, batch in enumerate(batches, 1):
        loss = source.loss(model, _to_device(batch, device))
        value = float(loss.detach())
        if not math.isfinite(value):
            raise InvalidInputError(
                f"the {label} run's loss became {value} at step {i}",
                f"lower the learning rate, e.g. lr={lr / 10:g}",
                argument="lr",
            )
        losses.append(value)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        say(f"{label} step {i}/{len(batches)}: loss {value:.3f}")
    elapsed = time.perf_counter() - started
    del optimizer
    return LossCurve(label, tuple(losses), None, elapsed)


def convergence_probe(
    model: str | nn.Module | ModelSource = "minilm",
    *,
    text: str | Path | None = None,
    steps: int = 30,
    batch_size: int = 4,
    seq_len: int = 64,
    lr: float = 1e-4,
    threshold: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> ConvergenceResult:
    """Train ``model`` ``steps`` steps from its pretrained weights and from random init on the
    same batches; report both loss curves and the steps each needs to reach ``threshold``.

    ``text`` is a path to a UTF-8 text file (default: the built-in sample). Without
    ``threshold``, it is the best smoothed loss the random-init run reached: the question is
    then "how many steps does the pretrained start need to get where scratch got in ``steps``".
    The model needs pretrained weights: a directory with weights, ``minilm``, or a
    ``module:factory`` that loads a checkpoint.
    """
    source = resolve_model(model)
    if steps < SMOOTHING:
        raise InvalidInputError(
            f"the probe needs at least {SMOOTHING} steps, got {steps}", "pass steps=20 or more"
        )
    if lr <= 0:
        raise InvalidInputError(f"learning rate must be > 0, got {lr}", "for example lr=1e-4")
    source.check_sizes(batch_size, seq_len)
    if not source.has_pretrained_weights:
        raise InvalidInputError(
            f"{source.name} has no pretrained weights: both runs would start from random init",
            "use minilm, a Hugging Face directory with weights, or a module:factory that loads your "
            "checkpoint",
        )
    say = progress or (lambda _msg: None)
    dev = torch.device(check_device(device))
    tokenizer = _load_tokenizer(source) if isinstance(source, HFModelSource) else None
    if tokenizer is not None:
        if text is None:
            body, data = sample_text(), "built-in English sample"
        else:
            path = Path(text)
            if not path.is_file():
                raise InvalidInputError(f"no text file at {path}", "give a UTF-8 text file: text=PATH")
            body, data = path.read_text(encoding="utf-8", errors="replace"), str(path)
        batches = text_batches(tokenizer, body, source.task, steps, batch_size, seq_len, seed)
    else:
        if text is not None:
            raise InvalidInputError(
                f"{source.name} has no tokenizer, so it cannot read {text}",
                "leave out the text file to train on the model's own make_batch, or use a model "
                "directory with tokenizer files",
            )
        batches = [source.make_batch(batch_size, seq_len, "cpu", seed=seed + i) for i in range(steps)]
        data = "the model's make_batch"
    say(f"{len(batches)} batches of {batch_size} × {seq_len} from {data}")
    pretrained = _train(source, True, batches, lr, seed, dev, say)
    scratch = _train(source, False, batches, lr, seed, dev, say)
    if threshold is None:
        threshold, threshold_source = scratch.best_loss, "random-init best"
    else:
        threshold_source = "given"

    def reach(c: LossCurve) -> LossCurve:
        return LossCurve(c.start, c.losses, steps_to_reach(c.losses, threshold), c.wall_time_s)

    return ConvergenceResult(
        model=source.name,
        task=source.task.value,
        data=data,
        steps=steps,
        batch_size=batch_size,
        seq_len=seq_len,
        lr=lr,
        seed=seed,
        threshold=threshold,
        threshold_source=threshold_source,
        tokens_per_step=batch_size * source.tokens_per_sample(seq_len),
        pretrained=reach(pretrained),
        scratch=reach(scratch),
    )

