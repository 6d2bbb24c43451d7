"""What reading a training config gives: :class:`ConfigPlan` (the plan, sizes, model, and every
key that was ignored), the errors, and :class:`Reading`, the accumulator each format's reader
fills and :func:`Reading.finish` turns into a plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from advisor.core.errors import InvalidInputError
from advisor.plans.cuts import Accumulation, Compile, OptimizerImplementation
from advisor.plans.registry import CUTS
from advisor.plans.types import Cut, Plan

__all__ = [
    "ConfigConflictError",
    "ConfigError",
    "ConfigFormat",
    "ConfigNotSupportedError",
    "ConfigPlan",
    "Reading",
]


NO_BATCH_NOTE = "no batch size in the config: micro-batch 1 assumed"
GPUS_UNKNOWN_NOTE = "the config does not say how many GPUs: give gpus (--gpus N)"


class ConfigError(InvalidInputError):
    """A training config that cannot be read: not a format the advisor knows, or a bad value."""


class ConfigConflictError(ConfigError):
    """A training config that contradicts itself (bf16 and fp16 both on, 4-bit and 8-bit, …)."""


class ConfigNotSupportedError(ConfigError):
    """A config the advisor reads but cannot plan for (kept for callers that catch it; DeepSpeed
    and accelerate configs are read since multi-GPU plans exist)."""


class ConfigFormat(str, Enum):
    """The config formats :func:`advisor.plan_from_config` reads."""

    TRAINING_ARGUMENTS = "training-arguments"  # transformers.TrainingArguments JSON / kwargs
    PEFT = "peft"  # adapter_config.json / LoraConfig
    BITSANDBYTES = "bitsandbytes"  # BitsAndBytesConfig
    AXOLOTL = "axolotl"
    TORCHTUNE = "torchtune"
    DEEPSPEED = "deepspeed"
    ACCELERATE = "accelerate"


@dataclass(frozen=True)
class ConfigPlan:
    """A training config read into the advisor's terms.

    ``batch_size`` is the effective batch of one optimizer step (``micro_batch_size`` ×
    accumulation steps, per GPU); the plan holds ``accum(steps=N)`` when N > 1. ``seq_len`` and
    ``model`` are ``None`` where the config does not say; ``gpus`` (all ranks) and ``nodes`` come
    from a multi-GPU config (``gpus`` is ``None`` where it does not say how many). ``mapped`` lists (key, what it became);
    ``ignored`` (key, value) every key that was not understood; ``notes`` what was assumed.
    """

    formats: tuple[ConfigFormat, ...]
    plan: Plan
    micro_batch_size: int
    accumulation_steps: int
    seq_len: int | None = None
    model: str | None = None
    mapped: tuple[tuple[str, str], ...] = ()
    ignored: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    gpus: int | None = None  # GPUs in all (a multi-GPU config; None: not said, or one GPU)
    nodes: int = 1

    @classmethod
    def for_plan(
        cls, plan: Plan, batch_size: int, seq_len: int | None = None, model: str | None = None,
        gpus: int | None = None, nodes: int = 1,
    ) -> ConfigPlan:
        """The config view of ``plan`` run at ``batch_size`` samples per step (split by its
        ``accum`` cut, as a trial runs it): what the writers of :mod:`advisor.report.configs`
        take."""
        steps = next((int(getattr(c, "steps", 1)) for c in plan.cuts if c.name == "accum"), 1)
        return cls(formats=(), plan=plan, micro_batch_size=max(1, batch_size // steps), accumulation_steps=steps,
                   seq_len=seq_len, model=model, gpus=gpus, nodes=nodes)  # fmt: skip

    @property
    def batch_size(self) -> int:
        return self.micro_batch_size * self.accumulation_steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe."""
        return {
            "formats": [f.value for f in self.formats],
            "plan": self.plan.name,
            "batch_size": self.batch_size,
            "micro_batch_size": self.micro_batch_size,
            "accumulation_steps": self.accumulation_steps,
            "seq_len": self.seq_len,
            "model": self.model,
            "gpus": self.gpus,
            "nodes": self.nodes,
            "mapped": [{"key": k, "as": v} for k, v in self.mapped],
            "ignored": [{"key": k, "value": v} for k, v in self.ignored],
            "notes": list(self.notes),
        }


@dataclass
class Reading:
    """What the readers found so far; a value set twice differently is a contradiction."""

    formats: list[ConfigFormat] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # "micro_batch", "precision", "optimizer", …
    origin: dict[str, str] = field(default_factory=dict)  # value name → the key that set it
    lora: dict[str, Any] | None = None  # r, alpha, dropout, targets
    quant: dict[str, Any] | None = None  # bits, compute_dtype, quant_type, double_quant, quant_storage
    mapped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def set(self, name: str, value: Any, key: str, meaning: str | None = None) -> None:
        """Record ``name = value`` read from ``key``; a different earlier value is a conflict."""
        if name in self.values and self.values[name] != value:
            raise ConfigConflictError(
                f"contradictory config: {self.origin[name]} gives {name} {self.values[name]!r} "
                f"but {key} gives {value!r}",
                f"keep one {name} in the config(s)",
            )
        self.values[name] = value
        self.origin[name] = key
        self.mapped.append((key, meaning or f"{name}={value}"))

    def ignore(self, key: str, value: Any, why: str = "") -> None:
        text = _short(value) + (f" ({why})" if why else "")
        self.ignored.append((key, text))

    def set_lora(self, key: str, **params: Any) -> None:
        given = {k: v for k, v in params.items() if v is not None}
        old = self.lora or {}
        for k, v in given.items():
            if k in old and old[k] != v:
                raise ConfigConflictError(
                    f"contradictory config: LoRA {k} is {_short(old[k])} in one place and {_short(v)} in {key}",
                    "keep one adapter setting",
                )
        self.lora = {**old, **given}
        self.mapped.append((key, ", ".join(f"{k}={_short(v)}" for k, v in given.items())))

    def set_quant(self, key: str, **params: Any) -> None:
        given = {k: v for k, v in params.items() if v is not None}
        old = self.quant or {}
        for k, v in given.items():
            if k in old and old[k] != v:
                raise ConfigConflictError(
                    f"contradictory config: quantization {k} is {old[k]!r} in one place and {v!r} in {key}",
                    "keep one quantization setting",
                )
        self.quant = {**old, **given}
        self.mapped.append((key, "qlora: " + ", ".join(f"{k}={_short(v)}" for k, v in given.items())))

    def finish(self) -> ConfigPlan:
        """The plan: LoRA/QLoRA, checkpointing, precision, optimizer and its implementation,
        accumulation, attention, offload, compile — from what was read."""
        v = self.values
        cuts: list[Cut] = []
        lora = dict(self.lora or {})
        if self.quant is not None:
            cuts.append(CUTS["qlora"](**lora, **self.quant))
        elif self.lora is not None:
            cuts.append(CUTS["lora"](**lora))
        precision = v.get("precision")
        if precision is not None:
            cuts.append(CUTS[precision]())
        for name in ("grad-ckpt", "offload", "eager-attn", "sdpa-attn"):
            if v.get(name):
                cuts.append(CUTS[name]())
        if v.get("compile"):
            cuts.append(Compile(backend=v.get("compile_backend", "inductor")))
        optimizer = v.get("optimizer")
        if optimizer is not None:
            kwargs = v.get("optimizer_kwargs") or {}
            cuts.append(CUTS[optimizer](**kwargs))
        impl = v.get("optimizer_impl")
        if impl is not None:
            cuts.append(OptimizerImplementation(kind=impl))
        micro = int(v.get("micro_batch", 1))
        if "micro_batch" not in v:
            self.notes.append(NO_BATCH_NOTE)
        steps = int(v.get("accumulation", 1))
        if steps > 1:
            cuts.append(Accumulation(steps=steps))
        strategy = v.get("strategy")
        if strategy is not None:
            cuts.append(strategy)
        gpus = v.get("gpus")
        total = v.get("train_batch_size")
        if total is not None:  # DeepSpeed: train_batch_size = micro-batch × accumulation × GPUs
            world, rest = divmod(total, micro * steps)
            if rest or (gpus is not None and world != gpus):
                raise ConfigConflictError(
                    f"contradictory config: {self.origin['train_batch_size']} {total} is not micro-batch {micro} × "
                    f"accumulation {steps} × {gpus if gpus is not None else 'a whole number of'} GPUs",
                    "drop train_batch_size (DeepSpeed derives it), or make the three agree",
                )
            gpus = world
        if strategy is not None and gpus is None:
            self.notes.append(GPUS_UNKNOWN_NOTE)
        plan = Plan.of(cuts)
        why = plan.conflict()
        if why is not None:
            raise ConfigConflictError(
                f"the config gives a plan that cannot run: {why}", "remove one of the two settings"
            )
        return ConfigPlan(
            formats=tuple(dict.fromkeys(self.formats)),
            plan=plan,
            micro_batch_size=micro,
            accumulation_steps=steps,
            seq_len=v.get("seq_len"),
            model=v.get("model"),
            mapped=tuple(self.mapped),
            ignored=tuple(self.ignored),
            notes=tuple(dict.fromkeys(self.notes)),
            gpus=gpus,
            nodes=int(v.get("nodes", 1)),
        )


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        value = "|".join(str(v) for v in value)
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "…"
