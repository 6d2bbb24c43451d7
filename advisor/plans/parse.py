"""Plan text: one parser for cuts (``lora(r=16)``), cut lists, plans (``lora+grad-ckpt``) and
plan lists (``lora+grad-ckpt;sgd;baseline``).

The CLI spelling of a cut is its name with optional parameters in parentheses, lists separated
by ``|``::

    lora                       lora(r=16,alpha=16,targets=q_proj|k_proj|v_proj)
    qlora(bits=8)              frozen-emb(path=emb.safetensors)      freeze-layers(k=2)
    grad-ckpt  bf16  fp16  bf16-weights  sgd(momentum=0.9)  adafactor  adamw8bit
    accum(steps=4)  eager-attn  sdpa-attn  offload  scratch  compile(backend=inductor)

A cut list is comma-separated (``lora(r=16),grad-ckpt``); a plan joins cuts with ``+`` and a
plan list separates plans with ``;``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from typing import Any

from advisor.core.errors import PlanError
from advisor.plans.registry import CUTS
from advisor.plans.types import BASELINE, Cut, Plan

__all__ = ["CUT_SYNTAX_HINT", "PLAN_SYNTAX_HINT", "parse_cut", "parse_cuts", "parse_plan", "parse_plans"]


CUT_SYNTAX_HINT = (
    "write cuts as name or name(key=value,key=value), lists with '|', e.g. "
    "lora(r=16,targets=q_proj|v_proj),grad-ckpt"
)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise PlanError(f"unbalanced ')' in '{text}'", CUT_SYNTAX_HINT)
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PlanError(f"unbalanced '(' in '{text}'", CUT_SYNTAX_HINT)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _convert(cls: type[Cut], field: dataclasses.Field[Any], raw: str) -> Any:
    default = field.default
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            if raw.lower() in ("", "auto"):
                return ()
            return tuple(x.strip() for x in raw.split("|") if x.strip())
    except ValueError:
        kind = type(default).__name__
        raise PlanError(
            f"{cls.name}: {field.name}={raw} is not a valid {kind}",
            f"for example {cls.name}({field.name}={default})",
        ) from None
    if default is None and raw.lower() in ("", "none"):
        return None
    return raw


_ALIASES = {"lora_alpha": "alpha", "target_modules": "targets", "lora_dropout": "dropout"}


def parse_cut(text: str) -> Cut:
    """One cut from ``name`` or ``name(key=value,…)``; :class:`PlanError` for unknown names or
    bad parameters, with the allowed ones."""
    text = text.strip()
    if not text:
        raise PlanError("empty cut name", CUT_SYNTAX_HINT)
    name, paren, rest = text.partition("(")
    name = name.strip().lower()
    cls = CUTS.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(CUTS), n=3, cutoff=0.5)
        did_you_mean = f"did you mean {', '.join(close)}? " if close else ""
        raise PlanError(f"unknown cut '{name}'", did_you_mean + f"cuts: {', '.join(CUTS)}")
    kwargs: dict[str, Any] = {}
    if paren:
        if not rest.endswith(")"):
            raise PlanError(f"'{text}' does not end with ')'", CUT_SYNTAX_HINT)
        fields: dict[str, dataclasses.Field[Any]] = (
            {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        )
        inner = rest[:-1].strip()
        for item in _split_top(inner, ",") if inner else []:
            key, eq, value = item.partition("=")
            key = _ALIASES.get(key.strip(), key.strip())
            if not eq or key not in fields:
                allowed = ", ".join(fields) or "none"
                raise PlanError(
                    f"{name}: '{item}' is not a parameter of this cut", f"parameters of {name}: {allowed}"
                )
            kwargs[key] = _convert(cls, fields[key], value)
    return cls(**kwargs)


PLAN_SYNTAX_HINT = (
    "join cuts with '+' and separate plans with ';', e.g. 'lora+grad-ckpt;sgd;baseline'"
)


def _items(text: str, sep: str, what: str, item: str, hint: str) -> list[str]:
    """The ``sep``-separated items of ``text``; :class:`PlanError` when one is empty
    (``'lora++sgd'``, ``';'``) or there is none: empty text never means "the baseline"."""
    if not text.strip():
        raise PlanError(f"no {item} given: the {what} is empty", hint)
    items = _split_top(text, sep)
    if any(not part for part in items):
        raise PlanError(f"{what} {text.strip()!r} has an empty {item} (nothing between or after '{sep}')", hint)
    return items


def parse_cuts(text: str | Iterable[str]) -> list[Cut]:
    """Cuts from ``"lora(r=16),grad-ckpt"`` (or a list of such strings); ``""`` is no cut, but
    an empty item (``"lora,,sgd"``, ``","``) raises :class:`PlanError`."""
    if isinstance(text, str):
        if not text.strip():
            return []
        items = _items(text, ",", "cut list", "cut", CUT_SYNTAX_HINT)
    else:
        items = list(text)
    return [parse_cut(item) for item in items]


def parse_plan(text: str) -> Plan:
    """One plan from ``"lora+grad-ckpt"``; ``"baseline"`` is the baseline. Empty text or an
    empty cut (``"lora++sgd"``, ``"++"``) raises :class:`PlanError`."""
    if not isinstance(text, str):
        raise PlanError(f"a plan is text such as 'lora+grad-ckpt', got {type(text).__name__}", PLAN_SYNTAX_HINT)
    text = text.strip()
    if text.lower() == BASELINE:
        return Plan()
    return Plan.of(parse_cut(part) for part in _items(text, "+", "plan", "cut", PLAN_SYNTAX_HINT))


def parse_plans(text: str | Iterable[str]) -> list[Plan]:
    """Plans from ``"lora+grad-ckpt;sgd;baseline"`` (or a list of plan strings). Empty text, an
    empty list or an empty plan (``";"``, ``"lora;;sgd"``) raises :class:`PlanError`."""
    items = _items(text, ";", "plan list", "plan", PLAN_SYNTAX_HINT) if isinstance(text, str) else list(text)
    if not items:
        raise PlanError("no plans given", PLAN_SYNTAX_HINT)
    return [parse_plan(item) for item in items]
