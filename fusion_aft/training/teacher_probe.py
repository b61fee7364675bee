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
import torch

from fusion_aft.data.records import Split
from fusion_aft.ranking.probe import fit_logistic
from fusion_aft.training.selection import paired_difference, summarise

log = logging.getLogger(__name__)

__all__ = ["MAX_FIT_ROWS", "compare_with_student_alone", "probe_folds", "shortfall_warning"]


def _standardised(fit: np.ndarray, hold: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x_fit = torch.from_numpy(np.asarray(fit, dtype=np.float32))
    x_hold = torch.from_numpy(np.asarray(hold, dtype=np.float32))
    mean = x_fit.mean(0)
    std = x_fit.std(0, unbiased=False)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return (x_fit - mean) / std, (x_hold - mean) / std


#: fit rows per fold beyond which the probe fits on a seeded random subset (its cost grows with
#: rows × features × classes per L-BFGS step; the holdout is always scored whole)
MAX_FIT_ROWS = 20_000


def probe_folds(
    bank: Any,
    folds: Sequence[tuple[Split, Split]],
    num_classes: int,
    c: float = 1.0,
    max_fit_rows: int = MAX_FIT_ROWS,
) -> list[float]:
    """Holdout accuracy of a logistic regression (``C = c``, standardised features) on the joint
    bank's features, fitted on each fold's training part (at most ``max_fit_rows`` of it, drawn
    with a fixed seed) and scored on its whole holdout, one per fold."""
    out = []
    for fit_part, hold in folds:
        ids, labels = list(fit_part.ids), list(fit_part.labels)
        if len(ids) > max_fit_rows:
            keep = np.sort(np.random.default_rng(0).choice(len(ids), max_fit_rows, replace=False))
            ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
        x_fit, x_hold = _standardised(bank.rows(ids), bank.rows(hold.ids))
        y_fit = torch.tensor(labels, dtype=torch.long)
        weight, bias = fit_logistic(x_fit, y_fit, num_classes, c=c)
        predicted = (x_hold @ weight + bias).argmax(1).numpy()
        out.append(float(np.mean(predicted == np.asarray(hold.labels))))
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
