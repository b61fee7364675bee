"""Kernel-target alignment of the teachers' mean kernel: by hand, its invariances, its jackknife
standard error, and forward selection driven by it."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_aft.errors import UserInputError
from fusion_aft.ranking import rank_features, stratified_folds
from fusion_aft.ranking.alignment import FoldedAlignment, kernel_alignment


def _cosine_of_centred(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    xn = xc / (np.linalg.norm(xc, axis=1, keepdims=True) + 1e-8)
    return xn @ xn.T


def _alignment_by_hand(blocks: list[np.ndarray], y: np.ndarray) -> float:
    n = y.size
    h = np.eye(n) - np.ones((n, n)) / n
    k = sum(_cosine_of_centred(x) for x in blocks) / len(blocks)
    onehot = np.eye(y.max() + 1)[y]
    kc, lc = h @ k @ h, h @ (onehot @ onehot.T) @ h
    return float((kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc)))


def _data(n: int = 60, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    a = np.eye(3)[y] @ rng.normal(size=(3, 5)) + 0.8 * rng.normal(size=(n, 5))
    b = rng.normal(size=(n, 4)) + 0.3 * y[:, None]
    return {"a": a, "b": b}, y


def test_alignment_equals_the_formula_by_hand() -> None:
    blocks, y = _data()
    align = FoldedAlignment(blocks, y, folds=4)
    assert align.score(("a",)).value == pytest.approx(_alignment_by_hand([blocks["a"]], y), abs=1e-10)
    both = align.score(("a", "b")).value
    assert both == pytest.approx(_alignment_by_hand([blocks["a"], blocks["b"]], y), abs=1e-10)
    assert kernel_alignment(blocks["b"], y) == pytest.approx(_alignment_by_hand([blocks["b"]], y), abs=1e-10)
    # a kernel that groups the rows exactly by class (balanced classes, one-hot features) scores 1;
    # features unrelated to the labels score near 0 (a small positive bias at finite N)
    y4 = np.arange(400) % 4
    assert kernel_alignment(np.eye(4)[y4], y4) == pytest.approx(1.0, abs=1e-9)
    noise = np.random.default_rng(3).normal(size=(400, 6))
    assert abs(kernel_alignment(noise, y4)) < 0.03


def test_alignment_ignores_each_teachers_scale_and_rotation() -> None:
    blocks, y = _data()
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))
    scaled = {"a": 10.0 * blocks["a"] @ q + 4.0, "b": blocks["b"]}
    assert FoldedAlignment(scaled, y).score(("a", "b")).value == pytest.approx(
        FoldedAlignment(blocks, y).score(("a", "b")).value, abs=1e-7  # up to the ε of the row norms
    )
    # the kernel of the raw concatenation is not scale-free: the louder teacher dominates it
    raw = kernel_alignment(np.concatenate([scaled["a"], scaled["b"]], 1), y)
    assert raw != pytest.approx(_alignment_by_hand([scaled["a"], scaled["b"]], y), abs=1e-3)


def test_leave_one_fold_out_values_and_jackknife_error() -> None:
    blocks, y = _data(n=45)
    folds = 3
    align = FoldedAlignment(blocks, y, folds=folds, seed=2)
    assign = stratified_folds(y, folds, seed=2)
    s = align.score(("a", "b"))
    by_hand = []
    for f in range(folds):
        keep = assign != f
        # the features are centred and normalised once on all rows; each left-out set re-centres
        # the kernel, which is what the double-centring by hand does on the sub-matrix
        k = (_cosine_of_centred(blocks["a"]) + _cosine_of_centred(blocks["b"])) / 2
        k = k[keep][:, keep]
        n = int(keep.sum())
        h = np.eye(n) - np.ones((n, n)) / n
        onehot = np.eye(3)[y[keep]]
        kc, lc = h @ k @ h, h @ (onehot @ onehot.T) @ h
        by_hand.append((kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc)))
    np.testing.assert_allclose(s.leave_out, by_hand, atol=1e-10)
    lo = np.asarray(by_hand)
    assert s.se == pytest.approx(np.sqrt((folds - 1) / folds * ((lo - lo.mean()) ** 2).sum()), abs=1e-12)
    gain, se = s.gain_over(align.score(("a",)))
    d = lo - np.asarray(align.score(("a",)).leave_out)
    assert gain == pytest.approx(s.value - align.score(("a",)).value)
    assert se == pytest.approx(np.sqrt((folds - 1) / folds * ((d - d.mean()) ** 2).sum()), abs=1e-12)


def test_alignment_uses_at_most_max_rows() -> None:
    blocks, y = _data(n=90)
    align = FoldedAlignment(blocks, y, folds=3, max_rows=40)
    assert align.n_rows <= 40
    assert np.bincount(y[align.rows], minlength=3).tolist() == [align.n_rows // 3] * 3  # stratified
    with pytest.raises(UserInputError, match="labelled rows only"):
        FoldedAlignment(blocks, np.r_[y[:-1], -1])


def test_selection_by_alignment_combines_complementary_teachers() -> None:
    # four classes: 'a' tells {0,1} from {2,3}, 'b' tells 0 from 1 and 2 from 3, 'a_copy' is 'a'
    # rotated and scaled (the same kernel), 'noise' knows nothing
    rng = np.random.default_rng(0)
    n = 240
    y = np.arange(n) % 4
    a = np.stack([np.where(y >= 2, 2.0, -2.0), np.zeros(n)], 1) + 0.6 * rng.normal(size=(n, 2))
    b = np.stack([np.where(y % 2 == 1, 2.0, -2.0), np.zeros(n)], 1) + 0.6 * rng.normal(size=(n, 2))
    features = {"a": a, "a_copy": 3.0 * a @ np.array([[0.6, -0.8], [0.8, 0.6]]), "b": b,
                "noise": rng.normal(size=(n, 3))}
    r = rank_features(features, y, folds=5, min_gain_se=1.0)
    assert r.score == "alignment" and set(r.recommended) in ({"a", "b"}, {"a_copy", "b"})
    singles = {t.teacher: t for t in r.teachers}
    assert singles["a"].alignment == pytest.approx(singles["a_copy"].alignment, abs=1e-9)
    assert singles["noise"].rank == 4 and abs(singles["noise"].alignment) < 0.05
    pair = r.subset_score(["a", "b"])
    assert pair.alignment > max(singles["a"].alignment, singles["b"].alignment) + 5 * pair.alignment_se
    # subsets are listed best alignment first, and each carries its probe accuracy too
    values = [s.alignment for s in r.subsets]
    assert values == sorted(values, reverse=True) and all(0.0 <= s.accuracy <= 1.0 for s in r.subsets)
    assert "alignment" in r.table() and "gain" in r.table()
    with pytest.raises(UserInputError, match="unknown subset score"):
        rank_features(features, y, score="bogus")
