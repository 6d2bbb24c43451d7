"""The recommender's data: how trials ran, one verdict per plan, path costs, the recommendation.

Frozen dataclasses, each with ``to_dict()`` / ``from_dict()``: the JSON a report keeps, where
every figure is ``{"value", "unit", "provenance"}`` (``input`` for what the user gave,
``catalog`` for the GPU catalog's values). Reading tolerates missing optional keys, so older
and newer files load.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from advisor.catalog.gpus import GpuSpec
from advisor.core.io import SCHEMA_VERSION
from advisor.engines.need import PredictedNeed
from advisor.plans.cuts import CUTS
from advisor.recommend.workload import RankBy, Workload
from profilers.records import Provenance, TrialResult

__all__ = [
    "CATALOG",
    "FAILED",
    "INPUT",
    "KIND",
    "NOT_EVALUATED",
    "TARGET",
    "Mode",
    "PathCost",
    "PlanVerdict",
    "Recommendation",
    "ScratchComparison",
]

KIND = "vram-advisor/recommendation"  # the ``kind`` of a recommendation report

# provenance of figures that are inputs rather than results
INPUT = "input"  # given by the user (workload, a custom budget)
CATALOG = "catalog"  # from the GPU catalog (see gpu.sources)

# PlanVerdict.exclusion values
TARGET = "target"
NOT_EVALUATED = "not-evaluated"
FAILED = "failed"


class Mode(str, enum.Enum):
    """How the trials are run: on the target GPU (measure) or on fake tensors (simulate)."""

    AUTO = "auto"
    MEASURE = "measure"
    SIMULATE = "simulate"


def _fig(value: Any, unit: str, provenance: Provenance | str | None, **more: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    prov = provenance.value if isinstance(provenance, Provenance) else provenance
    return {"value": value, "unit": unit, "provenance": prov, **more}


def _value(d: dict[str, Any] | None) -> Any:
    return None if d is None else d["value"]


def _number(d: dict[str, Any] | None, *, optional: bool = True) -> float | None:
    """A figure's value that must be a number (``None`` allowed when ``optional``): a report
    edited by hand fails here, as a report error, rather than later while it is rendered."""
    value = _value(d)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return value


def _count(d: dict[str, Any] | None) -> int | None:
    """A figure's value that must be a whole number or ``None`` (a parameter count)."""
    value = _number(d)
    if value is not None and not isinstance(value, int):
        raise TypeError(f"expected a whole number, got {value!r}")
    return value


def _prov(d: dict[str, Any] | None) -> Provenance | None:
    if d is None or d.get("provenance") in (None, INPUT, CATALOG):
        return None
    return Provenance(d["provenance"])


@dataclass(frozen=True)
class PlanVerdict:
    """What the recommender found for one plan on the target.

    ``budget_bytes`` is the usable memory (the GPU's memory less the margin); ``fits`` is
    ``need.total_bytes <= budget_bytes``. Throughput is ``measured`` only when the trial ran on
    the target GPU; otherwise it is ``estimated`` from FLOPs and the GPU's peak rate (CPU
    timings are never presented as GPU speed). ``excluded_reason`` is set, and the figures
    empty, for a plan that cannot run on the target at all.
    """

    plan: str
    cuts: tuple[str, ...]
    cut_settings: dict[str, dict[str, Any]]  # per cut: its parameters (for snippets)
    memory_bytes: int  # the GPU's memory
    budget_bytes: int  # usable: memory × (1 − margin)
    trial: TrialResult | None = None
    need: PredictedNeed | None = None
    fits: bool = False
    max_micro_batch: int | None = None  # largest micro-batch that fits (0: not even 1)
    max_micro_batch_provenance: Provenance | None = None
    max_micro_batch_checked: bool = False  # the boundary was checked by trials at b and b + 1
    step_time_s: float | None = None
    tokens_per_s: float | None = None
    throughput_provenance: Provenance | None = None
    train_time_s: float | None = None  # the whole workload
    cost_usd: float | None = None  # the whole workload at the GPU's hourly price
    pareto: bool = False
    why: str = ""
    rank: int = 0  # 1-based among the ranked plans; 0 when excluded
    # the measured timed steps' (max − min) / median, and whether it is over the noise
    # threshold (advisor.recommend.ranking.NOISY_SPREAD): a noisy speed is not ranked on
    timing_spread: float | None = None
    noisy: bool = False
    excluded_reason: str | None = None
    # why it was left out: TARGET (cannot run on the GPU), NOT_EVALUATED (no way to get a
    # number here, e.g. bitsandbytes in simulation) or FAILED (the trial hit a model error)
    exclusion: str | None = None
    # per rank of a distributed plan (schema 2): the cluster shape, and the step time split
    # into compute and communication (need and fits are one rank's; cost is all N GPUs')
    gpus: int = 1
    nodes: int = 1
    comm_bytes_per_step: int | None = None  # what one rank sends per optimizer step
    comm_time_s: float | None = None  # of the step time, estimated from the interconnect

    @property
    def headroom_bytes(self) -> int | None:
        """Usable budget left over (negative: by how much it does not fit)."""
        return None if self.need is None else self.budget_bytes - self.need.total_bytes

    @property
    def need_bytes(self) -> int | None:
        return None if self.need is None else self.need.total_bytes

    @property
    def excluded(self) -> bool:
        return self.excluded_reason is not None

    @property
    def trains_all_parameters(self) -> bool:
        """True for plans that update every weight (what training from scratch needs)."""
        return not any(name in CUTS and CUTS[name].trains_subset for name in self.cuts)

    def to_dict(self) -> dict[str, Any]:
        thr = self.throughput_provenance
        return {
            "rank": self.rank,
            "plan": self.plan,
            "cuts": list(self.cuts),
            "cut_settings": self.cut_settings,
            "fits": self.fits,
            "pareto": self.pareto,
            "why": self.why,
            "excluded_reason": self.excluded_reason,
            "exclusion": self.exclusion,
            "memory": _fig(self.memory_bytes, "bytes", CATALOG),
            "budget": _fig(self.budget_bytes, "bytes", INPUT, note="memory less the safety margin"),
            "need": self.need.to_dict() if self.need is not None else None,
            "headroom": _fig(self.headroom_bytes, "bytes", self.need.provenance if self.need else None),
            "max_micro_batch": _fig(
                self.max_micro_batch,
                "samples",
                self.max_micro_batch_provenance,
                checked=self.max_micro_batch_checked,
            ),
            "step_time": _fig(self.step_time_s, "s", thr),
            "tokens_per_s": _fig(self.tokens_per_s, "tokens/s", thr),
            "timing_spread": _fig(self.timing_spread, "fraction", Provenance.MEASURED),
            "noisy": self.noisy,
            "train_time": _fig(self.train_time_s, "s", thr),
            "cost": _fig(self.cost_usd, "USD", Provenance.ESTIMATED if self.cost_usd is not None else None),
            "trial": self.trial.to_dict() if self.trial is not None else None,
            "gpus": _fig(self.gpus, "GPUs", INPUT),
            "nodes": _fig(self.nodes, "nodes", INPUT),
            "comm_per_step": _fig(self.comm_bytes_per_step, "bytes", Provenance.ESTIMATED if self.comm_bytes_per_step is not None else None, note="sent by one rank per optimizer step"),
            "comm_time": _fig(self.comm_time_s, "s", Provenance.ESTIMATED if self.comm_time_s is not None else None),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlanVerdict:
        trial = d.get("trial")
        need = d.get("need")
        mmb = d.get("max_micro_batch")
        return cls(
            plan=str(d["plan"]),
            cuts=tuple(d["cuts"]),
            cut_settings=dict(d.get("cut_settings") or {}),
            memory_bytes=int(_value(d["memory"])),
            budget_bytes=int(_value(d["budget"])),
            trial=TrialResult.from_dict(trial) if trial is not None else None,
            need=PredictedNeed.from_dict(need) if need is not None else None,
            fits=bool(d["fits"]),
            max_micro_batch=_value(mmb),
            max_micro_batch_provenance=_prov(mmb),
            max_micro_batch_checked=bool(mmb.get("checked", False)) if mmb else False,
            step_time_s=_value(d.get("step_time")),
            tokens_per_s=_value(d.get("tokens_per_s")),
            throughput_provenance=_prov(d.get("tokens_per_s")),
            train_time_s=_value(d.get("train_time")),
            cost_usd=_value(d.get("cost")),
            pareto=bool(d.get("pareto", False)),
            why=str(d.get("why", "")),
            rank=int(d.get("rank", 0)),
            timing_spread=_value(d.get("timing_spread")),
            noisy=bool(d.get("noisy", False)),
            excluded_reason=d.get("excluded_reason"),
            exclusion=d.get("exclusion"),
            gpus=int(_value(d.get("gpus")) or 1),  # schema 1: one GPU
            nodes=int(_value(d.get("nodes")) or 1),
            comm_bytes_per_step=_value(d.get("comm_per_step")),
            comm_time_s=_value(d.get("comm_time")),
        )


@dataclass(frozen=True)
class PathCost:
    """Total cost of one path to a trained model on the target GPU."""

    label: str  # "fine-tune" or "from scratch"
    tokens: float
    tokens_basis: str  # where the token count comes from
    plan: str | None  # the plan whose speed is used
    fits: bool
    tokens_per_s: float | None
    throughput_provenance: Provenance | None
    time_s: float | None
    cost_usd: float | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        est = Provenance.ESTIMATED
        return {
            "label": self.label,
            "tokens": _fig(self.tokens, "tokens", INPUT if self.label == "fine-tune" else est),
            "tokens_basis": self.tokens_basis,
            "plan": self.plan,
            "fits": self.fits,
            "tokens_per_s": _fig(self.tokens_per_s, "tokens/s", self.throughput_provenance),
            "time": _fig(self.time_s, "s", self.throughput_provenance),
            "cost": _fig(self.cost_usd, "USD", est if self.cost_usd is not None else None),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PathCost:
        return cls(
            label=str(d["label"]),
            tokens=float(_number(d["tokens"], optional=False) or 0),
            tokens_basis=str(d.get("tokens_basis", "")),
            plan=d.get("plan"),
            fits=bool(d.get("fits", False)),
            tokens_per_s=_number(d.get("tokens_per_s")),
            throughput_provenance=_prov(d.get("tokens_per_s")),
            time_s=_number(d.get("time")),
            cost_usd=_number(d.get("cost")),
            note=str(d.get("note", "")),
        )


@dataclass(frozen=True)
class ScratchComparison:
    """Fine-tuning on the user's data vs training from scratch (~20 tokens per parameter)."""

    parameters: int
    finetune: PathCost
    scratch: PathCost

    @property
    def ratio(self) -> float | None:
        """How many times more the scratch path costs (time and cost scale alike)."""
        if self.finetune.time_s and self.scratch.time_s:
            return self.scratch.time_s / self.finetune.time_s
        return None

    def to_dict(self, parameters_provenance: str = Provenance.ESTIMATED.value) -> dict[str, Any]:
        """``parameters_provenance``: where the parameter count comes from (the trials')."""
        return {
            "parameters": _fig(self.parameters, "params", parameters_provenance),
            "finetune": self.finetune.to_dict(),
            "scratch": self.scratch.to_dict(),
            "scratch_over_finetune": self.ratio,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScratchComparison:
        return cls(
            parameters=int(_number(d["parameters"], optional=False) or 0),
            finetune=PathCost.from_dict(d["finetune"]),
            scratch=PathCost.from_dict(d["scratch"]),
        )


@dataclass(frozen=True)
class Recommendation:
    """The ranked plans for one model on one target GPU and workload.

    ``ranked`` holds every plan that ran, fitting plans first (by time, or cost), then the
    ones that do not fit (closest first); ``excluded`` the plans that cannot run on the target,
    each with its reason. ``best`` is the top fitting plan, or ``None`` when nothing fits.
    Rendering (JSON text, Markdown, SVG, files) is the report layer's:
    :class:`advisor.report.Advice` is this with those methods.
    """

    model: str
    gpu: GpuSpec
    workload: Workload
    rank_by: RankBy
    mode: Mode  # how the trials ran: measure (on the target) or simulate
    ranked: tuple[PlanVerdict, ...]
    excluded: tuple[PlanVerdict, ...] = ()
    comparison: ScratchComparison | None = None
    model_parameters: int | None = None
    model_task: str = "causal-lm"  # "causal-lm", "masked-lm" or "custom" (a plain nn.Module)
    environment: dict[str, Any] = field(default_factory=dict)
    command: str = ""  # the CLI command that reproduces this report
    notes: tuple[str, ...] = ()

    @property
    def best(self) -> PlanVerdict | None:
        return next((v for v in self.ranked if v.fits), None)

    @property
    def fitting(self) -> tuple[PlanVerdict, ...]:
        return tuple(v for v in self.ranked if v.fits)

    @property
    def budget_bytes(self) -> int:
        return self.workload.usable_bytes(self.gpu.memory_bytes)

    @property
    def parameters_provenance(self) -> str:
        """Where the model's parameter count comes from (the first trial that counted it)."""
        for v in self.ranked:
            if v.trial is not None and v.trial.params is not None:
                return v.trial.params.provenance.value
        return Provenance.SIMULATED.value if self.mode is Mode.SIMULATE else Provenance.MEASURED.value

    def verdict(self, plan: str) -> PlanVerdict:
        """The verdict (ranked or excluded) of the plan named ``plan``."""
        for v in (*self.ranked, *self.excluded):
            if v.plan == plan:
                return v
        names = ", ".join(v.plan for v in (*self.ranked, *self.excluded))
        raise KeyError(f"no plan {plan!r} in this recommendation (plans: {names})")

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-safe dict (``schema_version``, ``kind``, figures with units and
        provenance)."""
        w = self.workload
        best = self.best
        params_prov = self.parameters_provenance
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "environment": self.environment,
            "command": self.command,
            "mode": self.mode.value,
            "rank_by": self.rank_by.value,
            "model": {
                "name": self.model,
                "task": self.model_task,
                "parameters": _fig(self.model_parameters, "params", params_prov),
            },
            "gpu": self.gpu.to_dict(),
            "workload": {
                "micro_batch": _fig(w.micro_batch, "samples", INPUT),
                "seq_len": _fig(w.seq_len, "tokens", INPUT),
                "dataset_tokens": _fig(w.dataset_tokens, "tokens", INPUT),
                "epochs": _fig(w.epochs, "epochs", INPUT),
                "margin": _fig(w.margin, "fraction", INPUT),
                "total_tokens": _fig(w.total_tokens, "tokens", INPUT),
                **({"lengths": w.lengths.to_dict()} if w.lengths is not None else {}),
            },
            "budget": _fig(self.budget_bytes, "bytes", INPUT, memory_bytes=self.gpu.memory_bytes),
            "best": best.plan if best is not None else None,
            "ranked": [v.to_dict() for v in self.ranked],
            "excluded": [v.to_dict() for v in self.excluded],
            "comparison": None if self.comparison is None else self.comparison.to_dict(params_prov),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recommendation:
        """Inverse of :meth:`to_dict` (``KeyError``/``TypeError``/``ValueError`` on a damaged
        dict; :func:`advisor.report.from_json` turns those into a :class:`ReportError`)."""
        w = data["workload"]
        cmp_ = data.get("comparison")
        model = data["model"]
        return cls(
            model=str(model["name"]),
            gpu=GpuSpec.from_dict(data["gpu"]),
            workload=Workload(
                micro_batch=_value(w["micro_batch"]),
                seq_len=_value(w["seq_len"]),
                dataset_tokens=_value(w["dataset_tokens"]),
                epochs=_value(w["epochs"]),
                margin=_value(w["margin"]),
            ),
            rank_by=RankBy(data.get("rank_by", RankBy.TIME.value)),
            mode=Mode(data.get("mode", Mode.SIMULATE.value)),
            ranked=tuple(PlanVerdict.from_dict(v) for v in data["ranked"]),
            excluded=tuple(PlanVerdict.from_dict(v) for v in data.get("excluded", [])),
            comparison=None if cmp_ is None else ScratchComparison.from_dict(cmp_),
            model_parameters=_count(model.get("parameters")),
            model_task=str(model.get("task", "causal-lm")),
            environment=dict(data.get("environment") or {}),
            command=str(data.get("command", "")),
            notes=tuple(data.get("notes", [])),
        )
