"""The pruning probe: what structured pruning costs in loss, beside what it saves in memory.

The same model (its pretrained weights where it has them, else the same random init) is trained
``steps`` steps on the same batches twice: as it is, and pruned by a ``prune`` cut. The result
carries both loss curves, the loss change after the last step (smoothed as the convergence probe
smooths it) and the parameters and parameter bytes the pruning removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advisor.core.errors import InvalidInputError, check_device
from advisor.engines.convergence import SMOOTHING, LossCurve, train_curve
from advisor.models import ModelSource, resolve_model
from advisor.plans import Plan, Recipe, parse_plan
from advisor.plans.types import BuildContext
from profilers.records import Provenance

__all__ = ["PruningQuality", "pruning_probe"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruningQuality:
    """Both runs of the pruning probe and what the pruning removed."""

    model: str
    plan: str  # the pruning plan, e.g. "prune(amount=0.5)"
    data: str
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    seed: int
    params_before: int
    params_after: int
    param_bytes_saved: int  # bytes of the removed weights (gradients and optimizer state scale alike)
    unpruned: LossCurve
    pruned: LossCurve
    provenance: Provenance = Provenance.MEASURED

    @property
    def loss_change(self) -> float:
        """Smoothed final loss of the pruned run minus that of the unpruned one (> 0: worse)."""
        return self.pruned.final_loss - self.unpruned.final_loss

    def to_dict(self) -> dict[str, Any]:
        def curve(c: LossCurve) -> dict[str, Any]:
            return {"start": c.start, "losses": list(c.losses), "final_loss": c.final_loss, "wall_time_s": c.wall_time_s}

        return {
            "model": self.model,
            "plan": self.plan,
            "data": self.data,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "lr": self.lr,
            "seed": self.seed,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "param_bytes_saved": self.param_bytes_saved,
            "smoothing_steps": SMOOTHING,
            "loss_change": self.loss_change,
            "unpruned": curve(self.unpruned),
            "pruned": curve(self.pruned),
            "provenance": self.provenance.value,
        }


def _param_figures(model: nn.Module) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)




def pruning_probe(
    model: str | nn.Module | ModelSource = "tiny-llama",
    prune: str | Plan = "prune",
    *,
    steps: int = 20,
    batch_size: int = 4,
    seq_len: int = 64,
    lr: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> PruningQuality:
    """Train ``model`` ``steps`` steps unpruned and pruned by ``prune`` (a plan of ``prune``
    cuts, e.g. ``"prune(amount=0.5,scope=mlp)"``) on the same batches; report both curves, the
    loss change and the parameters removed."""
    source = resolve_model(model)
    plan = parse_plan(prune) if isinstance(prune, str) else prune
    if not plan.cuts or any(not c.name.startswith("prune") for c in plan.cuts):
        raise InvalidInputError(
            f"the pruning probe takes pruning cuts only, got {plan.name}", "pass prune=\"prune(amount=0.3)\""
        )
    if steps < SMOOTHING:
        raise InvalidInputError(f"the probe needs at least {SMOOTHING} steps, got {steps}", "pass steps=20 or more")
    source.check_sizes(batch_size, seq_len)
    say = progress or (lambda _msg: None)
    dev = torch.device(check_device(device))
    batches = [source.make_batch(batch_size, seq_len, "cpu", seed=seed + i) for i in range(steps)]
    data = "the model's make_batch (random tokens)"
    pretrained = bool(source.has_pretrained_weights)

    def build() -> nn.Module:
        torch.manual_seed(seed)  # the same weights (random init included) for both runs
        return source.build(dev, pretrained=pretrained)

    base = build()
    count_before, _ = _param_figures(base)
    _, bytes_before = _param_figures(base)
    unpruned = train_curve("unpruned", base, source, batches, lr, dev, say)
    del base
    pruned_model = build()
    ctx = BuildContext(source, dev, Recipe(batch_size=batch_size, seq_len=seq_len))
    for cut in plan.cuts:
        pruned_model = cut.apply_model(pruned_model, ctx)
    count_after, bytes_after = _param_figures(pruned_model)
    pruned = train_curve("pruned", pruned_model, source, batches, lr, dev, say)
    log.info("pruning probe %s on %s: %d → %d parameters", plan.name, source.name, count_before, count_after)
    return PruningQuality(
        model=source.name,
        plan=plan.name,
        data=data,
        steps=steps,
        batch_size=batch_size,
        seq_len=seq_len,
        lr=lr,
        seed=seed,
        params_before=count_before,
        params_after=count_after,
        param_bytes_saved=bytes_before - bytes_after,
        unpruned=unpruned,
        pruned=pruned,
    )
