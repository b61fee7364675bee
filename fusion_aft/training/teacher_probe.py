"""How much the teachers know of the labels: a linear probe of the bank on the β sweep's folds.

AFT can only hand the student what a linear read-out of the teachers' features can use. Where a
logistic regression on the bank, fitted on each fold's training part, predicts the held-out fold
worse than the student alone does, the teachers know less of these labels than the student learns
by itself and the regulariser has little to give (on 2012 convention-speech paragraphs by party
the two MiniLM teachers' probe reached 62 % against 69 % for the word-vector student, and every
β > 0 lost accuracy). The probe uses the same folds as the sweep, so it pairs fold by fold with
the student alone (β = 0).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fusion_aft.bank.probe import linear_probe, probe_features
from fusion_aft.data.records import Split
from fusion_aft.training.selection import paired_difference, summarise

log = logging.getLogger(__name__)

__all__ = ["MAX_FIT_ROWS", "compare_with_student_alone", "probe_folds", "shortfall_warning"]


#: fit rows per fold beyond which the probe fits on a seeded random subset (its cost grows with
#: rows × features × classes per solver step; the holdout is always scored whole)
MAX_FIT_ROWS = 20_000


def probe_folds(
    bank: Any, folds: Sequence[tuple[Split, Split]], c: float = 1.0, max_fit_rows: int = MAX_FIT_ROWS
) -> list[float]:
    """Holdout accuracy of the bank's linear probe (:func:`fusion_aft.bank.probe.linear_probe`:
    logistic regression, ``C = c``, standardised features), fitted on each fold's training part (at
    most ``max_fit_rows`` of it, drawn with a fixed seed) and scored on its whole holdout, one per
    fold."""
    out = []
    for fit_part, hold in folds:
        ids, labels = list(fit_part.ids), list(fit_part.labels)
        if len(ids) > max_fit_rows:
            keep = np.sort(np.random.default_rng(0).choice(len(ids), max_fit_rows, replace=False))
            ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
        x_fit, x_hold = probe_features(bank, ids), probe_features(bank, hold.ids)
        out.append(linear_probe(x_fit, labels, x_hold, hold.labels, c)["accuracy"])
    return out


def compare_with_student_alone(
    probe: Sequence[float], student_alone: Mapping[int, float] | None
) -> dict[str, Any]:
    """The probe's per-fold accuracies, their mean and standard error, and (given the student
    alone's holdout accuracy per fold) the paired difference probe − student alone and whether
    the probe is below it (``below_student_alone``; None when there is no β = 0 to compare)."""
    stats = summarise(probe)
    record: dict[str, Any] = {
        "fold_accuracy": list(probe),
        "accuracy": stats["mean"],
        "stderr_accuracy": stats["stderr"],
        "vs_student_alone": None,
        "stderr_vs_student_alone": None,
        "below_student_alone": None,
    }
    if student_alone:
        d = paired_difference(dict(enumerate(probe)), student_alone)
        record.update(
            vs_student_alone=d["mean"],
            stderr_vs_student_alone=d["stderr"],
            below_student_alone=d["mean"] < 0,
        )
    return record


def shortfall_warning(probe: Mapping[str, Any]) -> str | None:
    """The warning for a probe below the student alone (None when it is not, or cannot be told)."""
    if not probe.get("below_student_alone"):
        return None
    alone = probe["accuracy"] - probe["vs_student_alone"]
    return (
        f"a linear probe of the teachers' features predicts the held-out folds less well "
        f"({100 * probe['accuracy']:.1f} %) than the student alone ({100 * alone:.1f} %): the teachers "
        "seem to know less of these labels than the student learns by itself, so the regulariser has "
        "little to transfer; `fusion-aft teachers rank` compares candidate teachers"
    )
