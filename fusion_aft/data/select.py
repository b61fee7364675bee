"""Deterministic, seeded, stratified choices of row indices (shared by sources and split helpers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["stratified_choice", "stratified_folds", "stratified_partition"]


def stratified_choice(labels: Sequence[int] | np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` row indices (sorted) drawn so each label keeps its share of the rows.

    Each label ``c`` with ``n_c`` of the ``n`` rows gets ``floor(k * n_c / n)`` rows; the rows left
    over go to the labels with the largest remainders (ties: smaller label first). Within a label the
    rows are the first ones of one seeded permutation, so a larger ``k`` is a superset of a smaller.
    """
    y = np.asarray(labels, dtype=np.int64)
    n = len(y)
    if not 0 <= k <= n:
        raise ValueError(f"cannot choose {k} of {n} rows")
    if k == n:
        return np.arange(n)
    classes, counts = np.unique(y, return_counts=True)
    exact = k * counts / n
    quota = np.floor(exact).astype(np.int64)
    left = k - int(quota.sum())
    if left:
        order = np.lexsort((classes, -(exact - quota)))
        quota[order[:left]] += 1
    perm = np.random.default_rng(seed).permutation(n)
    chosen = []
    permuted_labels = y[perm]
    for c, q in zip(classes, quota, strict=True):
        if q:
            chosen.append(perm[permuted_labels == c][:q])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def stratified_partition(
    labels: Sequence[int] | np.ndarray, second: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into (rest, chosen) with ``second`` rows chosen, stratified."""
    chosen = stratified_choice(labels, second, seed)
    mask = np.ones(len(labels), dtype=bool)
    mask[chosen] = False
    return np.flatnonzero(mask), chosen


def stratified_folds(labels: Sequence[int] | np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` disjoint sorted index arrays covering ``range(len(labels))``, stratified by label.

    Within each label (in label order) the rows of one seeded permutation are dealt to the folds
    in turn, starting where the previous label stopped, so fold sizes differ by at most one and
    every label is spread as evenly as its count allows.
    """
    y = np.asarray(labels, dtype=np.int64)
    if not 1 <= k <= len(y):
        raise ValueError(f"cannot make {k} folds of {len(y)} rows")
    perm = np.random.default_rng(seed).permutation(len(y))
    fold_of = np.empty(len(y), dtype=np.int64)
    start = 0
    for c in np.unique(y):
        rows = perm[y[perm] == c]
        fold_of[rows] = (start + np.arange(len(rows))) % k
        start += len(rows)
    return [np.flatnonzero(fold_of == f) for f in range(k)]
