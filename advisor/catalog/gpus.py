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
* ``interconnect_bytes_per_s`` is the link between GPUs of one node, per GPU and one direction
  (NVLink/NVSwitch on SXM parts, PCIe otherwise: optional bridges are not assumed), what a ring
  collective moves at best; :func:`inter_node_link` is the default between nodes (InfiniBand).

The entries are data, in ``gpus.json`` beside this module (one :meth:`GpuSpec.to_dict` object
per GPU), read once on first use; each records where every numeric figure came from in
``sources``. ``CATALOG`` is that tuple, in file order.

Lookup (:func:`get_gpu`) is forgiving: case, spaces, ``_`` and ``-`` are ignored, and so are
vendor words ("NVIDIA", "GeForce", "Tesla", "AMD", "Instinct", …) and the "RTX" prefix, so
"4090", "rtx-4090" and "NVIDIA GeForce RTX 4090" all name the RTX 4090. A bare family name
means the most widely rented variant: "a100" is ``a100-80gb``, "h100" is ``h100-sxm`` and
"v100" is ``v100-16gb``. Such a family name is never a silent guess: :func:`family_alias` says
which entry it chose and which others share the name, every front end shows that (the CLI as a
note on stderr, ``vram-advisor gpus`` in its list of family names), and every output names the
entry used. A trailing memory size is checked against the entry ("h100 80gb").
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advisor.core.errors import AdvisorError, InvalidInputError, UnknownGpuError
from advisor.core.units import format_budget, parse_memory  # noqa: F401  (parse_memory: old home)

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; only the annotation needs it
    from importlib.resources.abc import Traversable

__all__ = [
    "CATALOG",
    "NUMERIC_FIELDS",
    "VENDORS",
    "GpuSpec",
    "Link",
    "custom_gpu",
    "family_alias",
    "family_aliases",
    "get_gpu",
    "inter_node_link",
    "intra_node_link",
    "list_gpus",
]

logger = logging.getLogger(__name__)

_GIB = 2**30

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

_CATALOG_HINT = "see the catalog (`vram-advisor gpus`, advisor.list_gpus()), or give a budget: gpu_mem=22GiB"


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
    # the link between GPUs of one node, per GPU and one direction (decimal bytes/s): what a
    # ring collective moves at best; "" / None where the catalog does not know it
    interconnect: str = ""  # "nvlink4", "pcie4", …
    interconnect_bytes_per_s: float | None = None

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
        if self.interconnect_bytes_per_s is not None:
            _check_positive(where, "interconnect_bytes_per_s", self.interconnect_bytes_per_s)
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
            "interconnect": self.interconnect,
            "interconnect_bytes_per_s": self.interconnect_bytes_per_s,
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
        required = known - {"aliases", "sources", "interconnect", "interconnect_bytes_per_s"}
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
            interconnect=str(data.get("interconnect") or ""),
            interconnect_bytes_per_s=(
                None if data.get("interconnect_bytes_per_s") is None else _as_float(data, "interconnect_bytes_per_s")
            ),
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
# catalog: the data lives in gpus.json beside this module, loaded once on first use

_DATA_FILE = "gpus.json"
_DATA_HINT = (
    "the GPU catalog ships with vram-advisor: reinstall it, or restore "
    "advisor/catalog/gpus.json from the repository"
)


def _damaged(where: str, problem: str) -> AdvisorError:
    return AdvisorError(f"the GPU catalog {where} is damaged: {problem}", hint=_DATA_HINT)


def _read_catalog(path: Traversable) -> tuple[tuple[GpuSpec, ...], dict[str, GpuSpec]]:
    """The entries of a catalog file in file order, and their name index.

    Raises:
        AdvisorError: naming the file, if it cannot be read or any entry is invalid.
    """
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(where, str(exc)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
        raise _damaged(where, 'expected a JSON object with a "gpus" list')
    specs: list[GpuSpec] = []
    for position, entry in enumerate(data["gpus"]):
        try:
            specs.append(GpuSpec.from_dict(entry))
        except InvalidInputError as exc:
            raise _damaged(where, f"entry {position}: {exc.message}") from exc
    try:
        index = _build_index(specs)
    except ValueError as exc:
        raise _damaged(where, str(exc)) from exc
    logger.debug("loaded %d GPUs from %s", len(specs), where)
    return tuple(specs), index


def _data_file() -> Traversable:
    """The catalog file shipped in this package."""
    return importlib.resources.files(__package__ or "advisor.catalog").joinpath(_DATA_FILE)


@functools.cache
def _loaded() -> tuple[tuple[GpuSpec, ...], dict[str, GpuSpec]]:
    """The shipped catalog and its name index, read once."""
    return _read_catalog(_data_file())


def _catalog() -> tuple[GpuSpec, ...]:
    return _loaded()[0]


def _index() -> dict[str, GpuSpec]:
    return _loaded()[1]


CATALOG: tuple[GpuSpec, ...]  # every entry in file order; served by __getattr__ on first use


def __getattr__(name: str) -> tuple[GpuSpec, ...]:
    """``CATALOG``, loaded on first use (a damaged file fails where the catalog is used, not at import)."""
    if name == "CATALOG":
        return _catalog()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _closest_keys(text: str, limit: int = 5) -> list[str]:
    """Catalog keys whose names look most like ``text``, best first."""
    query = _normalize(text)
    best: dict[str, float] = {}
    for form, spec in _index().items():
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
    spec = _index().get(_normalize(name))
    if spec is not None:
        return spec
    # "h100 80gb", "rtx 3090 24GB": accept a trailing size that matches the entry.
    match = _TRAILING_MEMORY.match(name.strip().lower())
    if match and _normalize(match["base"]):
        base = _index().get(_normalize(match["base"]))
        if base is not None:
            size = match["size"]
            if round(base.memory_bytes / _GIB) == round(float(size)):
                logger.debug("GPU %r resolved to %s by its memory size", name, base.key)
                return base
            raise UnknownGpuError(
                f"unknown GPU {name!r}: the catalog has {base.key} with "
                f"{base.memory_bytes // _GIB} GiB, not {size} GB",
                hint=(
                    f"give the budget as gpu_mem={size}GiB, "
                    "or see the catalog (`vram-advisor gpus`, advisor.list_gpus())"
                ),
            )
    raise _unknown(name)


@dataclass(frozen=True)
class FamilyAlias:
    """A family name (``"h100"``) that the catalog reads as one entry although others share it."""

    name: str  # as given
    chosen: GpuSpec
    others: tuple[GpuSpec, ...]

    def note(self) -> str:
        """``h100 means h100-sxm (NVIDIA H100 SXM5 80GB); the catalog also has h100-pcie``."""
        others = " and ".join(s.key for s in self.others)
        return (
            f"{self.name} means {self.chosen.key} ({self.chosen.name}), the most rented variant; "
            f"the catalog also has {others}: name it to use it"
        )


def _base_form(name: str) -> str:
    """The normalized name :func:`get_gpu` looked up (without a trailing memory size it checked)."""
    form = _normalize(name)
    if form in _index():
        return form
    match = _TRAILING_MEMORY.match(name.strip().lower())
    return _normalize(match["base"]) if match and _normalize(match["base"]) in _index() else form


def family_alias(name: str) -> FamilyAlias | None:
    """When ``name`` is a family name that :func:`get_gpu` resolves to one variant although the
    catalog has others of that family ("h100" → ``h100-sxm``, with ``h100-pcie``), which entry it
    chose and the others; ``None`` for an exact or unambiguous name. Raises as :func:`get_gpu`."""
    spec = get_gpu(name)
    form = _base_form(name)
    if form in (_normalize(spec.key), _normalize(spec.name)):
        return None
    others = tuple(
        s for s in _catalog() if s.key != spec.key and any(f.startswith(form) for f in _lookup_forms(s))
    )
    return FamilyAlias(name.strip(), spec, others) if others else None


def family_aliases() -> tuple[FamilyAlias, ...]:
    """Every family name in the catalog's aliases ("a100", "h100", "v100", …), by name."""
    found: dict[str, FamilyAlias] = {}
    for spec in _catalog():
        for alias in spec.aliases:
            fam = family_alias(alias)
            if fam is not None and _normalize(alias) not in found:
                found[_normalize(alias)] = fam
    return tuple(found[k] for k in sorted(found))


def list_gpus() -> tuple[GpuSpec, ...]:
    """The whole catalog, smallest memory first, then by name."""
    return tuple(sorted(_catalog(), key=lambda spec: (spec.memory_bytes, spec.name)))


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


# ---------------------------------------------------------------------------------------------
# links between GPUs


@dataclass(frozen=True)
class Link:
    """A link GPUs talk over: its name, per-GPU one-direction bandwidth and where it came from."""

    name: str  # "nvlink4", "pcie4", "infiniband-ndr"
    bytes_per_s: float  # decimal bytes per second, per GPU, one direction
    source: str


@functools.cache
def inter_node_link() -> Link:
    """The catalog's default link between nodes (InfiniBand NDR, one adapter per GPU)."""
    where = str(_data_file())
    data = json.loads(_data_file().read_text(encoding="utf-8"))
    entry = data.get("inter_node") if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        raise _damaged(where, 'no "inter_node" link')
    return Link(str(entry["interconnect"]), float(entry["interconnect_bytes_per_s"]), str(entry["source"]))


_PCIE4_FALLBACK = Link("pcie4", 32e9, "not in the catalog entry: PCIe 4.0 x16 assumed (32 GB/s per direction)")


def intra_node_link(gpu: GpuSpec) -> Link:
    """The link between ``gpu``'s peers in one node (PCIe 4.0 x16 where the entry has none)."""
    if gpu.interconnect_bytes_per_s is None:
        return _PCIE4_FALLBACK
    return Link(gpu.interconnect or "interconnect", gpu.interconnect_bytes_per_s, gpu.source("interconnect_bytes_per_s"))
