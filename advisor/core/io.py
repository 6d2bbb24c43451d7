"""Files: atomic writes, and the environment block every report carries."""

from __future__ import annotations

import errno
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from advisor.core.errors import OutputPathError
from advisor.core.version import __version__

__all__ = [
    "SCHEMA_VERSION",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "environment",
    "write_json",
]

SCHEMA_VERSION = 2  # 2: per-rank fields of distributed plans (gpus, nodes, communication)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_PATH_HINT = "choose another path, in a folder you can write to"


def _cannot_write(path: Path, exc: OSError | None, why: str | None = None) -> OutputPathError:
    if why is None:
        assert exc is not None
        why = {
            errno.ENOENT: "its folder does not exist and cannot be made",
            errno.ENOTDIR: "a part of its folder path is a file, not a folder",
            errno.EEXIST: "a part of its folder path is a file, not a folder",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
            errno.EROFS: "the file system is read-only",
            errno.ENOSPC: "no space left on the device",
            errno.EISDIR: "it is a folder",
        }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return OutputPathError(f"cannot write {path}: {why}", _PATH_HINT)


def check_writable(path: str | Path) -> Path:
    """``path`` when a file can be written there, checked before any work is done.

    A missing parent folder is created (as a write would create it); a parent that is a file,
    a folder that cannot be made or written to, or a folder standing at ``path`` itself raise
    :class:`OutputPathError` with the reason. An existing file at ``path`` must be writable; it
    is not changed.
    """
    path = Path(path)
    if path.is_dir():
        raise _cannot_write(path, None, "it is a folder")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise _cannot_write(path, None, f"{parent} is a file, not a folder")
        if parent.exists():
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("ab"):  # opened for appending, nothing written: is it writable?
                pass
        else:
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).
    A path that cannot be written raises :class:`OutputPathError` (nothing is left behind)."""
    path = Path(path)
    try:
        check_writable(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Atomically write JSON with sorted keys and a trailing newline."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def environment() -> dict[str, Any]:
    """Versions and hardware that a report's numbers depend on."""
    import torch  # heavy: imported only when a report is written
    import transformers

    env: dict[str, Any] = {
        "vram_advisor": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),
    }
    try:
        import peft

        env["peft"] = peft.__version__
    except ImportError:
        env["peft"] = None
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env
