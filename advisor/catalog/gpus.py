"""GPU catalog: memory, bandwidth, throughput and a typical price for the GPUs people train on.

Conventions (every figure keeps its unit in its name):

* ``memory_bytes`` is the marketed device memory read as GiB (2**30 bytes), the way
  ``nvidia-smi`` reports it (roughly: an "80 GB" H100 shows 81,559 MiB ≈ 79.6 GiB after the
  driver's reservation). It is a ceiling; what a process can allocate is a little less.
* ``bandwidth_bytes_per_s`` uses the vendor's decimal unit (1 GB/s = 10**9 bytes/s).
* Throughputs are peak TFLOPS (10**12 FLOP/s) without structured sparsity. ``bf16_tflops`` and
  ``fp16_tflops`` are tensor-core rates with FP32 accumulate (GeForce cards run that at half
  the FP16-accumulate rate); ``fp32_tflops`` is the non-tensor FP32 rate.
* ``price_usd_per_hour`` is a typical late-2025 on-demand rate for one GPU (data-centre parts:
  public clouds and GPU clouds; consumer cards: marketplaces such as vast.ai or RunPod). Prices
  move; they are estimates, and :meth:`GpuSpec.with_price` overrides one.

Each entry records where every numeric figure came from in ``sources``.

Lookup (:func:`get_gpu`) is forgiving: case, spaces, ``_`` and ``-`` are ignored, and so are
vendor words ("NVIDIA", "GeForce", "Tesla", "AMD", "Instinct", …) and the "RTX" prefix, so
"4090", "rtx-4090" and "NVIDIA GeForce RTX 4090" all name the RTX 4090. A bare family name
means the most widely rented variant: "a100" is ``a100-80gb``, "h100" is ``h100-sxm`` and
"v100" is ``v100-16gb``. A trailing memory size is checked against the entry ("h100 80gb").
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from advisor.core.errors import InvalidInputError, UnknownGpuError
from advisor.core.units import format_budget, parse_memory  # noqa: F401  (parse_memory: old home)

__all__ = [
    "CATALOG",
    "NUMERIC_FIELDS",
    "VENDORS",
    "GpuSpec",
    "custom_gpu",
    "get_gpu",
    "list_gpus",
]

logger = logging.getLogger(__name__)

_GIB = 2**30
_MIB = 2**20

VENDORS: tuple[str, ...] = ("amd", "intel", "nvidia", "unknown")

# Fields whose values are numbers; each must have an entry in ``GpuSpec.sources``.
NUMERIC_FIELDS: tuple[str, ...] = (
    "memory_bytes",
    "bandwidth_bytes_per_s",
    "bf16_tflops",
    "fp16_tflops",
    "fp32_tflops",
    "price_usd_per_hour",
)

_CATALOG_HINT = "run `vram-advisor gpus` to list the catalog, or give a budget with --gpu-mem 22GiB"


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model: memory, bandwidth, dense throughput, price, and where each figure came from."""

    key: str  # canonical slug, e.g. "rtx-4090"
    name: str  # display name
    vendor: str  # one of VENDORS
    memory_bytes: int  # marketed memory as GiB, raw bytes
    bandwidth_bytes_per_s: float  # decimal bytes per second
    bf16_tflops: float | None  # dense tensor BF16, FP32 accumulate; None without BF16 support
    fp16_tflops: float  # dense tensor FP16, FP32 accumulate
    fp32_tflops: float  # non-tensor FP32
    supports_bf16: bool
    price_usd_per_hour: float  # typical on-demand price of one GPU, estimate
    architecture: str  # "Turing", "Ampere", "Ada", "Hopper", "Blackwell", "CDNA3", …
    aliases: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()  # (field name, where the figure came from)

    def __post_init__(self) -> None:
        where = f"GPU entry {self.key!r}"
        if not isinstance(self.key, str) or not self.key.strip() or any(c.isspace() for c in self.key):
            raise InvalidInputError(
                f"GPU key {self.key!r} is empty or contains spaces",
                hint="use a slug such as 'rtx-4090'",
            )
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(f"{where} has an empty name", hint="give a display name")
        if self.vendor not in VENDORS:
            raise InvalidInputError(
                f"{where} has vendor {self.vendor!r}",
                hint=f"vendor must be one of: {', '.join(VENDORS)}",
            )
        if isinstance(self.memory_bytes, bool) or not isinstance(self.memory_bytes, int):
            raise InvalidInputError(
                f"{where}: memory_bytes must be an int, got {type(self.memory_bytes).__name__}",
                hint="give raw bytes, e.g. 24 * 1024**3",
            )
        _check_positive(where, "memory_bytes", self.memory_bytes)
        _check_positive(where, "bandwidth_bytes_per_s", self.bandwidth_bytes_per_s)
        _check_positive(where, "fp16_tflops", self.fp16_tflops)
        _check_positive(where, "fp32_tflops", self.fp32_tflops)
        _check_positive(where, "price_usd_per_hour", self.price_usd_per_hour)
        if not isinstance(self.supports_bf16, bool):
            raise InvalidInputError(f"{where}: supports_bf16 must be a bool", hint="use true or false")
        if self.supports_bf16 != (self.bf16_tflops is not None):
            raise InvalidInputError(
                f"{where}: supports_bf16={self.supports_bf16} but bf16_tflops={self.bf16_tflops}",
                hint="bf16_tflops is None exactly when the GPU has no BF16 support",
            )
        if self.bf16_tflops is not None:
            _check_positive(where, "bf16_tflops", self.bf16_tflops)
        if not isinstance(self.architecture, str) or not self.architecture.strip():
            raise InvalidInputError(f"{where} has no architecture", hint="e.g. 'Ampere'")
        if not isinstance(self.aliases, tuple) or not all(
            isinstance(a, str) and a.strip() for a in self.aliases
        ):
            raise InvalidInputError(
                f"{where}: aliases must be a tuple of non-empty strings",
                hint="use GpuSpec.from_dict() to load lists from JSON",
            )
        self._check_sources(where)

    def _check_sources(self, where: str) -> None:
        if not isinstance(self.sources, tuple):
            raise InvalidInputError(
                f"{where}: sources must be a tuple of (field, source) pairs",
                hint="use GpuSpec.from_dict() to load lists from JSON",
            )
        field_names = {f.name for f in dataclasses.fields(self)}
        seen: set[str] = set()
        for pair in self.sources:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise InvalidInputError(
                    f"{where}: source entry {pair!r} is not a (field, source) pair of strings",
                    hint="e.g. ('memory_bytes', 'NVIDIA RTX 4090 spec page')",
                )
            field, text = pair
            if field not in field_names:
                raise InvalidInputError(
                    f"{where}: source given for unknown field {field!r}",
                    hint=f"fields: {', '.join(sorted(field_names))}",
                )
            if field in seen:
                raise InvalidInputError(f"{where}: two sources for {field!r}", hint="keep one")
            if not text.strip():
                raise InvalidInputError(
                    f"{where}: empty source for {field!r}",
                    hint="say where it came from",
                )
            seen.add(field)
        missing = [f for f in NUMERIC_FIELDS if f not in seen]
        if missing:
            raise InvalidInputError(
                f"{where}: no source for {', '.join(missing)}",
                hint="every numeric field needs a (field, source) entry in sources",
            )

    def source(self, field: str) -> str:
        """Where the figure in ``field`` came from."""
        for name, text in self.sources:
            if name == field:
                return text
        raise InvalidInputError(
            f"GPU entry {self.key!r} has no source for {field!r}",
            hint=f"fields with sources: {', '.join(name for name, _ in self.sources)}",
        )

    def _with_source(self, field: str, text: str) -> tuple[tuple[str, str], ...]:
        return tuple((name, text if name == field else old) for name, old in self.sources)

    def with_price(self, price_usd_per_hour: float) -> GpuSpec:
        """A copy with another hourly price (yours, or a current quote)."""
        _check_override("price_usd_per_hour", price_usd_per_hour, "e.g. 1.99 for $1.99 per GPU-hour")
        return dataclasses.replace(
            self,
            price_usd_per_hour=float(price_usd_per_hour),
            sources=self._with_source("price_usd_per_hour", "overridden by the user"),
        )

    def with_memory(self, memory_bytes: int) -> GpuSpec:
        """A copy with another memory size (e.g. what is actually free on the device)."""
        if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int):
            raise InvalidInputError(
                f"memory_bytes must be an int of bytes, got {memory_bytes!r}",
                hint="use parse_memory('22GiB') to turn text into bytes",
            )
        _check_override("memory_bytes", memory_bytes, "use parse_memory('22GiB') for a budget")
        return dataclasses.replace(
            self,
            memory_bytes=memory_bytes,
            sources=self._with_source("memory_bytes", "overridden by the user"),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists), keys in sorted order."""
        raw: dict[str, Any] = {
            "aliases": list(self.aliases),
            "architecture": self.architecture,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "bf16_tflops": self.bf16_tflops,
            "fp16_tflops": self.fp16_tflops,
            "fp32_tflops": self.fp32_tflops,
            "key": self.key,
            "memory_bytes": self.memory_bytes,
            "name": self.name,
            "price_usd_per_hour": self.price_usd_per_hour,
            "sources": [[field, text] for field, text in self.sources],
            "supports_bf16": self.supports_bf16,
            "vendor": self.vendor,
        }
        return dict(sorted(raw.items()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GpuSpec:
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored with a warning."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"a GPU entry must be a JSON object, got {type(data).__name__}",
                hint="write it with GpuSpec.to_dict()",
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("ignoring unknown GPU entry keys: %s", ", ".join(map(str, unknown)))
        required = known - {"aliases", "sources"}
        missing = sorted(required - set(data))
        if missing:
            raise InvalidInputError(
                f"GPU entry {data.get('key')!r} lacks {', '.join(missing)}",
                hint="write it with GpuSpec.to_dict()",
            )
        return cls(
            key=_as_str(data, "key"),
            name=_as_str(data, "name"),
            vendor=_as_str(data, "vendor"),
            memory_bytes=_as_int(data, "memory_bytes"),
            bandwidth_bytes_per_s=_as_float(data, "bandwidth_bytes_per_s"),
            bf16_tflops=None if data["bf16_tflops"] is None else _as_float(data, "bf16_tflops"),
            fp16_tflops=_as_float(data, "fp16_tflops"),
            fp32_tflops=_as_float(data, "fp32_tflops"),
            supports_bf16=_as_bool(data, "supports_bf16"),
            price_usd_per_hour=_as_float(data, "price_usd_per_hour"),
            architecture=_as_str(data, "architecture"),
            aliases=tuple(_as_str_list(data.get("aliases", []), "aliases")),
            sources=_as_sources(data.get("sources", [])),
        )


# ---------------------------------------------------------------------------------------------
# validation helpers


def _check_positive(where: str, field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(
            f"{where}: {field} must be a number, got {value!r}",
            hint=f"give {field} as a number > 0",
        )
    if not (value > 0 and math.isfinite(value)):
        raise InvalidInputError(
            f"{where}: {field} must be > 0 and finite, got {value!r}",
            hint=f"give {field} > 0",
        )


def _check_override(field: str, value: object, hint: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 and math.isfinite(value))
    ):
        raise InvalidInputError(f"{field} must be a finite number > 0, got {value!r}", hint=hint)


def _bad_type(field: str, value: object, expected: str) -> InvalidInputError:
    return InvalidInputError(
        f"GPU entry field {field!r} must be {expected}, got {value!r}",
        hint="write it with GpuSpec.to_dict()",
    )


def _as_str(data: Mapping[str, Any], field: str) -> str:
    value = data[field]
    if not isinstance(value, str):
        raise _bad_type(field, value, "a string")
    return value


def _as_int(data: Mapping[str, Any], field: str) -> int:
    value = data[field]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(field, value, "a whole number")
    return value


def _as_float(data: Mapping[str, Any], field: str) -> float:
    value = data[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad_type(field, value, "a number")
    return float(value)


def _as_bool(data: Mapping[str, Any], field: str) -> bool:
    value = data[field]
    if not isinstance(value, bool):
        raise _bad_type(field, value, "true or false")
    return value


def _as_str_list(value: object, field: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _bad_type(field, value, "a list of strings")
    return list(value)


def _as_sources(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, (list, tuple)):
        raise _bad_type("sources", value, "a list of [field, source] pairs")
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise _bad_type("sources", item, "a [field, source] pair")
        field, text = _as_str_list(item, "sources")
        pairs.append((field, text))
    return tuple(pairs)


# ---------------------------------------------------------------------------------------------
# catalog

_PRICE_CLOUD = "typical late-2025 on-demand GPU-cloud rate (Lambda/RunPod class), estimate"
_PRICE_MARKET = "typical late-2025 marketplace rental rate (vast.ai/RunPod community), estimate"


def _gpu(
    key: str,
    name: str,
    *,
    architecture: str,
    memory_gib: int,
    bandwidth_gb_per_s: float,
    bf16_tflops: float | None,
    fp16_tflops: float,
    fp32_tflops: float,
    price_usd_per_hour: float,
    aliases: Iterable[str],
    spec: str,
    tensor: str,
    price: str,
    vendor: str = "nvidia",
    overrides: Mapping[str, str] | None = None,
) -> GpuSpec:
    """Build a catalog entry; ``spec`` sources memory/bandwidth/FP32, ``tensor`` the tensor rates."""
    sources = {
        "memory_bytes": f"{spec} (marketed size, read as GiB)",
        "bandwidth_bytes_per_s": spec,
        "bf16_tflops": tensor if bf16_tflops is not None else f"no BF16 tensor support ({architecture})",
        "fp16_tflops": tensor,
        "fp32_tflops": spec,
        "price_usd_per_hour": price,
    }
    sources.update(overrides or {})
    return GpuSpec(
        key=key,
        name=name,
        vendor=vendor,
        memory_bytes=memory_gib * _GIB,
        bandwidth_bytes_per_s=bandwidth_gb_per_s * 1e9,
        bf16_tflops=bf16_tflops,
        fp16_tflops=fp16_tflops,
        fp32_tflops=fp32_tflops,
        supports_bf16=bf16_tflops is not None,
        price_usd_per_hour=price_usd_per_hour,
        architecture=architecture,
        aliases=tuple(aliases),
        sources=tuple(sources.items()),
    )


_GA102_WP = "NVIDIA Ampere GA102 GPU architecture whitepaper"
_ADA_WP = "NVIDIA Ada Lovelace GPU architecture whitepaper"
_DERIVED_AMPERE = (
    "derived: GeForce Ampere tensor FP16/BF16 with FP32 accumulate = 2x the FP32 rate "
    "(ratio from the GA102 whitepaper), dense"
)
_DERIVED_ADA = (
    "derived: GeForce Ada tensor FP16/BF16 with FP32 accumulate = 2x the FP32 rate "
    "(ratio from the Ada whitepaper), dense"
)

# fmt: off
CATALOG: tuple[GpuSpec, ...] = (
    _gpu(
        "t4", "NVIDIA Tesla T4",
        architecture="Turing", memory_gib=16, bandwidth_gb_per_s=320,
        bf16_tflops=None, fp16_tflops=65.0, fp32_tflops=8.1, price_usd_per_hour=0.35,
        aliases=("tesla t4", "nvidia t4"),
        spec="NVIDIA T4 datasheet",
        tensor="NVIDIA T4 datasheet: mixed-precision FP16/FP32 tensor, dense",
        price="typical late-2025 on-demand cloud rate (GCP/AWS class), estimate",
    ),
    _gpu(
        "l4", "NVIDIA L4",
        architecture="Ada", memory_gib=24, bandwidth_gb_per_s=300,
        bf16_tflops=121.0, fp16_tflops=121.0, fp32_tflops=30.3, price_usd_per_hour=0.70,
        aliases=("nvidia l4",),
        spec="NVIDIA L4 datasheet",
        tensor="NVIDIA L4 datasheet: 242 TFLOPS with sparsity, halved to dense",
        price="typical late-2025 on-demand cloud rate (GCP g2 class), estimate",
    ),
    _gpu(
        "a10", "NVIDIA A10",
        architecture="Ampere", memory_gib=24, bandwidth_gb_per_s=600,
        bf16_tflops=125.0, fp16_tflops=125.0, fp32_tflops=31.2, price_usd_per_hour=0.75,
        aliases=("nvidia a10",),
        spec="NVIDIA A10 datasheet",
        tensor="NVIDIA A10 datasheet: 250 TFLOPS with sparsity, halved to dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "a10g", "NVIDIA A10G",
        architecture="Ampere", memory_gib=24, bandwidth_gb_per_s=600,
        bf16_tflops=70.0, fp16_tflops=70.0, fp32_tflops=35.0, price_usd_per_hour=1.01,
        aliases=("nvidia a10g", "aws a10g"),
        spec="AWS EC2 G5 (A10G) published figures; no public NVIDIA datasheet",
        tensor="AWS-published A10G tensor rate, dense; uncertain (AWS-only part)",
        price="AWS g5.xlarge on-demand (us-east-1, includes 4 vCPUs), late 2025, estimate",
    ),
    _gpu(
        "rtx-3060", "NVIDIA GeForce RTX 3060 12GB",
        architecture="Ampere", memory_gib=12, bandwidth_gb_per_s=360,
        bf16_tflops=25.5, fp16_tflops=25.5, fp32_tflops=12.7, price_usd_per_hour=0.08,
        aliases=("rtx 3060 12gb", "geforce rtx 3060"),
        spec="NVIDIA GeForce RTX 3060 spec page (3584 CUDA cores at 1.78 GHz)",
        tensor=_DERIVED_AMPERE,
        price=_PRICE_MARKET,
    ),
    _gpu(
        "rtx-3080", "NVIDIA GeForce RTX 3080 10GB",
        architecture="Ampere", memory_gib=10, bandwidth_gb_per_s=760,
        bf16_tflops=59.5, fp16_tflops=59.5, fp32_tflops=29.8, price_usd_per_hour=0.15,
        aliases=("rtx 3080 10gb", "geforce rtx 3080"),
        spec=_GA102_WP,
        tensor=f"{_GA102_WP}: FP16/BF16 tensor with FP32 accumulate, dense",
        price=_PRICE_MARKET,
    ),
    _gpu(
        "rtx-3090", "NVIDIA GeForce RTX 3090",
        architecture="Ampere", memory_gib=24, bandwidth_gb_per_s=936,
        bf16_tflops=71.0, fp16_tflops=71.0, fp32_tflops=35.6, price_usd_per_hour=0.22,
        aliases=("geforce rtx 3090",),
        spec=_GA102_WP,
        tensor=f"{_GA102_WP}: FP16/BF16 tensor with FP32 accumulate, dense",
        price=_PRICE_MARKET,
    ),
    _gpu(
        "rtx-4060-ti-16gb", "NVIDIA GeForce RTX 4060 Ti 16GB",
        architecture="Ada", memory_gib=16, bandwidth_gb_per_s=288,
        bf16_tflops=44.1, fp16_tflops=44.1, fp32_tflops=22.1, price_usd_per_hour=0.12,
        aliases=("rtx 4060 ti", "rtx 4060ti", "geforce rtx 4060 ti"),
        spec="NVIDIA GeForce RTX 4060 Ti spec page",
        tensor=_DERIVED_ADA,
        price=_PRICE_MARKET,
    ),
    _gpu(
        "rtx-4080", "NVIDIA GeForce RTX 4080",
        architecture="Ada", memory_gib=16, bandwidth_gb_per_s=716.8,
        bf16_tflops=97.5, fp16_tflops=97.5, fp32_tflops=48.7, price_usd_per_hour=0.25,
        aliases=("rtx 4080 16gb", "geforce rtx 4080"),
        spec=_ADA_WP,
        tensor=f"{_ADA_WP}: FP16/BF16 tensor with FP32 accumulate, dense",
        price=_PRICE_MARKET,
    ),
    _gpu(
        "rtx-4090", "NVIDIA GeForce RTX 4090",
        architecture="Ada", memory_gib=24, bandwidth_gb_per_s=1008,
        bf16_tflops=165.2, fp16_tflops=165.2, fp32_tflops=82.6, price_usd_per_hour=0.40,
        aliases=("geforce rtx 4090", "rtx 4090 24gb"),
        spec=f"NVIDIA GeForce RTX 4090 spec page; {_ADA_WP}",
        tensor=f"{_ADA_WP}: FP16/BF16 tensor with FP32 accumulate, dense",
        price=_PRICE_MARKET,
    ),
    _gpu(
        "rtx-5090", "NVIDIA GeForce RTX 5090",
        architecture="Blackwell", memory_gib=32, bandwidth_gb_per_s=1792,
        bf16_tflops=209.5, fp16_tflops=209.5, fp32_tflops=104.8, price_usd_per_hour=0.80,
        aliases=("geforce rtx 5090", "rtx 5090 32gb"),
        spec="NVIDIA GeForce RTX 5090 spec page; NVIDIA RTX Blackwell GPU architecture whitepaper",
        tensor=(
            "NVIDIA RTX Blackwell whitepaper: FP16/BF16 tensor with FP32 accumulate, dense; "
            "uncertain (GeForce half-rate FP32 accumulate assumed)"
        ),
        price=_PRICE_MARKET,
    ),
    _gpu(
        "rtx-a6000", "NVIDIA RTX A6000",
        architecture="Ampere", memory_gib=48, bandwidth_gb_per_s=768,
        bf16_tflops=154.8, fp16_tflops=154.8, fp32_tflops=38.7, price_usd_per_hour=0.50,
        aliases=("quadro rtx a6000",),
        spec="NVIDIA RTX A6000 datasheet",
        tensor="NVIDIA RTX A6000 datasheet: 309.7 TFLOPS with sparsity, halved to dense",
        price=_PRICE_MARKET,
    ),
    _gpu(
        "a40", "NVIDIA A40",
        architecture="Ampere", memory_gib=48, bandwidth_gb_per_s=696,
        bf16_tflops=149.7, fp16_tflops=149.7, fp32_tflops=37.4, price_usd_per_hour=0.40,
        aliases=("nvidia a40",),
        spec="NVIDIA A40 datasheet",
        tensor="NVIDIA A40 datasheet: BF16/FP16 tensor 149.7 dense (299.4 with sparsity)",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "rtx-6000-ada", "NVIDIA RTX 6000 Ada Generation",
        architecture="Ada", memory_gib=48, bandwidth_gb_per_s=960,
        bf16_tflops=364.2, fp16_tflops=364.2, fp32_tflops=91.1, price_usd_per_hour=0.80,
        aliases=("rtx 6000 ada", "rtx 6000", "rtx6000 ada generation"),
        spec="NVIDIA RTX 6000 Ada Generation datasheet",
        tensor=f"{_ADA_WP}: FP16/BF16 tensor with FP32 accumulate, dense (1457 FP8 TFLOPS with sparsity)",
        price=_PRICE_MARKET,
    ),
    _gpu(
        "l40", "NVIDIA L40",
        architecture="Ada", memory_gib=48, bandwidth_gb_per_s=864,
        bf16_tflops=181.0, fp16_tflops=181.0, fp32_tflops=90.5, price_usd_per_hour=0.80,
        aliases=("nvidia l40",),
        spec="NVIDIA L40 datasheet",
        tensor="NVIDIA L40 datasheet: 362 TFLOPS with sparsity, halved to dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "l40s", "NVIDIA L40S",
        architecture="Ada", memory_gib=48, bandwidth_gb_per_s=864,
        bf16_tflops=362.0, fp16_tflops=362.0, fp32_tflops=91.6, price_usd_per_hour=0.90,
        aliases=("nvidia l40s",),
        spec="NVIDIA L40S datasheet",
        tensor="NVIDIA L40S datasheet: 733 TFLOPS with sparsity, 362 dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "a100-40gb", "NVIDIA A100 40GB SXM4",
        architecture="Ampere", memory_gib=40, bandwidth_gb_per_s=1555,
        bf16_tflops=312.0, fp16_tflops=312.0, fp32_tflops=19.5, price_usd_per_hour=1.30,
        aliases=("a100-sxm4-40gb", "a100 sxm 40gb"),
        spec="NVIDIA A100 datasheet (SXM4 40GB)",
        tensor="NVIDIA A100 datasheet: 624 TFLOPS with sparsity, 312 dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "a100-80gb", "NVIDIA A100 80GB SXM4",
        architecture="Ampere", memory_gib=80, bandwidth_gb_per_s=2039,
        bf16_tflops=312.0, fp16_tflops=312.0, fp32_tflops=19.5, price_usd_per_hour=1.80,
        aliases=("a100", "a100-sxm4-80gb", "a100 sxm", "a100 sxm 80gb"),
        spec="NVIDIA A100 datasheet (SXM4 80GB)",
        tensor="NVIDIA A100 datasheet: 624 TFLOPS with sparsity, 312 dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "h100-pcie", "NVIDIA H100 PCIe",
        architecture="Hopper", memory_gib=80, bandwidth_gb_per_s=2000,
        bf16_tflops=756.0, fp16_tflops=756.0, fp32_tflops=51.0, price_usd_per_hour=2.30,
        aliases=("h100 pcie 80gb",),
        spec="NVIDIA H100 datasheet (PCIe)",
        tensor="NVIDIA H100 datasheet (PCIe): 1513 TFLOPS with sparsity, halved to dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "h100-sxm", "NVIDIA H100 SXM5 80GB",
        architecture="Hopper", memory_gib=80, bandwidth_gb_per_s=3350,
        bf16_tflops=989.0, fp16_tflops=989.0, fp32_tflops=67.0, price_usd_per_hour=2.90,
        aliases=("h100", "h100 sxm5", "h100 80gb hbm3", "h100-sxm5-80gb"),
        spec="NVIDIA H100 datasheet (SXM5)",
        tensor="NVIDIA H100 datasheet (SXM5): 1979 TFLOPS with sparsity, halved to dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "h200", "NVIDIA H200 SXM 141GB",
        architecture="Hopper", memory_gib=141, bandwidth_gb_per_s=4800,
        bf16_tflops=989.0, fp16_tflops=989.0, fp32_tflops=67.0, price_usd_per_hour=3.80,
        aliases=("h200 sxm", "h200 141gb"),
        spec="NVIDIA H200 datasheet (SXM)",
        tensor="NVIDIA H200 datasheet (SXM): 1979 TFLOPS with sparsity, halved to dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "gh200", "NVIDIA GH200 Grace Hopper Superchip (96GB HBM3)",
        architecture="Hopper", memory_gib=96, bandwidth_gb_per_s=4000,
        bf16_tflops=989.0, fp16_tflops=989.0, fp32_tflops=67.0, price_usd_per_hour=1.50,
        aliases=("gh200 96gb", "gh200 480gb", "grace hopper", "gh200 grace hopper"),
        spec="NVIDIA GH200 Grace Hopper Superchip datasheet (96GB HBM3 GPU memory; LPDDR5X not counted)",
        tensor="NVIDIA GH200 datasheet: 1979 TFLOPS with sparsity, halved to dense",
        price="typical late-2025 on-demand rate for one GH200 (Lambda class), estimate",
    ),
    _gpu(
        "b200", "NVIDIA B200 (HGX, 180GB)",
        architecture="Blackwell", memory_gib=180, bandwidth_gb_per_s=7700,
        bf16_tflops=2250.0, fp16_tflops=2250.0, fp32_tflops=75.0, price_usd_per_hour=5.50,
        aliases=("b200 180gb", "hgx b200"),
        spec=(
            "NVIDIA HGX B200 datasheet, per GPU (180GB usable of 192GB HBM3e; "
            "nvidia-smi shows about 179 GiB)"
        ),
        tensor="NVIDIA HGX B200 datasheet: 4.5 PFLOPS with sparsity per GPU, halved to dense",
        price=_PRICE_CLOUD,
    ),
    _gpu(
        "mi300x", "AMD Instinct MI300X",
        vendor="amd",
        architecture="CDNA3", memory_gib=192, bandwidth_gb_per_s=5300,
        bf16_tflops=1307.4, fp16_tflops=1307.4, fp32_tflops=163.4, price_usd_per_hour=2.50,
        aliases=("instinct mi300x", "mi300x oam"),
        spec="AMD Instinct MI300X datasheet",
        tensor="AMD Instinct MI300X datasheet: FP16/BF16 matrix 1307.4 dense (2614.9 with sparsity)",
        price=_PRICE_CLOUD,
        overrides={"fp32_tflops": "AMD Instinct MI300X datasheet: FP32 vector"},
    ),
    _gpu(
        "v100-16gb", "NVIDIA Tesla V100 SXM2 16GB",
        architecture="Volta", memory_gib=16, bandwidth_gb_per_s=900,
        bf16_tflops=None, fp16_tflops=125.0, fp32_tflops=15.7, price_usd_per_hour=0.40,
        aliases=("v100", "v100-sxm2-16gb", "tesla v100-sxm2-16gb", "v100 16gb"),
        spec="NVIDIA V100 datasheet (SXM2)",
        tensor="NVIDIA V100 datasheet (SXM2): mixed-precision FP16/FP32 tensor (no sparsity on Volta)",
        price="typical late-2025 rate on GPU clouds and marketplaces, estimate (AWS p3 is far higher)",
    ),
    _gpu(
        "v100-32gb", "NVIDIA Tesla V100 SXM2 32GB",
        architecture="Volta", memory_gib=32, bandwidth_gb_per_s=900,
        bf16_tflops=None, fp16_tflops=125.0, fp32_tflops=15.7, price_usd_per_hour=0.50,
        aliases=("v100-sxm2-32gb", "tesla v100-sxm2-32gb", "v100 32gb"),
        spec="NVIDIA V100 datasheet (SXM2)",
        tensor="NVIDIA V100 datasheet (SXM2): mixed-precision FP16/FP32 tensor (no sparsity on Volta)",
        price="typical late-2025 rate on GPU clouds and marketplaces, estimate",
    ),
)
# fmt: on


# ---------------------------------------------------------------------------------------------
# lookup

# Words dropped from the front of a name; "rtx" is handled separately (both forms are indexed).
_VENDOR_WORDS: tuple[str, ...] = (
    "nvidia",
    "amd",
    "geforce",
    "tesla",
    "quadro",
    "instinct",
    "radeon",
)
_TRAILING_MEMORY = re.compile(r"^(?P<base>.*?)[\s_\-]*(?P<size>\d+(?:\.\d+)?)\s*(?:gb|gib|g)$")


def _normalize(text: str) -> str:
    """Lower-case, keep only letters and digits, drop leading vendor words."""
    form = re.sub(r"[^a-z0-9]", "", text.lower())
    changed = True
    while changed:
        changed = False
        for word in _VENDOR_WORDS:
            if form.startswith(word) and len(form) > len(word):
                form = form[len(word) :]
                changed = True
    return form


def _lookup_forms(spec: GpuSpec) -> set[str]:
    """Every normalized form under which ``spec`` can be found."""
    forms: set[str] = set()
    for text in (spec.key, spec.name, *spec.aliases):
        form = _normalize(text)
        forms.add(form)
        if form.startswith("rtx") and len(form) > 3:
            forms.add(form[3:])
    return forms


def _build_index(catalog: Iterable[GpuSpec]) -> dict[str, GpuSpec]:
    index: dict[str, GpuSpec] = {}
    for spec in catalog:
        for form in _lookup_forms(spec):
            other = index.get(form)
            if other is not None and other.key != spec.key:
                raise ValueError(f"GPU lookup name {form!r} matches both {other.key!r} and {spec.key!r}")
            index[form] = spec
    return index


_INDEX: dict[str, GpuSpec] = _build_index(CATALOG)


def _closest_keys(text: str, limit: int = 5) -> list[str]:
    """Catalog keys whose names look most like ``text``, best first."""
    query = _normalize(text)
    best: dict[str, float] = {}
    for form, spec in _INDEX.items():
        score = difflib.SequenceMatcher(None, query, form).ratio()
        if score > best.get(spec.key, -1.0):
            best[spec.key] = score
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return [key for key, _ in ranked[:limit]]


def _unknown(name: str) -> UnknownGpuError:
    close = ", ".join(_closest_keys(name))
    return UnknownGpuError(f"unknown GPU {name!r}; closest catalog entries: {close}", hint=_CATALOG_HINT)


def get_gpu(name: str) -> GpuSpec:
    """The catalog entry for ``name``; forgiving about case, separators, vendor words and "RTX"."""
    if not isinstance(name, str) or not _normalize(name):
        raise InvalidInputError(f"GPU name {name!r} is empty", hint=_CATALOG_HINT)
    spec = _INDEX.get(_normalize(name))
    if spec is not None:
        return spec
    # "h100 80gb", "rtx 3090 24GB": accept a trailing size that matches the entry.
    match = _TRAILING_MEMORY.match(name.strip().lower())
    if match and _normalize(match["base"]):
        base = _INDEX.get(_normalize(match["base"]))
        if base is not None:
            size = match["size"]
            if round(base.memory_bytes / _GIB) == round(float(size)):
                logger.debug("GPU %r resolved to %s by its memory size", name, base.key)
                return base
            raise UnknownGpuError(
                f"unknown GPU {name!r}: the catalog has {base.key} with "
                f"{base.memory_bytes // _GIB} GiB, not {size} GB",
                hint=(
                    f"give the budget with --gpu-mem {size}GiB, "
                    "or run `vram-advisor gpus` to list the catalog"
                ),
            )
    raise _unknown(name)


def list_gpus() -> tuple[GpuSpec, ...]:
    """The whole catalog, smallest memory first, then by name."""
    return tuple(sorted(CATALOG, key=lambda spec: (spec.memory_bytes, spec.name)))


# Stand-in for a budget with no hardware named: an RTX 4090's figures, said so in each source.
_STAND_IN_KEY = "rtx-4090"


def custom_gpu(memory_bytes: int, *, name: str | None = None, base: GpuSpec | None = None) -> GpuSpec:
    """A budget-only target ("custom-22GiB") with ``memory_bytes`` of memory.

    Bandwidth, throughput, BF16 support and price come from ``base`` when given. Without one
    they are an RTX 4090's, and every source says they are a stand-in: only the memory is known.
    """
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or memory_bytes <= 0:
        raise InvalidInputError(
            f"a memory budget must be a whole number of bytes > 0, got {memory_bytes!r}",
            hint="use parse_memory('22GiB') to turn text into bytes",
        )
    budget = format_budget(memory_bytes)
    template = base if base is not None else get_gpu(_STAND_IN_KEY)
    if base is not None:
        origin = {f: f"from {base.key}: {base.source(f)}" for f in NUMERIC_FIELDS}
        display = name or f"{base.name} ({budget} budget)"
        vendor, architecture = base.vendor, base.architecture
    else:
        stand_in = f"custom budget: no throughput known; {template.name} figure used as a stand-in"
        origin = {f: stand_in for f in NUMERIC_FIELDS}
        origin["price_usd_per_hour"] = (
            f"custom budget: no price known; {template.name} rate used as a stand-in"
        )
        display = name or f"Custom {budget} budget"
        vendor, architecture = "unknown", "unknown"
    origin["memory_bytes"] = "custom budget given by the user"
    return dataclasses.replace(
        template,
        key=f"custom-{budget}",
        name=display,
        vendor=vendor,
        memory_bytes=memory_bytes,
        architecture=architecture,
        aliases=(),
        sources=tuple((f, origin[f]) for f in NUMERIC_FIELDS),
    )
