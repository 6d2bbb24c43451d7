"""DeepSpeed ZeRO-1/2/3 as a distributed strategy cut: ``zero(stage=3,offload_optimizer=cpu)``.

The cut changes nothing in the single-device step: DeepSpeed's partitioning cannot run on fake
tensors, so the simulator replays the local micro-batch without it and lays the model states
out as DeepSpeed 0.19.8 does (:mod:`profilers.simulate.zero`, wired in
:mod:`advisor.engines.zero`). A measured ZeRO run needs DeepSpeed and a launcher.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from advisor.core.errors import PlanError
from advisor.plans.code import TrainingCode
from advisor.plans.registry import register_cut
from advisor.plans.types import Cut
from advisor.plans.view import EstimateView
from profilers.trial import UnsupportedConfiguration

__all__ = ["OFFLOAD_TARGETS", "ZeroCut", "deepspeed_available"]

OFFLOAD_TARGETS = ("none", "cpu")


def deepspeed_available() -> bool:
    """Whether DeepSpeed can be imported here (without importing it)."""
    return importlib.util.find_spec("deepspeed") is not None


@register_cut
@dataclass(frozen=True)
class ZeroCut(Cut):
    """DeepSpeed ZeRO: optimizer state (1), gradients (2) and parameters (3) partitioned over
    the ranks; optimizer state (and with stage 3 parameters) optionally offloaded to host."""

    stage: int = 2
    offload_optimizer: str = "none"
    offload_params: str = "none"

    name = "zero"
    summary = (
        "DeepSpeed ZeRO over --gpus N: stage=1 optimizer state, 2 + gradients, 3 + parameters "
        "partitioned; offload_optimizer=cpu, offload_params=cpu (stage 3)"
    )
    title = "ZeRO"
    group = "strategy"
    order = 95
    opt_in = True  # needs --gpus N: never in a single-GPU sweep
    candidate = False
    distributed = True
    # the 8-bit / 4-bit bitsandbytes paths and Adafactor's factored state are not modelled
    conflicts = frozenset({"qlora", "adamw8bit", "adafactor", "offload", "compile"})

    def __post_init__(self) -> None:
        if self.stage not in (1, 2, 3):
            raise PlanError(f"zero: stage must be 1, 2 or 3, got {self.stage}", "for example zero(stage=3)")
        for key in ("offload_optimizer", "offload_params"):
            value = getattr(self, key)
            if value not in OFFLOAD_TARGETS:
                raise PlanError(f"zero: {key}={value} is not one of none, cpu", f"for example zero({key}=cpu)")
        if self.offload_params != "none" and self.stage != 3:
            raise PlanError(
                f"zero: offload_params needs stage 3 (got stage={self.stage}); DeepSpeed offloads "
                "parameters only under ZeRO-3",
                "write zero(stage=3,offload_params=cpu)",
            )

    @property
    def offloads(self) -> bool:
        """Whether anything is offloaded to the host (optimizer state or parameters)."""
        return self.offload_optimizer != "none" or self.offload_params != "none"

    @property
    def strategy(self) -> str:
        """``zero-3`` and the like, for records and tables."""
        return f"zero-{self.stage}"

    def check_available(self) -> None:
        if not deepspeed_available():
            raise UnsupportedConfiguration(
                "a measured ZeRO run needs DeepSpeed: pip install 'vram-advisor[deepspeed]' "
                "(simulate needs no DeepSpeed)"
            )

    def check_device(self, device: torch.device) -> None:
        # a single-process trial would run the plan without ZeRO and label it ZeRO: refuse it
        # (the simulator takes the cut out and lays out DeepSpeed's partitions itself)
        raise UnsupportedConfiguration(
            f"{self.label()} runs under a DeepSpeed launcher on N GPUs, not in one process: "
            "simulate it with gpus=N (--gpus N)"
        )

    def shape_estimate(self, view: EstimateView) -> None:
        view.notes.append(f"{self.label()}: not in the closed-form estimate; simulate with --gpus N")

    def add_code(self, code: TrainingCode) -> None:
        code.training_arguments["deepspeed"] = '"ds_config.json"'
        code.after_arguments += [
            f"# {self.label()}: ds_config.json is in the report's launch section; launch with",
            "#   deepspeed --num_gpus N train.py   (or accelerate launch --use_deepspeed …)",
        ]
