"""Linear probe on a feature bank: how good the teachers' features are for a task.

Logistic regression on the concatenated (standardised) teacher features of the labelled training
rows, scored on the test rows. It is the x-axis of the paper's "stronger teacher, better student"
plots (Qiu et al. 2024, Fig. 4) and an upper reference for what the teachers know with these
labels. Rows are read from the bank by sample id, never by position. The benchmark suites score
it on the test rows; the β sweep of ``fusion-aft train`` on each fold's holdout
(:mod:`fusion_aft.training.teacher_probe`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["linear_probe", "probe_features"]


def probe_features(bank: Any, ids: Sequence[str], teachers: Sequence[str] | None = None) -> np.ndarray:
    """Rows of ``bank`` for ``ids``, restricted to the columns of ``teachers`` (all when None)."""
    rows = np.asarray(bank.rows(list(ids)), dtype=np.float32)
    if teachers is None:
        return rows
    cols = [np.arange(rows.shape[1])[bank.slices[t]] for t in teachers]
    return rows[:, np.concatenate(cols)]


def linear_probe(
    train_x: np.ndarray,
    train_y: Sequence[int] | np.ndarray,
    test_x: np.ndarray,
    test_y: Sequence[int] | np.ndarray,
    c: float = 1.0,
    max_iter: int = 2000,
) -> dict[str, float]:
    """Fit a multinomial logistic regression on standardised features; return test accuracy.

    Standardisation statistics come from the training rows only. Deterministic (lbfgs).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    if len(np.unique(train_y)) < 2:
        raise ValueError("the linear probe needs at least two classes among the training labels")
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(scaler.transform(train_x), train_y)
    pred = clf.predict(scaler.transform(test_x))
    train_acc = float((clf.predict(scaler.transform(train_x)) == train_y).mean())
    return {"accuracy": float((pred == test_y).mean()), "train_accuracy": train_acc}
