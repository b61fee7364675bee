"""Choosing β from per-fold holdout scores: the one-standard-error rule.

Each β of the grid has one holdout cross-entropy per fold. Per β the sweep records the mean, the
sample standard deviation (``ddof = 1``) and the standard error ``std / sqrt(k)``. The rule
(Breiman et al. 1984, §3.4.3; Hastie, Tibshirani & Friedman, *ESL* §7.10) takes the β with the
lowest mean, then chooses among the β values whose mean is at most that minimum plus the
minimum's standard error: the **largest** of them (the classic rule), or the one with the highest
mean holdout accuracy (``prefer``; what ``fusion-aft train --beta auto`` does by default).

Why the largest: β weighs the prior that keeps the student's features close to the teachers'
kernel, so a larger β is the more constrained, "simpler" model in the sense of the rule (the way
glmnet's ``lambda.1se`` is the largest penalty within one SE). Among β values the folds cannot
tell apart, it keeps the most of the teachers' knowledge instead of letting noise in a few
holdout rows switch the regulariser off. Example: means ``0.70, 0.66, 0.65, 0.69`` for
β ``0, 1, 10, 100`` with SE 0.02 at β = 10: threshold 0.67, so β = 10 (0.69 > 0.67 rules out 100).
Why accuracy instead: the folds cannot tell those β apart on the loss, and the one a user is
judged on is accuracy; the largest β within the threshold can be the one that has traded
accuracy for calibration.

Cross-entropy rewards a better-calibrated student even where it classifies worse: a student alone
that is very over-confident has a high holdout cross-entropy, and a β that only tempers its
confidence can win on that score while its holdout accuracy falls. :func:`accuracy_veto` checks
the chosen β against the student alone (β = 0) on accuracy, fold by fold on the same holdout rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["Rule", "TieBreak", "accuracy_veto", "choose_beta", "paired_difference", "summarise"]

Rule = Literal["one_se", "min"]
#: how the one-SE rule picks among the β values within its threshold
TieBreak = Literal["accuracy", "largest"]


def summarise(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``std`` (sample, ``ddof = 1``; 0 for one value) and ``stderr = std / sqrt(n)``."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "stderr": std / math.sqrt(n), "n": n}


def choose_beta(
    per_beta: Mapping[float, Iterable[float]],
    rule: Rule = "one_se",
    zero_unless_better: bool = False,
    prefer: Mapping[float, float] | None = None,
) -> dict[str, Any]:
    """The chosen β from ``{β: fold losses}`` (lower is better) and how it was reached.

    Among the β values within the threshold the largest is chosen, or, given ``prefer`` (a score
    per β, higher is better, e.g. the mean holdout accuracy), the one that scores highest (ties
    go to the larger β). With ``zero_unless_better`` a β = 0 candidate (the student alone) whose
    mean is within the threshold is chosen: a β > 0 must beat the student alone by more than the
    rule's margin, so the regulariser stays off where the folds cannot tell it from off.

    Returns ``beta`` (the choice), ``min_beta`` (lowest mean; ties go to the smaller β),
    ``threshold`` (the minimum mean plus its standard error under ``one_se``; the minimum itself
    under ``min``), ``kept_off`` (whether ``zero_unless_better`` chose β = 0 over a larger β) and
    ``stats`` (``{β: summarise(losses)}``).
    """
    if not per_beta:
        raise ValueError("no β candidates to choose from")
    if rule not in ("one_se", "min"):
        raise ValueError(f"unknown β selection rule {rule!r}; use 'one_se' or 'min'")
    stats = {float(b): summarise(list(v)) for b, v in per_beta.items()}
    min_beta = min(stats, key=lambda b: (stats[b]["mean"], b))
    threshold = stats[min_beta]["mean"] + (stats[min_beta]["stderr"] if rule == "one_se" else 0.0)
    within = [b for b, s in stats.items() if s["mean"] <= threshold]
    if rule == "min":
        beta = min_beta
    elif prefer is None:
        beta = max(within)
    else:
        beta = max(within, key=lambda b: (float(prefer[b]), b))
    kept_off = zero_unless_better and beta != 0 and 0.0 in within
    if kept_off:
        beta = 0.0
    return {"beta": beta, "min_beta": min_beta, "threshold": threshold, "kept_off": kept_off, "stats": stats}


def paired_difference(values: Mapping[int, float], reference: Mapping[int, float]) -> dict[str, float]:
    """:func:`summarise` of ``values[k] - reference[k]`` over the keys (folds) both have."""
    shared = sorted(set(values) & set(reference))
    if not shared:
        raise ValueError("no fold in common to compare")
    return summarise([values[k] - reference[k] for k in shared])


def accuracy_veto(
    accuracy: Mapping[float, Mapping[int, float]], beta: float, n_se: float | None
) -> dict[str, Any]:
    """Whether β's holdout accuracy is below the student alone's by more than ``n_se`` standard errors.

    ``accuracy`` maps β to ``{fold: holdout accuracy}``. The difference β − (β = 0) is taken per
    fold (the same holdout rows) and summarised; β is vetoed when ``mean + n_se * stderr < 0``.
    The check needs β = 0 among the candidates and at least two shared folds (one holdout has no
    standard error); ``n_se=None`` switches it off. Returns ``vetoed``, ``applied`` and, when
    applied, the paired ``mean``, ``stderr`` and ``n``.
    """
    if n_se is None or beta == 0 or 0.0 not in accuracy or beta not in accuracy:
        return {"vetoed": False, "applied": False}
    diff = paired_difference(accuracy[beta], accuracy[0.0])
    if diff["n"] < 2:
        return {"vetoed": False, "applied": False}
    return {
        "vetoed": diff["mean"] + n_se * diff["stderr"] < 0,
        "applied": True,
        "mean": diff["mean"],
        "stderr": diff["stderr"],
        "n": diff["n"],
    }
