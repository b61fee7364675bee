"""Records, splits and datasets: the unit every other part of fusion-aft is keyed by.

A :class:`Record` is one example: a stable string id, its input fields (``image`` as a PIL image,
``text`` as a string, or both) and an integer label (``-1`` for unlabelled rows). A
:class:`Split` is an ordered, indexable collection of records whose ids are unique; banks are
keyed by those ids, never by position alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusion_aft.data.digest import digest_fields
from fusion_aft.errors import UserInputError

UNLABELLED = -1


@dataclass(frozen=True)
class Record:
    """One example. ``fields`` maps a field name (``"image"``, ``"text"``) to its value."""

    id: str
    fields: dict[str, Any]
    label: int = UNLABELLED

    @property
    def image(self) -> Any:
        return self.fields["image"]

    @property
    def text(self) -> str:
        return self.fields["text"]


class Split(Sequence[Record]):
    """An ordered collection of records, loaded lazily by index.

    Args:
        name: split name (``train``, ``test``, ``unlabelled`` ...).
        ids: the sample ids, in order; must be unique.
        labels: integer labels aligned with ``ids`` (``-1`` = unlabelled).
        load_fields: ``index -> fields dict``; called lazily so large image sets stay on disk.
        content_digest: ``index -> bytes`` digest of one record's content, used by the dataset
            fingerprint; defaults to hashing the fields.
    """

    def __init__(
        self,
        name: str,
        ids: Sequence[str],
        labels: Sequence[int],
        load_fields: Callable[[int], dict[str, Any]],
        content_digest: Callable[[int], bytes] | None = None,
    ) -> None:
        if len(ids) != len(labels):
            raise ValueError(f"split '{name}': {len(ids)} ids but {len(labels)} labels")
        self.name = name
        self.ids = list(ids)
        self.labels = [int(v) for v in labels]
        self._load_fields = load_fields
        self._content_digest = content_digest

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Record(self.ids[index], self._load_fields(index), self.labels[index])

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self)):
            yield self[i]

    def content_digest(self, index: int) -> bytes:
        """A digest of record ``index``'s content (fields and label)."""
        if self._content_digest is not None:
            return self._content_digest(index)
        return digest_fields(self._load_fields(index), self.labels[index])

    def subset(self, indices: Sequence[int], name: str | None = None) -> Split:
        """A new split holding the records at ``indices``, in that order."""
        idx = list(indices)
        return Split(
            name or self.name,
            [self.ids[i] for i in idx],
            [self.labels[i] for i in idx],
            _Reindexed(self._load_fields, idx),
            _Reindexed(self.content_digest, idx),
        )

    def relabel(self, labels: Sequence[int], name: str | None = None) -> Split:
        """The same records (same ids, same fields) with other labels (e.g. ``-1`` = hidden)."""
        return Split(name or self.name, self.ids, labels, self._load_fields, _Relabelled(self, labels))


class _Relabelled:
    """Content digest of a relabelled split: the source record's digest combined with the new label."""

    def __init__(self, source: Split, labels: Sequence[int]) -> None:
        self.source = source
        self.labels = [int(v) for v in labels]

    def __call__(self, j: int) -> bytes:
        import hashlib

        h = hashlib.blake2b(self.source.content_digest(j), digest_size=16)
        h.update(self.labels[j].to_bytes(8, "little", signed=True))
        return h.digest()


class _Reindexed:
    """``j -> fn(indices[j])``; a class rather than a lambda so splits pickle to DataLoader workers."""

    def __init__(self, fn: Callable[[int], Any], indices: list[int]) -> None:
        self.fn = fn
        self.indices = indices

    def __call__(self, j: int) -> Any:
        return self.fn(self.indices[j])


@dataclass
class Dataset:
    """A named task: its splits, class names and the input fields its records carry."""

    name: str
    splits: dict[str, Split]
    classes: list[str]
    fields: tuple[str, ...]
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> Split:
        """The split called ``name``."""
        if name in self.splits:
            return self.splits[name]
        if name in ("holdout", "train_minus_holdout"):
            raise UserInputError(
                f"dataset '{self.name}' has no split '{name}': the holdout is the trainer's, set by "
                "holdout_fraction (and seed) of the training config, or use fusion_aft.data.splits.holdout"
            )
        raise UserInputError(
            f"dataset '{self.name}' has no split '{name}'; it has: {', '.join(self.splits)}"
        )
