"""The one-standard-error rule for β, checked against numbers worked out by hand."""

from __future__ import annotations

import math
import statistics

import pytest

from fusion_aft.data.select import stratified_folds
from fusion_aft.training.selection import choose_beta, summarise


def test_summary_is_mean_sample_std_and_standard_error() -> None:
    s = summarise([0.5, 0.7, 0.9])
    # mean 0.7; deviations ±0.2, 0 -> variance (0.04 + 0 + 0.04) / 2 = 0.04, std 0.2, SE 0.2/√3
    assert s["mean"] == pytest.approx(0.7)
    assert s["std"] == pytest.approx(0.2)
    assert s["stderr"] == pytest.approx(0.2 / math.sqrt(3))
    assert summarise([0.4])["std"] == 0.0


def test_one_se_takes_the_largest_beta_within_one_standard_error_of_the_best() -> None:
    folds = {
        0.0: [0.70, 0.72, 0.68],  # mean 0.70
        1.0: [0.64, 0.66, 0.68],  # mean 0.66
        10.0: [0.62, 0.65, 0.68],  # mean 0.65, std 0.03, SE 0.03/√3 = 0.01732
        30.0: [0.66, 0.665, 0.67],  # mean 0.665 <= 0.65 + 0.01732 = 0.66732
        100.0: [0.69, 0.69, 0.69],  # mean 0.69 > threshold
    }
    got = choose_beta(folds)
    assert got["min_beta"] == 10.0
    assert got["threshold"] == pytest.approx(0.65 + 0.03 / math.sqrt(3))
    assert got["beta"] == 30.0
    assert choose_beta(folds, "min")["beta"] == 10.0


def test_one_se_keeps_the_best_when_no_larger_beta_is_close() -> None:
    folds = {0.1: [0.80, 0.80, 0.80], 1.0: [0.50, 0.52, 0.54], 10.0: [0.60, 0.61, 0.62]}
    # best β = 1 (mean 0.52, SE 0.02/√3 = 0.01155): 0.61 is far above 0.5315
    got = choose_beta(folds)
    assert got["beta"] == 1.0 == got["min_beta"]
    assert got["stats"][10.0]["mean"] == pytest.approx(0.61)


def test_zero_unless_better_keeps_the_student_alone_when_it_is_within_the_threshold() -> None:
    # shaped like the BBC + unlabelled sweep of seed 0: β = 0.1 has the lowest mean, 0.1316 with
    # SE 0.0181, so the threshold is 0.1497; β = 0 (0.1347) and β = 0.3 (0.1384) are within it and
    # β = 1 (0.1531) is not: one-SE alone takes 0.3, keeping off takes 0
    folds = {
        0.0: [0.1106, 0.1586, 0.1349],
        0.1: [0.1071, 0.1670, 0.1207],
        0.3: [0.1150, 0.1720, 0.1282],
        1.0: [0.1660, 0.1470, 0.1463],
    }
    se = statistics.stdev(folds[0.1]) / math.sqrt(3)
    assert statistics.fmean(folds[0.0]) <= statistics.fmean(folds[0.1]) + se
    plain = choose_beta(folds)
    assert plain["beta"] == 0.3 and plain["kept_off"] is False
    kept = choose_beta(folds, zero_unless_better=True)
    assert kept["beta"] == 0.0 and kept["kept_off"] is True and kept["min_beta"] == 0.1
    # a β > 0 that beats the student alone by more than one SE is still chosen
    clear = {0.0: [0.32, 0.30, 0.28], 10.0: [0.21, 0.22, 0.20]}
    assert choose_beta(clear, zero_unless_better=True)["beta"] == 10.0
    # no β = 0 candidate: nothing to keep
    assert choose_beta({k: v for k, v in folds.items() if k}, zero_unless_better=True)["beta"] == 0.3
    # under "min" the threshold is the minimum itself: β = 0 is kept only where it is the lowest
    assert choose_beta(folds, "min", zero_unless_better=True)["beta"] == 0.1


def test_ties_of_the_minimum_go_to_the_smaller_beta_and_bad_input_is_refused() -> None:
    assert choose_beta({3.0: [0.5, 0.5], 1.0: [0.5, 0.5]}, "min")["beta"] == 1.0
    assert choose_beta({3.0: [0.5, 0.5], 1.0: [0.5, 0.5]})["beta"] == 3.0  # zero SE, equal means
    with pytest.raises(ValueError, match="unknown β selection rule"):
        choose_beta({1.0: [0.5]}, "max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no β candidates"):
        choose_beta({})


def test_stratified_folds_cover_every_row_once_and_balance_each_label() -> None:
    labels = [0] * 7 + [1] * 5 + [2] * 3
    folds = stratified_folds(labels, 3, seed=4)
    rows = sorted(i for f in folds for i in f.tolist())
    assert rows == list(range(15))
    assert sorted(len(f) for f in folds) == [5, 5, 5]
    for f in folds:  # 7 -> 3/2/2, 5 -> 2/2/1, 3 -> 1/1/1
        counts = [sum(labels[i] == c for i in f.tolist()) for c in range(3)]
        assert counts[0] in (2, 3) and counts[1] in (1, 2) and counts[2] == 1
    assert [f.tolist() for f in stratified_folds(labels, 3, seed=4)] == [f.tolist() for f in folds]
    assert [f.tolist() for f in stratified_folds(labels, 3, seed=5)] != [f.tolist() for f in folds]
