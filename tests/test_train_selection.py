"""The one-standard-error rule for β, checked against numbers worked out by hand."""

from __future__ import annotations

import math
import statistics

import pytest

from fusion_aft.data.select import stratified_folds
from fusion_aft.training.selection import accuracy_veto, choose_beta, paired_difference, summarise


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


def test_accuracy_tie_break_picks_the_most_accurate_beta_within_one_standard_error() -> None:
    # shaped like seed 0 of the word-polarity task: β = 10 has the lowest mean (0.437, SE 0.030,
    # threshold 0.467); β = 3 (0.464), 30 (0.440) and 100 (0.451) are within it, β = 1 (0.493) is not
    losses = {
        1.0: [0.43, 0.50, 0.549],
        3.0: [0.40, 0.46, 0.532],
        10.0: [0.39, 0.44, 0.481],
        30.0: [0.40, 0.44, 0.48],
        100.0: [0.41, 0.45, 0.493],
    }
    accuracy = {1.0: 0.7938, 3.0: 0.7975, 10.0: 0.8038, 30.0: 0.7913, 100.0: 0.7926}
    largest = choose_beta(losses)
    assert largest["min_beta"] == 10.0 and largest["beta"] == 100.0
    assert largest["threshold"] == pytest.approx(0.437 + statistics.stdev(losses[10.0]) / math.sqrt(3))
    assert choose_beta(losses, prefer=accuracy)["beta"] == 10.0
    # β = 1 is the most accurate but outside the threshold: not a candidate
    assert choose_beta(losses, prefer={**accuracy, 1.0: 0.99})["beta"] == 10.0
    # equal accuracy goes to the larger β; "min" ignores the preference
    assert choose_beta(losses, prefer={b: 0.8 for b in losses})["beta"] == 100.0
    assert choose_beta(losses, "min", prefer={**accuracy, 100.0: 0.99})["beta"] == 10.0


def test_accuracy_veto_compares_each_fold_with_the_student_alone() -> None:
    # holdout accuracies per fold, shaped like seed 2 of the debates task: β = 10 has the lowest
    # holdout cross-entropy but is below β = 0 on every fold
    acc = {
        0.0: {0: 0.590, 1: 0.685, 2: 0.625},
        3.0: {0: 0.570, 1: 0.665, 2: 0.630},
        10.0: {0: 0.555, 1: 0.625, 2: 0.595},
    }
    # β = 10: differences -0.035, -0.060, -0.030; mean -0.041667, deviations 0.006667, -0.018333,
    # 0.011667 -> variance 5.1667e-4 / 2, std 0.016073, SE 0.0092799; -0.041667 + 2 SE = -0.02311 < 0
    d10 = paired_difference(acc[10.0], acc[0.0])
    assert d10["mean"] == pytest.approx(-0.041667, abs=1e-6)
    assert d10["stderr"] == pytest.approx(0.0092799, abs=1e-6)
    veto = accuracy_veto(acc, 10.0, 2.0)
    assert veto["vetoed"] is True and veto["applied"] is True and veto["n"] == 3
    # β = 3: differences -0.020, -0.020, +0.005; mean -0.011667, SE 0.0083333; -0.011667 + 2 SE =
    # +0.005 >= 0: not vetoed at 2 SE, vetoed at 1 SE (-0.003333 < 0)
    assert accuracy_veto(acc, 3.0, 2.0)["vetoed"] is False
    assert accuracy_veto(acc, 3.0, 1.0)["vetoed"] is True
    assert accuracy_veto(acc, 3.0, 1.0)["stderr"] == pytest.approx(0.0083333, abs=1e-6)
    # no check: switched off, β = 0 itself, no β = 0 candidate, or one fold (no standard error)
    assert accuracy_veto(acc, 10.0, None) == {"vetoed": False, "applied": False}
    assert accuracy_veto(acc, 0.0, 2.0)["applied"] is False
    assert accuracy_veto({10.0: acc[10.0], 3.0: acc[3.0]}, 10.0, 2.0)["applied"] is False
    one_fold = {0.0: {0: 0.9}, 10.0: {0: 0.1}}
    assert accuracy_veto(one_fold, 10.0, 2.0)["applied"] is False
    # only the folds both have are compared
    assert paired_difference({0: 0.5, 1: 0.7, 2: 0.2}, {0: 0.4, 1: 0.4})["n"] == 2
    with pytest.raises(ValueError, match="no fold in common"):
        paired_difference({0: 0.5}, {1: 0.5})


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
