"""The one reader of ``KEY=VALUE`` options on the command line, shared by every command.

A value reads as JSON where it parses (``500``, ``0.1``, ``[1, 2]``, ``"quoted"``), as a boolean
for ``true``/``false`` and as ``None`` for ``none``/``null`` in any case (``True``, ``NONE``), and
as the plain string otherwise; an empty value is the empty string (``id_column=``).
"""

from __future__ import annotations

import json
from typing import Any

from fusion_aft.errors import UserInputError

_WORDS: dict[str, Any] = {"true": True, "false": False, "none": None, "null": None}


def parse_value(text: str) -> Any:
    """One option value: a boolean, ``None``, a JSON number/list/object/string, or the text."""
    text = text.strip()
    lowered = text.lower()
    if lowered in _WORDS:
        return _WORDS[lowered]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["train_size=300", "path=a.csv"]`` → ``{"train_size": 300, "path": "a.csv"}``.

    ``flag`` is the option's name on the command line (``--dataset-option``), used in errors.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"{flag} expects KEY=VALUE, got {item!r} (e.g. {flag} test_fraction=0.2)")
        key = key.strip()
        if key in out:
            raise UserInputError(f"{flag} {key}=... is given twice; give each key once")
        out[key] = parse_value(raw)
    return out


DATASET_OPTION_HELP = (
    "dataset option KEY=VALUE (repeatable), e.g. --dataset-option test_fraction=0.3; "
    "see `fusion-aft datasets list`"
)
DATASET_HELP = (
    "dataset name (fusion-aft datasets list), or a path: a .csv, a .jsonl or a folder of class sub-folders"
)
DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"
