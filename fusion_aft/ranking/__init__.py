"""Which foundation models to combine: rank teachers and recommend a subset before training.

* :func:`rank_teachers` works from the feature banks of a dataset's labelled training rows
  (extracting what is missing) and returns a :class:`TeacherRanking` (table, JSON, PNG).
* :func:`rank_features` does the same from feature arrays already in memory.
* :func:`kernel_alignment` (the default subset score), :func:`cv_probe`, :func:`linear_cka` and
  :func:`greedy_select` are the pieces.

Example::

    import fusion_aft
    r = fusion_aft.rank_teachers("rotten_tomatoes", "all-minilm-l6-v2,glove-6b-50d", n_labels=500)
    print(r.table())
"""

from __future__ import annotations

from fusion_aft.ranking.alignment import AlignmentScore, FoldedAlignment, kernel_alignment
from fusion_aft.ranking.probe import ProbeScore, cv_probe, paired_gain, stratified_folds
from fusion_aft.ranking.rank import rank_features, rank_teachers
from fusion_aft.ranking.result import SubsetScore, TeacherRanking, TeacherScore
from fusion_aft.ranking.select import Selection, SelectionStep, greedy_select
from fusion_aft.ranking.similarity import cka_matrix, linear_cka

__all__ = [
    "AlignmentScore",
    "FoldedAlignment",
    "ProbeScore",
    "Selection",
    "SelectionStep",
    "SubsetScore",
    "TeacherRanking",
    "TeacherScore",
    "cka_matrix",
    "cv_probe",
    "greedy_select",
    "kernel_alignment",
    "linear_cka",
    "paired_gain",
    "rank_features",
    "rank_teachers",
    "stratified_folds",
]
