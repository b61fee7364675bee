"""Derived splits: a holdout for model selection and a label budget for semi-supervised runs.

Both keep the source sample ids, so the rows of a feature bank built for the source split serve
the derived ones (look them up by id), and both are deterministic given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion_aft.data.records import UNLABELLED, Split
from fusion_aft.data.select import stratified_choice, stratified_folds, stratified_partition
from fusion_aft.errors import UserInputError

__all__ = [
    "TrainingRows",
    "concat",
    "holdout",
    "kfold",
    "label_budget",
    "training_rows",
    "unlabelled_pool",
    "with_own_unlabelled",
]


def holdout(split: Split, fraction: float = 0.1, seed: int = 0) -> tuple[Split, Split]:
    """``(fit, holdout)``: ``fraction`` of ``split`` held out, stratified by label when labelled.

    Unlabelled rows (label ``-1``) form their own stratum. Both parts keep the source order.
    """
    if not 0.0 < fraction < 1.0:
        raise UserInputError(f"holdout fraction must be between 0 and 1 (exclusive), got {fraction}")
    n_hold = int(round(fraction * len(split)))
    if n_hold < 1 or n_hold >= len(split):
        raise UserInputError(
            f"holdout of {fraction:g} of split '{split.name}' ({len(split)} rows) leaves an empty part; "
            "use a larger split or another fraction"
        )
    fit_idx, hold_idx = stratified_partition(split.labels, n_hold, seed)
    hold_name = "holdout" if split.name == "train" else f"{split.name}_holdout"
    return split.subset(fit_idx.tolist(), f"{split.name}_minus_holdout"), split.subset(
        hold_idx.tolist(), hold_name
    )


def kfold(split: Split, k: int, seed: int = 0) -> list[tuple[Split, Split]]:
    """``k`` pairs ``(fit, holdout)``: stratified folds of ``split``, each row held out exactly once.

    Fold ``f``'s holdout is the ``f``-th fold, its fit part the other ``k - 1`` (source order kept).
    """
    if k < 2:
        raise UserInputError(f"k-fold selection needs k >= 2 folds, got {k}")
    if len(split) < k:
        raise UserInputError(
            f"split '{split.name}' has {len(split)} rows, too few for {k} folds; use fewer folds or more rows"
        )
    folds = stratified_folds(split.labels, k, seed)
    pairs = []
    for f, hold_idx in enumerate(folds):
        fit_idx = np.sort(np.concatenate([folds[g] for g in range(k) if g != f]))
        pairs.append(
            (
                split.subset(fit_idx.tolist(), f"{split.name}_fold{f}_fit"),
                split.subset(hold_idx.tolist(), f"{split.name}_fold{f}_holdout"),
            )
        )
    return pairs


def label_budget(
    split: Split, n_labels: int, seed: int = 0, n_unlabelled: int | None = None
) -> tuple[Split, Split]:
    """``(labelled, unlabelled)``: ``n_labels`` labelled rows (stratified) and the rest unlabelled.

    The unlabelled part keeps the same ids with label ``-1``; ``n_unlabelled`` caps its size (a
    seeded draw from the remaining rows). Rows already unlabelled in ``split`` can only go to the
    unlabelled part.
    """
    labels = np.asarray(split.labels, dtype=np.int64)
    labelled_rows = np.flatnonzero(labels != UNLABELLED)
    if not 0 < n_labels <= len(labelled_rows):
        raise UserInputError(
            f"label budget {n_labels} is not possible for split '{split.name}' with "
            f"{len(labelled_rows)} labelled rows; choose 1..{len(labelled_rows)}"
        )
    chosen = labelled_rows[stratified_choice(labels[labelled_rows], n_labels, seed)]
    mask = np.ones(len(split), dtype=bool)
    mask[chosen] = False
    rest = np.flatnonzero(mask)
    if n_unlabelled is not None:
        if not 0 <= n_unlabelled <= len(rest):
            raise UserInputError(
                f"n_unlabelled={n_unlabelled} but only {len(rest)} rows of split '{split.name}' are left"
            )
        rng = np.random.default_rng([seed, 1])
        rest = np.sort(rng.choice(rest, size=n_unlabelled, replace=False)) if n_unlabelled else rest[:0]
    unlabelled = split.subset(rest.tolist(), "unlabelled")
    unlabelled = unlabelled.relabel([UNLABELLED] * len(unlabelled), "unlabelled")
    return split.subset(chosen.tolist(), "labelled"), unlabelled


class _Joined:
    """``i -> fn of the part holding row i`` (picklable, for the loaders and digests of :func:`concat`)."""

    def __init__(self, parts: list[Split], digest: bool) -> None:
        self.parts = parts
        self.digest = digest
        self.starts = np.cumsum([0] + [len(p) for p in parts]).tolist()

    def __call__(self, i: int) -> Any:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        part, j = self.parts[k], i - self.starts[k]
        return part.content_digest(j) if self.digest else part._load_fields(j)


def concat(parts: list[Split], name: str) -> Split:
    """The rows of ``parts`` one after the other (ids must stay unique)."""
    ids = [i for p in parts for i in p.ids]
    if len(set(ids)) != len(ids):
        raise UserInputError(f"splits {[p.name for p in parts]} share sample ids; they cannot be joined")
    labels = [v for p in parts for v in p.labels]
    return Split(name, ids, labels, _Joined(list(parts), False), _Joined(list(parts), True))


def with_own_unlabelled(train: Split, own: Split) -> Split:
    """The training split joined with the dataset's own unlabelled rows: the rows of the one bank
    that training extracts when a dataset has such rows (and that the teacher ranking reads)."""
    return concat([train, own], "train+unlabelled")


def unlabelled_pool(parts: list[Split | None]) -> Split | None:
    """The unlabelled rows of ``parts`` (hidden labels and a dataset's own unlabelled rows) as one
    split whose labels are all ``-1``; None when there are none."""
    rows = [p for p in parts if p is not None and len(p)]
    if not rows:
        return None
    pool = rows[0] if len(rows) == 1 else concat(rows, "unlabelled")
    return pool.relabel([UNLABELLED] * len(pool), "unlabelled")


@dataclass(frozen=True)
class TrainingRows:
    """The rows a training run uses: what cross-entropy sees and what only the regulariser sees.

    ``unlabelled`` is the pool (labels ``-1``): rows whose labels a budget hides, rows of the
    training split with no label, then the dataset's own unlabelled rows; ``own`` is the part of
    the pool that comes from the dataset's own unlabelled split, None when it gives none (its rows
    need teacher features from a bank over more than the training split: :meth:`bank_rows`).
    """

    train: Split
    labelled: Split
    unlabelled: Split | None
    own: Split | None

    def without_unlabelled(self) -> TrainingRows:
        return TrainingRows(self.train, self.labelled, None, None)

    def bank_rows(self) -> Split | str:
        """The rows the teachers' bank must cover: ``"train"``, or the training split joined with
        the dataset's own unlabelled rows when the pool holds some."""
        if self.unlabelled is not None and self.own is not None:
            return with_own_unlabelled(self.train, self.own)
        return "train"


def training_rows(
    train: Split,
    own: Split | None,
    n_labels: int | None = None,
    n_unlabelled: int | None = None,
    seed: int = 0,
) -> TrainingRows:
    """Labelled rows and unlabelled pool of a run, the one rule for ``fusion-aft train`` and the
    benchmark suites.

    With ``n_labels``, a stratified draw of that many labelled rows; the other training rows join
    the pool. ``n_unlabelled`` caps the pool, counting the hidden-label rows first, then a seeded
    draw of the dataset's ``own`` unlabelled rows. Without ``n_labels``, every labelled training
    row is labelled and the rows with no label, then ``own``, form the pool.
    """
    if n_labels is not None:
        cap = None if n_unlabelled is None else min(n_unlabelled, len(train) - n_labels)
        labelled, hidden = label_budget(train, n_labels, seed=seed, n_unlabelled=cap)
        if cap is not None and own is not None:
            own = _draw(own, n_unlabelled - cap, seed)
    else:
        labels = train.labels
        unl_rows = [i for i, y in enumerate(labels) if y == UNLABELLED]
        keep = [i for i, y in enumerate(labels) if y != UNLABELLED]
        labelled = train.subset(keep, "labelled") if unl_rows else train
        hidden = train.subset(unl_rows, "unlabelled") if unl_rows else None
    own = own if own is not None and len(own) else None
    return TrainingRows(train, labelled, unlabelled_pool([hidden, own]), own)


def _draw(split: Split, n: int, seed: int) -> Split:
    """``n`` rows of ``split`` (a seeded draw, source order kept); all of them when ``n`` is larger."""
    if n >= len(split):
        return split
    rows = np.sort(np.random.default_rng([seed, 2]).choice(len(split), size=n, replace=False))
    return split.subset(rows.tolist(), split.name)
