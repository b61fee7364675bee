"""The teachers' linear probe on the β sweep's folds: the same predictions as scikit-learn's
logistic regression on the same standardised bank rows, and the pairing with the student alone
worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fusion_aft.bank import JointBank
from fusion_aft.bank.synthetic import write_synthetic_bank
from fusion_aft.data.records import Split
from fusion_aft.data.splits import kfold
from fusion_aft.training.teacher_probe import compare_with_student_alone, probe_folds, shortfall_warning


def test_probe_folds_predicts_as_scikit_learn_on_a_real_bank(tmp_path) -> None:
    rows, width = 150, 12
    bank = JointBank.open([write_synthetic_bank(tmp_path / "bank", rows, width, ref="t", seed=3)])
    ids = [str(i) for i in range(rows)]
    x = bank.rows(ids).astype(np.float32)
    # three classes from two noisy directions of the features: learnable, not separable
    score = x[:, :2] + 0.8 * np.random.default_rng(0).standard_normal((rows, 2))
    labels = np.digitize(score[:, 0] + score[:, 1], [-1.0, 1.0])
    split = Split("train", ids, labels.tolist(), lambda i: {})
    folds = kfold(split, 3, seed=0)
    got = probe_folds(bank, folds, c=1.0)
    assert len(got) == 3
    for (fit_part, hold), acc in zip(folds, got, strict=True):
        x_fit, x_hold = (bank.rows(part.ids).astype(np.float32) for part in (fit_part, hold))
        scaler = StandardScaler().fit(x_fit)
        ref = LogisticRegression(C=1.0, max_iter=10000, tol=1e-10)
        ref.fit(scaler.transform(x_fit), fit_part.labels)
        expected = np.mean(ref.predict(scaler.transform(x_hold)) == hold.labels)
        assert abs(acc - expected) <= 1 / len(hold) + 1e-12  # at most one row on a decision boundary
    assert 0.5 < np.mean(got) < 1.0
    # past max_fit_rows the probe fits on a seeded subset of each fold's training part, the same
    # as fitting on that subset itself; the holdout is scored whole
    capped = probe_folds(bank, folds, max_fit_rows=60)
    for (fit_part, hold), acc in zip(folds, capped, strict=True):
        keep = np.sort(np.random.default_rng(0).choice(len(fit_part), 60, replace=False))
        subset = fit_part.subset(keep.tolist(), "fit_subset")
        assert acc == probe_folds(bank, [(subset, hold)])[0]
    assert capped != got


def test_the_probe_pairs_fold_by_fold_with_the_student_alone() -> None:
    probe = [0.60, 0.70, 0.80]
    alone = {0: 0.70, 1: 0.72, 2: 0.84}  # differences -0.10, -0.02, -0.04
    rec = compare_with_student_alone(probe, alone)
    assert rec["accuracy"] == pytest.approx(0.70) and rec["fold_accuracy"] == probe
    assert rec["stderr_accuracy"] == pytest.approx(0.1 / math.sqrt(3))
    mean = (-0.10 - 0.02 - 0.04) / 3
    sd = math.sqrt(((-0.10 - mean) ** 2 + (-0.02 - mean) ** 2 + (-0.04 - mean) ** 2) / 2)
    assert rec["vs_student_alone"] == pytest.approx(mean)
    assert rec["stderr_vs_student_alone"] == pytest.approx(sd / math.sqrt(3))
    assert rec["below_student_alone"] is True
    assert "less well (70.0 %) than the student alone (75.3 %)" in shortfall_warning(rec)
    above = compare_with_student_alone(probe, {0: 0.5, 1: 0.6, 2: 0.7})
    assert above["vs_student_alone"] == pytest.approx(0.1) and above["below_student_alone"] is False
    assert shortfall_warning(above) is None
    # no β = 0 in the grid: the probe alone, nothing to compare
    alone_missing = compare_with_student_alone(probe, None)
    assert alone_missing["vs_student_alone"] is None and alone_missing["below_student_alone"] is None
    assert shortfall_warning(alone_missing) is None
