"""Greedy forward selection of a teacher subset on a subset score.

Start from the best single teacher; at each step try adding each remaining teacher (within the
budgets), take the one whose subset scores best, and keep it when its gain over the current set
is above ``min_gain_se`` standard errors of that gain. The score is the kernel-target alignment
of the subset's mean kernel (:mod:`fusion_aft.ranking.alignment`, the default of
:func:`~fusion_aft.ranking.rank_features`) or the cross-validated probe of the concatenated
features (:mod:`fusion_aft.ranking.probe`). Either way the gain is a paired difference on the
same folds (per row for the probe, per left-out fold for the alignment), so its standard error
is that of a paired difference.

The stopping rule is the one-standard-error rule (Breiman et al. 1984; Hastie, Tibshirani &
Friedman, *Elements of Statistical Learning*, §7.10): a difference within one standard error is
treated as noise. Which side gets the benefit of the doubt is ``min_gain_se``:

* ``-1`` (the default, for AFT): a teacher is added unless it makes the score worse by more than
  one standard error. AFT learns a weight μ per teacher feature and switches off what does not
  help (Qiu et al. 2024, §3.2), so a teacher the score cannot show to be harmful costs extraction
  time, not accuracy, while leaving out a useful one costs accuracy. With a few hundred labelled
  rows the differences between subsets are mostly within noise, so a rule that needs a
  significant gain to add a teacher keeps one teacher almost always; the offline suite's
  ablation shows that this loses accuracy under AFT.
* ``+1`` (parsimonious): a teacher is added only when it improves the score by more than one
  standard error: the smallest, cheapest set the score can justify, e.g. for a student trained
  by a method that does not weight features.

The budgets (``max_width``, ``max_cost``) bound the set either way.
Example::

    def score(subset):             # any callable: subset -> ProbeScore or AlignmentScore
        return cv_probe(features_of(subset), labels)
    sel = greedy_select(["a", "b", "c"], score, width={"a": 384, ...}, max_width=800)
    sel.chosen, [s.__dict__ for s in sel.steps]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fusion_aft.errors import UserInputError

__all__ = ["Selection", "SelectionStep", "SubsetScoreLike", "greedy_select"]


class SubsetScoreLike(Protocol):
    """What selection needs of a subset's score (:class:`~fusion_aft.ranking.probe.ProbeScore`,
    :class:`~fusion_aft.ranking.alignment.AlignmentScore`)."""

    percent: bool

    @property
    def value(self) -> float: ...

    @property
    def se(self) -> float: ...

    def gain_over(self, other: SubsetScoreLike) -> tuple[float, float]: ...


def format_gain(value: float, percent: bool) -> str:
    """A gain or bound as text: percentage points for accuracies, a plain difference otherwise."""
    return f"{100 * value:+.2f} pt" if percent else f"{value:+.4f}"


@dataclass
class SelectionStep:
    """One step of the forward selection: the best candidate set and whether it was kept."""

    subset: tuple[str, ...]
    score: float
    gain: float | None
    gain_se: float | None
    kept: bool
    reason: str


@dataclass
class Selection:
    """The recommended subset and how it was reached."""

    chosen: tuple[str, ...]
    score: float
    se: float
    steps: list[SelectionStep] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # teacher -> why it could not be used


def _fits(
    subset: Sequence[str],
    width: Mapping[str, float],
    cost: Mapping[str, float | None],
    max_width: float | None,
    max_cost: float | None,
) -> bool:
    if max_width is not None and sum(width[t] for t in subset) > max_width:
        return False
    if max_cost is not None:
        costs = [cost.get(t) for t in subset]
        if any(c is None for c in costs) or sum(c for c in costs if c is not None) > max_cost:
            return False
    return True


def greedy_select(
    teachers: Sequence[str],
    score: Callable[[tuple[str, ...]], SubsetScoreLike],
    width: Mapping[str, float],
    cost: Mapping[str, float | None] | None = None,
    max_width: float | None = None,
    max_cost: float | None = None,
    min_gain_se: float = -1.0,
) -> Selection:
    """Forward selection under ``max_width`` (features) and ``max_cost`` (extraction s / 1000 rows).

    ``score`` is called with subsets in the order of ``teachers``; cache it if it is expensive.
    A teacher is added only when its paired gain exceeds ``min_gain_se`` standard errors (negative:
    added unless it hurts by more than that many).

    Raises:
        UserInputError: when no single teacher fits the budgets.
    """
    cost = cost or {}
    order = {t: i for i, t in enumerate(teachers)}
    excluded = {}
    for t in teachers:
        if not _fits([t], width, cost, max_width, None):
            excluded[t] = f"width {width[t]:g} > --max-width {max_width:g}"
        elif not _fits([t], width, cost, None, max_cost):
            c = cost.get(t)
            excluded[t] = ("extraction cost unknown" if c is None else f"cost {c:.2f} s/1k rows") + (
                f" > --max-cost {max_cost:g}"
            )
    usable = [t for t in teachers if t not in excluded]
    if not usable:
        raise UserInputError(
            "no teacher fits the budget ("
            + "; ".join(f"{t}: {why}" for t, why in excluded.items())
            + "); raise --max-width / --max-cost"
        )

    def key(subset: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(subset, key=order.__getitem__))

    singles = {t: score((t,)) for t in usable}
    first = max(usable, key=lambda t: (singles[t].value, -order[t]))
    current, current_score = (first,), singles[first]
    steps = [SelectionStep(current, current_score.value, None, None, True, "best single teacher")]
    while True:
        candidates = [
            key((*current, t))
            for t in usable
            if t not in current
            if _fits((*current, t), width, cost, max_width, max_cost)
        ]
        if not candidates:
            break
        scored = {c: score(c) for c in candidates}
        best = max(candidates, key=lambda c: (scored[c].value, -sum(width[t] for t in c)))
        gain, se = scored[best].gain_over(current_score)
        kept = gain > min_gain_se * se
        pct = scored[best].percent
        bound = f"{min_gain_se:+g} SE ({format_gain(min_gain_se * se, pct)})"
        verdict = "> " + bound + ": add" if kept else "≤ " + bound + ": stop"
        reason = f"gain {format_gain(gain, pct)} {verdict}"
        steps.append(SelectionStep(best, scored[best].value, gain, se, kept, reason))
        if not kept:
            break
        current, current_score = best, scored[best]
    return Selection(current, current_score.value, current_score.se, steps, excluded)
