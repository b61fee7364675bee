"""Rank teachers for a task before training, and recommend a subset to combine.

Everything is computed on the labelled rows of the training split (never the test split), from
the teachers' feature banks:

* per teacher: kernel-target alignment (:mod:`fusion_aft.ranking.alignment`), cross-validated
  linear-probe accuracy (:mod:`fusion_aft.ranking.probe`), LogME evidence
  (:func:`fusion_aft.objectives.logme.logme`), width, parameters and extraction cost per 1000
  rows (:mod:`fusion_aft.ranking.cost`);
* per pair: linear CKA of their features on the same rows (:mod:`fusion_aft.ranking.similarity`);
* per subset (all of them for up to four teachers, else those the selection visits): the
  alignment of the mean of the teachers' kernels and the probe of the concatenated features;
* the recommended subset: greedy forward selection on one of those two scores (``score``;
  alignment by default) with a one-standard-error stopping rule, within the optional width and
  cost budgets (:mod:`fusion_aft.ranking.select`).

Why alignment by default: AFT transfers the teachers' kernel, not their features, so the score
that predicts what a subset gives AFT is how well that kernel agrees with the labels. On the
offline suite's ablation it correlates positively with AFT's test accuracies across subsets on
all three tasks and on BBC News outside the suite (on a subjectivity task whose subsets all score
within noise of each other, neither score orders them), where the probe's order depends on its
regularisation strength and is reversed on Rotten Tomatoes (benchmarks/results/offline/ranking.md).
It also has no hyperparameter.

Example::

    import fusion_aft
    r = fusion_aft.rank_teachers("rotten_tomatoes", ["all-minilm-l6-v2", "glove-6b-50d"],
                                 n_labels=500, dataset_options={"train_size": 4500})
    print(r.table()); r.recommended; r.plot("ranking.png")
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft.errors import UserInputError
from fusion_aft.ranking.alignment import AlignmentScore, FoldedAlignment
from fusion_aft.ranking.cost import BankCost
from fusion_aft.ranking.probe import FoldedProbe, ProbeScore
from fusion_aft.ranking.result import SubsetScore, TeacherRanking, TeacherScore
from fusion_aft.ranking.select import greedy_select
from fusion_aft.ranking.similarity import cka_matrix

__all__ = ["rank_features", "rank_teachers"]

log = logging.getLogger(__name__)

#: every subset is scored when there are at most this many teachers (2⁴ − 1 = 15 probes)
ALL_SUBSETS_UP_TO = 4
#: the subset scores forward selection can use
SCORES = ("alignment", "probe")


def check_score(score: str) -> None:
    """Refuse a subset score that is not one of :data:`SCORES`."""
    if score not in SCORES:
        raise UserInputError(f"unknown subset score {score!r}; choose one of: {', '.join(SCORES)}")


def _logme(x: np.ndarray, y: np.ndarray) -> float:
    import torch

    from fusion_aft.objectives.logme import logme

    return logme(torch.from_numpy(np.asarray(x, dtype=np.float64)), torch.from_numpy(y)).evidence


def rank_features(
    features: Mapping[str, np.ndarray],
    labels: Sequence[int] | np.ndarray,
    *,
    params: Mapping[str, int | None] | None = None,
    costs: Mapping[str, BankCost] | None = None,
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    c: float = 1.0,
    max_width: int | None = None,
    max_cost: float | None = None,
    min_gain_se: float = -1.0,
    all_subsets: bool | None = None,
    score: str = "alignment",
    dataset: str = "",
) -> TeacherRanking:
    """Rank the teachers whose labelled-row features are ``features`` (name -> ``[N, d]``).

    ``score`` orders the subsets and drives the selection: ``"alignment"`` (default) or ``"probe"``;
    both are computed and reported for every scored subset.
    """
    names = list(features)
    if not names:
        raise UserInputError("no teachers to rank; pass at least one")
    check_score(score)
    y = np.asarray(labels, dtype=np.int64)
    for name, x in features.items():
        if x.ndim != 2 or x.shape[0] != y.size:
            raise UserInputError(f"teacher '{name}': features {x.shape} do not match {y.size} labels")
    params = params or {}
    costs = costs or {}
    t0 = time.perf_counter()
    cache: dict[tuple[str, ...], ProbeScore] = {}
    aligned: dict[tuple[str, ...], AlignmentScore] = {}
    probe = FoldedProbe(dict(features), y, folds=folds, repeats=repeats, seed=seed, c=c)
    alignment = FoldedAlignment(dict(features), y, folds=folds, seed=seed)

    def ensure_scored(subset: tuple[str, ...]) -> None:
        if subset not in cache:
            cache[subset] = probe.score(subset)
            aligned[subset] = alignment.score(subset)

    def probe_score(subset: tuple[str, ...]) -> ProbeScore:
        ensure_scored(subset)
        return cache[subset]

    def alignment_score(subset: tuple[str, ...]) -> AlignmentScore:
        ensure_scored(subset)
        return aligned[subset]

    width = {t: int(features[t].shape[1]) for t in names}
    cost_1k = {t: (costs[t].seconds_per_1k_rows if t in costs else None) for t in names}
    selection = greedy_select(
        names,
        alignment_score if score == "alignment" else probe_score,
        width,
        cost_1k,
        max_width=max_width,
        max_cost=max_cost,
        min_gain_se=min_gain_se,
    )
    if all_subsets is None:
        all_subsets = len(names) <= ALL_SUBSETS_UP_TO
    if all_subsets:
        for k in range(1, len(names) + 1):
            for subset in itertools.combinations(names, k):
                ensure_scored(subset)
    for t in names:
        ensure_scored((t,))
    score_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    evidence = {t: _logme(features[t], y) for t in names}
    cka_names, cka = cka_matrix(features)
    other_seconds = time.perf_counter() - t1

    rows = []
    for t in names:
        s = cache[(t,)]
        a = aligned[(t,)]
        cost = costs.get(t)
        rows.append(
            TeacherScore(
                teacher=t,
                width=width[t],
                params=params.get(t),
                alignment=a.value,
                alignment_se=a.se,
                probe_accuracy=s.accuracy,
                probe_se=s.se,
                logme=evidence[t],
                seconds_per_1k_rows=cost.seconds_per_1k_rows if cost else None,
                cost_source=cost.source if cost else "unknown",
                bank_bytes=cost.bytes if cost else None,
                recommended=t in selection.chosen,
            )
        )
    if score == "alignment":
        rows.sort(key=lambda r: (-r.alignment, -r.probe_accuracy))
    else:
        rows.sort(key=lambda r: (-r.probe_accuracy, -r.logme))
    for i, r in enumerate(rows, 1):
        r.rank = i
    subsets = [
        SubsetScore(
            teachers=list(k),
            alignment=aligned[k].value,
            alignment_se=aligned[k].se,
            accuracy=v.accuracy,
            se=v.se,
            width=sum(width[t] for t in k),
        )
        for k, v in cache.items()
    ]
    subsets.sort(key=lambda s: (-s.value(score), s.width))
    return TeacherRanking(
        dataset=dataset,
        n_rows=int(y.size),
        classes=int(np.unique(y).size),
        folds=folds,
        repeats=repeats,
        c=c,
        score=score,
        teachers=rows,
        cka_teachers=cka_names,
        cka=cka.tolist(),
        subsets=subsets,
        recommended=list(selection.chosen),
        selection=[s.__dict__ for s in selection.steps],
        excluded=selection.excluded,
        budgets={"max_width": max_width, "max_cost": max_cost, "min_gain_se": min_gain_se},
        seconds={"scores": score_seconds, "logme_cka": other_seconds},
        probe_scores=cache,
        alignment_scores=aligned,
    )


def labelled_training_rows(dataset: Any, n_labels: int | None, seed: int) -> Any:
    """``(train split, its labelled rows)``: the rows a training run with the same label budget
    and seed gives the cross-entropy (a stratified draw of ``n_labels`` when given)."""
    from fusion_aft.data.splits import training_rows

    train = dataset.split("train")
    labelled = training_rows(train, None, n_labels, None, seed).labelled
    if not len(labelled):
        raise UserInputError(f"the train split of '{dataset.name}' has no labelled rows to rank teachers on")
    return train, labelled


def bank_candidates(dataset: Any, train: Any) -> list[Any]:
    """The row sets whose banks hold the labelled training rows, preferred first: the one
    ``fusion-aft train`` builds by default (the training split joined with the dataset's own
    unlabelled rows, when it has any), then the training split alone."""
    from fusion_aft.data.splits import with_own_unlabelled

    own = dataset.splits.get("unlabelled")
    if own is not None and len(own):
        return [with_own_unlabelled(train, own), train]
    return [train]


def rank_teachers(
    dataset: Any,
    teachers: Sequence[str] | str,
    *,
    dataset_options: Mapping[str, Any] | None = None,
    n_labels: int | None = None,
    seed: int = 0,
    folds: int = 5,
    repeats: int = 1,
    c: float = 1.0,
    max_width: int | None = None,
    max_cost: float | None = None,
    min_gain_se: float = -1.0,
    all_subsets: bool | None = None,
    score: str = "alignment",
    cache_dir: str | Path | None = None,
    device: Any = "cpu",
    batch_size: int = 64,
    progress: bool = True,
) -> TeacherRanking:
    """Rank ``teachers`` on the labelled training rows of ``dataset`` (see the module docstring).

    Args:
        dataset: a dataset name (loaded with ``dataset_options``) or a ``Dataset``.
        teachers: teacher refs, a list or one comma-separated string.
        n_labels: draw this many labelled rows (stratified, ``seed``), as ``train --n-labels``
            does; default: every labelled row of the train split.
        folds, repeats: stratified cross-validation of the probe.
        c: inverse L2 strength of the probe (scikit-learn's ``C``).
        max_width: most features the recommended subset may have in total.
        min_gain_se: a teacher joins the subset when its paired probe gain is above this many
            standard errors (default −1: unless it hurts; see :mod:`fusion_aft.ranking.select`).
        max_cost: most extraction seconds per 1000 rows the recommended subset may cost in total.
        all_subsets: score every subset (default: when there are at most four teachers).
        score: what orders the subsets and drives the selection: ``"alignment"`` (the kernel
            AFT would transfer against the labels; default) or ``"probe"``.
        cache_dir, device, batch_size, progress: for extracting missing banks.
    """
    import fusion_aft

    check_score(score)  # before any bank is read or extracted
    refs = [t.strip() for t in teachers.split(",")] if isinstance(teachers, str) else list(teachers)
    refs = [t for t in refs if t]
    if not refs:
        raise UserInputError("no teachers given; pass e.g. --teachers all-minilm-l6-v2,glove-6b-50d")
    if len(set(refs)) != len(refs):
        raise UserInputError(f"a teacher is listed twice in {refs}; list each once")
    t0 = time.perf_counter()
    ds = (
        fusion_aft.datasets.load(dataset, **dict(dataset_options or {}))
        if isinstance(dataset, str)
        else dataset
    )
    train, labelled = labelled_training_rows(ds, n_labels, seed)
    from fusion_aft.ranking.banks import open_or_extract

    bank, costs = open_or_extract(
        refs, ds, bank_candidates(ds, train), cache_dir, device, batch_size, progress=progress
    )
    load_seconds = time.perf_counter() - t0
    rows = np.asarray(bank.rows(labelled.ids), dtype=np.float32)
    features = {ref: rows[:, bank.slices[b.ref]] for ref, b in zip(refs, bank.banks, strict=True)}
    params = {}
    for ref in refs:
        try:
            params[ref] = fusion_aft.teachers.get(ref).parameters
        except Exception:  # a card without a parameter count still ranks
            params[ref] = None
    result = rank_features(
        features,
        labelled.labels,
        params=params,
        costs=costs,
        folds=folds,
        repeats=repeats,
        seed=seed,
        c=c,
        max_width=max_width,
        max_cost=max_cost,
        min_gain_se=min_gain_se,
        all_subsets=all_subsets,
        score=score,
        dataset=ds.name,
    )
    result.seconds["banks"] = load_seconds
    result.seconds["total"] = time.perf_counter() - t0
    return result
