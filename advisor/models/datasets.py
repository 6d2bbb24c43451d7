"""A dataset file's sequence lengths: JSON Lines, JSON, text or Parquet, counted with the
model's tokenizer when its folder has one, else estimated (and the distribution says so)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from advisor.core.errors import InvalidInputError
from advisor.core.lengths import LengthDistribution
from advisor.models.sources import HFModelSource, ModelSource, quiet_transformers

__all__ = ["BYTES_PER_TOKEN", "TEXT_FIELDS", "dataset_lengths", "tokenizer_counter"]

log = logging.getLogger(__name__)

# without a tokenizer: about 4 UTF-8 bytes per token, the usual figure for English BPE vocabularies
BYTES_PER_TOKEN = 4
# the fields a sample's text is read from, in this order, when none is named
TEXT_FIELDS = ("text", "content", "input", "prompt", "question")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model")


def tokenizer_counter(source: ModelSource | None) -> tuple[Callable[[str], int], str] | None:
    """(count tokens of a text, tokenizer name) from the source's folder, or ``None`` when it
    has no tokenizer files (config-only models, plain modules)."""
    folder = getattr(source, "weights_path", None) if isinstance(source, HFModelSource) else None
    if folder is None or not any((Path(folder) / f).is_file() for f in _TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    with quiet_transformers():
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=True, truncation=False)["input_ids"])

    return count, f"tokenizer of {source.name if source else folder}"


def _estimate(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN))


def _text_of(record: Any, field: str | None, where: str) -> str:
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where}: a sample is a {type(record).__name__}, not an object or a string",
                                "give one JSON object per line, e.g. {\"text\": \"…\"}")  # fmt: skip
    names = (field,) if field else TEXT_FIELDS
    for name in names:
        value = record.get(name)
        if isinstance(value, str):
            return value
    if field is None and "messages" in record and isinstance(record["messages"], list):
        return "\n".join(str(m.get("content", "")) for m in record["messages"] if isinstance(m, dict))
    raise InvalidInputError(
        f"{where}: no text field {field or '/'.join(TEXT_FIELDS)} in a sample (keys: "
        f"{', '.join(sorted(map(str, record)))[:120]})",
        "name the field that holds the text, e.g. text_field=body",
    )


def _records(path: Path) -> Iterable[Any]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InvalidInputError(f"{path}:{number} is not JSON ({exc.msg})",
                                                "give one JSON object per line") from None  # fmt: skip
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path} is not JSON ({exc.msg})", "give a JSON list of samples") from None
        yield from (data if isinstance(data, list) else [data])
    elif suffix == ".parquet":
        import datasets  # datasets 5.2: Dataset.from_parquet reads a local file, no Hub

        yield from datasets.Dataset.from_parquet(str(path))
    else:  # text: one sample per line
        with path.open(encoding="utf-8") as fh:
            yield from (line.rstrip("\n") for line in fh if line.strip())


def dataset_lengths(
    path: str | Path, source: ModelSource | None = None, *, text_field: str | None = None
) -> LengthDistribution:
    """The token counts of the samples in ``path`` (``.jsonl``/``.json``/``.parquet``, else one
    sample per text line), with ``source``'s tokenizer when it has one, else estimated at
    :data:`BYTES_PER_TOKEN` bytes a token."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no dataset file at {path}", "give a .jsonl, .json, .parquet or .txt file")
    counter = tokenizer_counter(source)
    count, counted_by = counter if counter else (_estimate, f"estimate: {BYTES_PER_TOKEN} bytes a token, no tokenizer")
    where = str(path)
    texts = (_text_of(r, text_field, where) for r in _records(path))
    lengths = tuple(count(t) for t in texts if t.strip())  # an empty sample trains nothing
    log.info("%s: %d samples counted by %s", path, len(lengths), counted_by)
    return LengthDistribution(lengths, origin=str(path), counted_by=counted_by)
