"""Hugging Face Hub ids as model sources: ``org/name`` or ``org/name@revision``.

Only the repository's ``config.json`` is fetched (``huggingface_hub.hf_hub_download``), never its
weights: the model is built from the config, on ``meta`` for a simulation. The Hub's own rules
apply: ``HF_HOME`` / ``HF_HUB_CACHE`` decide the cache, ``HF_HUB_OFFLINE`` (or
``TRANSFORMERS_OFFLINE``) keeps every look-up in that cache, and a gated repository is read with
the token from the usual place (``HF_TOKEN`` or ``hf auth login``). Each failure becomes one
:class:`~advisor.core.errors.UnknownModelError` with the Hub's reason and the fix.

The environment is read at each call, not when ``huggingface_hub`` was imported, so a variable
set in the middle of a session (or a test) is honoured; the cache path follows
``huggingface_hub.constants`` of huggingface_hub 2.4.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from advisor.catalog.presets import PRESETS
from advisor.core.errors import UnknownModelError
from advisor.models.sources import HFModelSource, quiet_transformers, task_of_config

__all__ = [
    "HubId",
    "fetch_hub_config",
    "hub_cache_dir",
    "hub_offline",
    "hub_source",
    "parse_hub_id",
]

log = logging.getLogger(__name__)

# the Hub's repo-id rule (huggingface_hub.utils._validators): one "/" between two names of
# letters, digits, "-", "_" and "."; a revision after "@" may hold "/" (refs/pr/1)
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HUB_ID = re.compile(rf"^(?P<repo>{_NAME}/{_NAME})(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9._/-]*))?$")


@dataclass(frozen=True)
class HubId:
    """A Hugging Face model repository and the revision pinned (``None``: the default branch)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"


# config.json paths already fetched in this process, by (id, cache, offline): a sweep resolves
# its model once per plan, and only the first asks the Hub
_FETCHED: dict[tuple[HubId, Path, bool], Path] = {}


def parse_hub_id(text: str) -> HubId | None:
    """``org/name`` or ``org/name@rev`` as a :class:`HubId`; ``None`` for anything else."""
    match = _HUB_ID.match(text.strip())
    if match is None or ".." in match["repo"]:
        return None
    return HubId(match["repo"], match["rev"])


def _is_true(value: str | None) -> bool:
    return value is not None and value.upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set now."""
    return _is_true(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))


def hub_cache_dir() -> Path:
    """The Hub cache now: ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else
    ``$HF_HOME/hub`` (``HF_HOME`` defaulting to ``$XDG_CACHE_HOME/huggingface`` or
    ``~/.cache/huggingface``), as huggingface_hub 2.4's ``constants.py`` decides it."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface",
    )
    home = os.path.expandvars(os.path.expanduser(home))
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    cache = cache or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def _preset_for(repo_id: str) -> str | None:
    return next((p.name for p in PRESETS.values() if p.hf_id.lower() == repo_id.lower()), None)


def _one_line(exc: BaseException) -> str:
    """The Hub's reason in one line: the server's message when it sent one, else the error's
    text without its status line and request id."""
    server = getattr(exc, "server_message", None)
    if isinstance(server, str) and server.strip():
        return " ".join(server.split())
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    keep = [line for line in lines if not re.match(r"^\d{3} (Client|Server) Error", line)]
    return " ".join(keep or lines[:1]) or type(exc).__name__


def fetch_hub_config(hub: HubId) -> Path:
    """The local path of ``hub``'s ``config.json``, downloaded into the Hub cache if needed.

    Raises:
        UnknownModelError: offline and not cached; the repository is gated, missing or private;
            the revision or the file does not exist; the Hub cannot be reached.
    """
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    offline = hub_offline()
    cache = hub_cache_dir()
    known = _FETCHED.get((hub, cache, offline))
    if known is not None and known.is_file():
        return known
    preset = _preset_for(hub.repo_id)
    or_preset = f"; or use the preset --model {preset} (no download)" if preset else ""
    try:
        path = huggingface_hub.hf_hub_download(
            hub.repo_id, "config.json", revision=hub.revision, cache_dir=cache,
            local_files_only=offline,
        )  # fmt: skip
    except hub_errors.GatedRepoError as exc:
        raise UnknownModelError(
            f"{hub.repo_id} is a gated repository: {_one_line(exc)}",
            f"ask for access at https://huggingface.co/{hub.repo_id}, then log in "
            f"(hf auth login, or set HF_TOKEN){or_preset}",
        ) from exc
    except hub_errors.RepositoryNotFoundError as exc:
        raise UnknownModelError(
            f"no model repository {hub.repo_id} on the Hugging Face Hub: {_one_line(exc)}",
            "check the id (org/name); a private repository needs a token (hf auth login, or "
            f"HF_TOKEN){or_preset}",
        ) from exc
    except hub_errors.RevisionNotFoundError as exc:
        raise UnknownModelError(
            f"{hub.repo_id} has no revision '{hub.revision}': {_one_line(exc)}",
            f"pin a branch, tag or commit that exists ({hub.repo_id}@main), or leave @… out",
        ) from exc
    except hub_errors.RemoteEntryNotFoundError as exc:
        raise UnknownModelError(
            f"{hub} has no config.json: {_one_line(exc)}",
            "give the id of a transformers model repository",
        ) from exc
    except hub_errors.LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise UnknownModelError(
            f"{hub}: config.json is not in the Hugging Face cache {cache} and {why}",
            ("unset HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) to download it — only config.json, "
             "no weights — or point HF_HOME / HF_HUB_CACHE at a cache that has it"
             if offline else "check the network, or set HF_HOME to a cache that has it")
            + or_preset,
        ) from exc
    except (hub_errors.HfHubHTTPError, hub_errors.HFValidationError, OSError) as exc:
        raise UnknownModelError(
            f"cannot fetch config.json of {hub} from the Hugging Face Hub: {_one_line(exc)}",
            f"check the id and the network, or set HF_HUB_OFFLINE=1 to use the cache {cache}"
            + or_preset,
        ) from exc
    _FETCHED[(hub, cache, offline)] = Path(path)
    log.info("config.json of %s: %s", hub, path)
    return Path(path)


def hub_source(hub: HubId) -> HFModelSource:
    """A config-only source for a Hub model: its ``config.json``, no weights (simulate it)."""
    from transformers import AutoConfig

    config_file = fetch_hub_config(hub)
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(str(config_file))
    except Exception as exc:
        raise UnknownModelError(
            f"cannot read the config.json of {hub} as a transformers config ({exc})",
            "the installed transformers may not know this architecture: upgrade it, or give a "
            "config.json it knows",
        ) from exc
    commit = config_file.parent.name  # the cache's snapshots/<commit>/config.json
    part = ""
    try:
        task_of_config(config)
    except UnknownModelError:
        text_config = getattr(config, "text_config", None)
        if text_config is None:
            raise
        # a multimodal release (Gemma 3, Llama 4…): train its text decoder, as the presets do
        config, part = text_config, "the text decoder of "
        log.info("%s is multimodal: using its text_config (%s)", hub, config.model_type)
    preset = _preset_for(hub.repo_id)
    also = f"; the preset {preset} is taken from this repository" if preset else ""
    if preset:
        log.info("%s is the source of the preset %s; using its config.json from the Hub", hub, preset)
    return HFModelSource(
        str(hub),
        config,
        description=f"{part}config.json of {hub.repo_id} at {commit[:12]} (no weights){also}",
    )
