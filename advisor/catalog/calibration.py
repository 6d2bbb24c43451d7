"""Calibration profiles: what ``vram-advisor calibrate`` measured on one GPU + driver + torch.

A profile replaces the catalog's estimated device overheads (CUDA context, BLAS workspaces)
with the figures measured on the user's own card, for every later prediction on that GPU. It is
plain JSON, one file per GPU key, in the user's cache directory
(``$VRAM_ADVISOR_CALIBRATION_DIR``, else ``$XDG_CACHE_HOME/vram-advisor/calibration``, else
``~/.cache/vram-advisor/calibration``). The format is versioned: a profile of another
``schema_version`` is refused with that version named; unknown keys (from a newer minor
writer) are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.core.errors import ReportError
from advisor.core.io import atomic_write_text

__all__ = [
    "CALIBRATION_DIR_ENV",
    "CALIBRATION_KIND",
    "CALIBRATION_SCHEMA_VERSION",
    "CalibrationProfile",
    "calibration_dir",
    "calibration_for",
    "list_calibrations",
    "load_calibration",
    "save_calibration",
]

log = logging.getLogger(__name__)

CALIBRATION_SCHEMA_VERSION = 1
CALIBRATION_KIND = "vram-advisor/calibration"
CALIBRATION_DIR_ENV = "VRAM_ADVISOR_CALIBRATION_DIR"


@dataclass(frozen=True)
class CalibrationProfile:
    """What the probe measured on one GPU (bytes unless named otherwise)."""

    gpu_key: str  # the catalog key it calibrates, e.g. "rtx-4090"
    device_name: str  # as the driver reports it, e.g. "NVIDIA GeForce RTX 4090"
    context_bytes: int  # device memory of the process beyond PyTorch's allocator, after first use
    workspace_bytes: int  # BLAS workspaces a forward + backward on two threads reserve
    allocator_overhead_fraction: float  # probe's (max reserved − max allocated) / max allocated
    driver_version: str = ""
    cuda_version: str = ""
    torch_version: str = ""
    cuda_module_loading: str = ""  # CUDA_MODULE_LOADING during the probe ("" = driver default)
    alloc_conf: str = ""  # PYTORCH_CUDA_ALLOC_CONF during the probe
    measured_at: str = ""  # ISO date and time
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["notes"] = list(self.notes)
        return {"kind": CALIBRATION_KIND, "schema_version": CALIBRATION_SCHEMA_VERSION, **body}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "calibration profile") -> CalibrationProfile:
        if d.get("kind") != CALIBRATION_KIND:
            raise ReportError(f"{where} is not a vram-advisor calibration profile (kind {d.get('kind')!r})",
                              "run `vram-advisor calibrate` on the GPU to write one")  # fmt: skip
        version = d.get("schema_version")
        if version != CALIBRATION_SCHEMA_VERSION:
            raise ReportError(
                f"{where} has calibration schema_version {version!r}; this vram-advisor reads "
                f"version {CALIBRATION_SCHEMA_VERSION}",
                "run `vram-advisor calibrate` again with this version to replace it",
            )
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        try:
            kwargs["notes"] = tuple(kwargs.get("notes", ()))
            profile = cls(**kwargs)
            for name in ("context_bytes", "workspace_bytes"):
                if not isinstance(getattr(profile, name), int) or getattr(profile, name) < 0:
                    raise TypeError(f"{name} must be a whole number of bytes ≥ 0")
        except TypeError as exc:
            raise ReportError(f"{where} is damaged: {exc}", "run `vram-advisor calibrate` again") from None
        return profile


def calibration_dir() -> Path:
    """Where profiles live (see the module docstring for the order of the places)."""
    explicit = os.environ.get(CALIBRATION_DIR_ENV)
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "vram-advisor" / "calibration"


def _path(gpu_key: str) -> Path:
    return calibration_dir() / f"{gpu_key}.json"


def save_calibration(profile: CalibrationProfile) -> Path:
    """Write ``profile`` for its GPU key (replacing an older one); the path written."""
    path = _path(profile.gpu_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(profile.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def load_calibration(path: str | Path) -> CalibrationProfile:
    """The profile in ``path`` (``ReportError`` when it is not one, or of another version)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read calibration profile {path}: {exc}", "run `vram-advisor calibrate` again") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} is not a calibration profile", "run `vram-advisor calibrate` again")
    return CalibrationProfile.from_dict(data, where=str(path))


def calibration_for(gpu_key: str) -> CalibrationProfile | None:
    """The saved profile of ``gpu_key``, or ``None``; a damaged one is logged and not used."""
    path = _path(gpu_key)
    if not path.is_file():
        return None
    try:
        return load_calibration(path)
    except ReportError as exc:
        log.warning("calibration profile not used: %s", exc.message)
        return None


def list_calibrations() -> tuple[CalibrationProfile, ...]:
    """Every readable saved profile, by GPU key."""
    folder = calibration_dir()
    if not folder.is_dir():
        return ()
    found = (calibration_for(p.stem) for p in sorted(folder.glob("*.json")))
    return tuple(p for p in found if p is not None)
