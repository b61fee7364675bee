"""Checks that turn bad data into one clear :class:`UserInputError` naming the record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from fusion_aft.data.records import UNLABELLED, Dataset, Split
from fusion_aft.errors import UserInputError

__all__ = ["FieldLoadError", "check_dataset", "check_split", "check_text", "guarded_loader"]


class FieldLoadError(UserInputError):
    """A record's content could not be read (unreadable image, missing file, empty text)."""


def check_split(split: Split, num_classes: int, where: str) -> None:
    """Refuse an empty split, duplicate or malformed ids, and labels outside ``[-1, num_classes)``."""
    if len(split) == 0:
        raise UserInputError(f"{where}: split '{split.name}' is empty; check the source path and options")
    counts = Counter(split.ids)
    if len(counts) != len(split.ids):
        dups = [i for i, c in counts.items() if c > 1]
        raise UserInputError(
            f"{where}: split '{split.name}' has {len(dups)} duplicate id(s), e.g. {dups[:3]}; "
            "sample ids must be unique (pass an id column that is unique, or none)"
        )
    for sample_id, label in zip(split.ids, split.labels, strict=True):
        if not isinstance(sample_id, str) or not sample_id or "\n" in sample_id or "\0" in sample_id:
            raise UserInputError(
                f"{where}: bad sample id {sample_id!r} in split '{split.name}': ids must be non-empty "
                "strings without newlines or NUL characters"
            )
        if label != UNLABELLED and not 0 <= label < num_classes:
            raise UserInputError(
                f"{where}: record '{sample_id}' in split '{split.name}' has label {label}, outside "
                f"0..{num_classes - 1} ({num_classes} classes); fix the label or the class list"
            )


def check_dataset(dataset: Dataset) -> Dataset:
    """Run :func:`check_split` on every split of ``dataset`` and return it."""
    if not dataset.classes:
        raise UserInputError(f"dataset '{dataset.name}' has no classes")
    for split in dataset.splits.values():
        check_split(split, dataset.num_classes, f"dataset '{dataset.name}'")
    return dataset


def check_text(text: Any, sample_id: str, where: str) -> str:
    """``text`` as a non-empty string, or a :class:`FieldLoadError` naming the record."""
    if text is None or not isinstance(text, str) or not text.strip():
        raise FieldLoadError(f"{where}: record '{sample_id}' has empty text; drop it or fill it in")
    return text


class guarded_loader:  # noqa: N801 - used like a function
    """Wrap ``load(i) -> fields`` so any failure becomes a :class:`FieldLoadError` naming the id."""

    def __init__(self, load: Callable[[int], dict[str, Any]], ids: list[str], where: str) -> None:
        self.load = load
        self.ids = ids
        self.where = where

    def __call__(self, index: int) -> dict[str, Any]:
        try:
            return self.load(index)
        except UserInputError:
            raise
        except Exception as exc:
            raise FieldLoadError(
                f"{self.where}: cannot read record '{self.ids[index]}': {type(exc).__name__}: {exc}"
            ) from exc
