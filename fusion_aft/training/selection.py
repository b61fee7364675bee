"""Choosing β from per-fold holdout scores: the one-standard-error rule.

Each β of the grid has one holdout cross-entropy per fold. Per β the sweep records the mean, the
sample standard deviation (``ddof = 1``) and the standard error ``std / sqrt(k)``. The rule
(Breiman et al. 1984, §3.4.3; Hastie, Tibshirani & Friedman, *ESL* §7.10) takes the β with the
lowest mean, then chooses the **largest** β whose mean is at most that minimum plus the minimum's
standard error.

Why the largest: β weighs the prior that keeps the student's features close to the teachers'
kernel, so a larger β is the more constrained, "simpler" model in the sense of the rule (the way
glmnet's ``lambda.1se`` is the largest penalty within one SE). Among β values the folds cannot
tell apart, it keeps the most of the teachers' knowledge instead of letting noise in a few
holdout rows switch the regulariser off. Example: means ``0.70, 0.66, 0.65, 0.69`` for
β ``0, 1, 10, 100`` with SE 0.02 at β = 10: threshold 0.67, so β = 10 (0.69 > 0.67 rules out 100).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["Rule", "choose_beta", "summarise"]

Rule = Literal["one_se", "min"]


def summarise(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``std`` (sample, ``ddof = 1``; 0 for one value) and ``stderr = std / sqrt(n)``."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "stderr": std / math.sqrt(n), "n": n}


def choose_beta(
    per_beta: Mapping[float, Iterable[float]], rule: Rule = "one_se", zero_unless_better: bool = False
) -> dict[str, Any]:
    """The chosen β from ``{β: fold losses}`` (lower is better) and how it was reached.

    With ``zero_unless_better`` a β = 0 candidate (the student alone) whose mean is within the
    threshold is chosen: a β > 0 must beat the student alone by more than the rule's margin, so
    the regulariser stays off where the folds cannot tell it from off.

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
    beta = max(within) if rule == "one_se" else min_beta
    kept_off = zero_unless_better and beta != 0 and 0.0 in within
    if kept_off:
        beta = 0.0
    return {"beta": beta, "min_beta": min_beta, "threshold": threshold, "kept_off": kept_off, "stats": stats}
