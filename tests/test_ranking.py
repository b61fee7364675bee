"""Teacher ranking: the probe, CKA, greedy selection with its stopping rule and budgets, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_aft.cli import main
from fusion_aft.errors import UserInputError
from fusion_aft.ranking import cv_probe, linear_cka, rank_features, stratified_folds
from fusion_aft.ranking.cost import BankCost
from fusion_aft.ranking.probe import fit_logistic


def test_logistic_fit_matches_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = (x @ rng.normal(size=(6, 3)) + rng.normal(size=(120, 3))).argmax(1)
    ref = sklearn.LogisticRegression(C=0.5, max_iter=10000, tol=1e-8).fit(x, y)
    w, b = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 3, c=0.5)
    # softmax weights are defined up to a constant per feature: compare them centred over classes
    ours = w.numpy() - w.numpy().mean(1, keepdims=True)
    theirs = ref.coef_.T - ref.coef_.T.mean(1, keepdims=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    np.testing.assert_allclose(
        b.numpy() - b.numpy().mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-4
    )


def test_probe_on_a_separable_set_and_by_hand() -> None:
    # two classes separated on feature 0, plus a noise feature: every fold's probe is perfect
    y = np.array([0, 1] * 10)
    x = np.stack([np.where(y == 1, 3.0, -3.0) + np.linspace(-0.5, 0.5, 20), np.cos(np.arange(20))], 1)
    score = cv_probe(x, y, folds=5)
    assert score.accuracy == 1.0 and score.se == 0.0 and score.fold_accuracy == [1.0] * 5
    # labels unrelated to the only feature: a constant feature predicts nothing, so accuracy is the
    # majority class of each fold's training part (folds are stratified, so it is chance)
    const = cv_probe(np.ones((20, 1)), y, folds=5)
    assert const.accuracy <= 0.5
    folds = stratified_folds(np.array([0] * 10 + [1] * 5), 5, seed=3)
    for k in range(5):
        assert sorted(np.bincount(np.array([0] * 10 + [1] * 5)[folds == k], minlength=2)) == [1, 2]
    with pytest.raises(UserInputError, match="labelled rows only"):
        cv_probe(x, np.r_[y[:-1], -1])


def test_probe_in_the_row_space_equals_the_full_fit() -> None:
    # more features than rows: the probe fits in the training rows' span, built from the blocks'
    # summed kernels; the logits are those of the fit on all columns
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 90))
    y = (x[:, :3].sum(1) > 0).astype(int)
    from fusion_aft.ranking.probe import _row_space, _standardise

    tr, te = _standardise(torch.from_numpy(x[:30]), torch.from_numpy(x[30:]))
    w, b = fit_logistic(tr, torch.from_numpy(y[:30]), 2)
    blocks = [(tr[:, s] @ tr[:, s].T, te[:, s] @ tr[:, s].T) for s in (slice(0, 50), slice(50, 90))]
    tr2, te2 = _row_space(blocks)
    assert tr2.shape == (30, 29)  # centred rows span N − 1 dimensions
    w2, b2 = fit_logistic(tr2, torch.from_numpy(y[:30]), 2)
    np.testing.assert_allclose((te @ w + b).numpy(), (te2 @ w2 + b2).numpy(), atol=1e-4)
    # and the cross-validated probe of two blocks equals that of their concatenation
    from fusion_aft.ranking.probe import FoldedProbe

    probe = FoldedProbe({"a": x[:, :50], "b": x[:, 50:]}, y, folds=4)
    assert probe.score(("a", "b")).accuracy == cv_probe(x, y, folds=4).accuracy


def test_linear_cka_by_hand_and_its_invariances() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # centred, XᵀX = 2I
    y = np.array([[1.0], [0.0], [-1.0], [0.0]])  # centred, YᵀY = 2
    # ‖YᵀX‖² = ‖[2, 0]‖² = 4; ‖XᵀX‖ = ‖2I‖ = 2√2; ‖YᵀY‖ = 2  ->  4 / (2√2 · 2) = 1/√2
    assert linear_cka(x, y) == pytest.approx(1 / np.sqrt(2), abs=1e-12)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 6))
    b = a @ rng.normal(size=(6, 4)) + 0.5 * rng.normal(size=(50, 4))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(a, a) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(a @ q * 7.0 + 3.0, a) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(a @ q * 0.1, b) == pytest.approx(linear_cka(a, b), abs=1e-12)
    assert linear_cka(a, b) == pytest.approx(linear_cka(b, a), abs=1e-12)
    assert linear_cka(a, rng.normal(size=(50, 4))) < 0.25 < linear_cka(a, b)
    wide = rng.normal(size=(10, 200))  # the row-space formula gives the same value
    assert linear_cka(wide, wide[:, :5]) == pytest.approx(
        linear_cka(wide.copy(), np.ascontiguousarray(wide[:, :5])), abs=1e-12
    )


def _constructed(n: int = 240, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Four classes: 'a' tells classes {0,1} from {2,3}, 'b' tells 0 from 1 and 2 from 3; 'a_copy'
    is 'a' rotated and scaled (the same information) and 'noise' knows nothing. Only a + b (or
    a_copy + b) separates all four."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    a = np.stack([np.where(y >= 2, 2.0, -2.0), np.zeros(n)], 1) + 0.6 * rng.normal(size=(n, 2))
    b = np.stack([np.where(y % 2 == 1, 2.0, -2.0), np.zeros(n)], 1) + 0.6 * rng.normal(size=(n, 2))
    return {
        "a": a,
        "a_copy": 3.0 * a @ np.array([[0.6, -0.8], [0.8, 0.6]]),
        "b": b,
        "noise": rng.normal(size=(n, 3)),
    }, y


def test_greedy_selection_picks_the_complementary_pair_and_stops() -> None:
    features, y = _constructed()
    r = rank_features(features, y, folds=5, min_gain_se=1.0, score="probe")
    assert len(r.recommended) == 2 and "b" in r.recommended and "noise" not in r.recommended
    assert [s["kept"] for s in r.selection] == [True, True, False]  # a third teacher adds nothing
    assert r.selection[2]["gain"] <= r.selection[2]["gain_se"]
    singles = {t.teacher: t for t in r.teachers}
    assert singles["noise"].rank == 4 and singles["noise"].probe_accuracy < 0.4
    assert 0.4 < singles["a"].probe_accuracy < 0.6 and r.subset_score(["a", "b"]).accuracy > 0.9
    names, cka = r.cka_teachers, np.asarray(r.cka)
    i, j, k = names.index("a"), names.index("a_copy"), names.index("b")
    assert cka[i, j] == pytest.approx(1.0) and cka[i, k] < 0.1
    assert len(r.subsets) == 15  # every subset of four teachers is scored
    assert singles["a"].logme > singles["noise"].logme
    # the default rule adds a teacher unless it hurts by more than one SE: the exact copy costs
    # nothing on the probe, so it joins; the noise teacher joins only if it does not hurt
    inclusive = rank_features(features, y, folds=5, all_subsets=False, score="probe")
    assert set(r.recommended) <= set(inclusive.recommended)
    assert all(s["kept"] == (s["gain"] is None or s["gain"] > -s["gain_se"]) for s in inclusive.selection)


def test_budgets_are_respected() -> None:
    features, y = _constructed()
    features["b"] = np.concatenate([features["b"], np.zeros((len(y), 8))], 1)  # b is 10 wide
    r = rank_features(features, y, max_width=9, folds=3, all_subsets=False)
    assert "b" not in r.recommended and "b" in r.excluded
    assert sum(features[t].shape[1] for t in r.recommended) <= 9
    costs = {
        t: BankCost(seconds=s, rows=1000, bytes=0, source="measured")
        for t, s in {"a": 5.0, "a_copy": 1.0, "b": 4.0, "noise": 0.1}.items()
    }
    r = rank_features(features, y, costs=costs, max_cost=6.0, folds=3, all_subsets=False)
    assert sum(costs[t].seconds for t in r.recommended) <= 6.0
    assert "a" not in r.recommended or "b" not in r.recommended
    with pytest.raises(UserInputError, match="no teacher fits the budget"):
        rank_features(features, y, max_width=1)


def test_teachers_rank_cli_json_and_png(tmp_path: Path, capsys, monkeypatch) -> None:
    # a bank cache of its own: other tests running beside this one extract test banks too
    monkeypatch.setenv("FUSION_AFT_CACHE", str(tmp_path / "banks"))
    png = tmp_path / "rank.png"
    args = [
        "teachers",
        "rank",
        "--dataset",
        "rotten_tomatoes",
        "--teachers",
        "glove-6b-50d,all-minilm-l6-v2",
        "--dataset-option",
        "train_size=80",
        "--dataset-option",
        "test_size=16",
        "--folds",
        "3",
        "--json",
        "--out",
        str(png),
        "--no-progress",
    ]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_rows"] == 80 and data["classes"] == 2 and data["folds"] == 3
    rows = {t["teacher"]: t for t in data["teachers"]}
    assert set(rows) == {"glove-6b-50d", "all-minilm-l6-v2"}
    assert rows["glove-6b-50d"]["width"] == 50 and rows["all-minilm-l6-v2"]["width"] == 384
    assert sorted(t["rank"] for t in rows.values()) == [1, 2]
    # extraction seconds are those the bank recorded (the time spent extracting, not the bank's age)
    assert all(t["cost_source"] == "manifest" and t["seconds_per_1k_rows"] > 0 for t in rows.values())
    assert all(t["bank_bytes"] > 0 and t["params"] for t in rows.values())
    assert 0.0 <= data["cka"][0][1] <= 1.0 and data["cka"][0][0] == 1.0
    assert len(data["subsets"]) == 3 and data["recommended"]
    assert data["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the test split is never read: the banks are those training uses (the training split with
    # Rotten Tomatoes' own unlabelled plot texts), so `train` afterwards extracts nothing
    from fusion_aft.bank import find_banks

    assert {m.dataset.split for _, m, _ in find_banks(tmp_path / "banks") if m} == {"train+unlabelled"}
    # a second ranking reuses the banks (no teacher is run again) and prints a table
    assert main(args[:-4] + ["--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Recommended:" in out and "glove-6b-50d" in out


def test_rank_on_a_label_budget_uses_only_the_drawn_rows() -> None:
    import fusion_aft

    r = fusion_aft.rank_teachers(
        "rotten_tomatoes",
        "glove-6b-50d",
        dataset_options={"train_size": 80, "test_size": 16},
        n_labels=30,
        folds=3,
        progress=False,
    )
    assert r.n_rows == 30 and r.recommended == ["glove-6b-50d"]
    with pytest.raises(UserInputError, match="listed twice"):
        fusion_aft.rank_teachers("rotten_tomatoes", "glove-6b-50d,glove-6b-50d", progress=False)


def test_an_unknown_score_is_refused_before_any_bank_is_touched(tmp_path: Path) -> None:
    import fusion_aft

    with pytest.raises(UserInputError, match="unknown subset score 'bogus'; choose one of: alignment, probe"):
        fusion_aft.rank_teachers("rotten_tomatoes", "glove-6b-50d", score="bogus", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_ranking_reads_the_bank_training_built(tmp_path: Path, monkeypatch) -> None:
    # a user's CSV with unlabelled rows (empty labels): train first, then rank; the ranking must
    # find the bank training built over the labelled and unlabelled rows and extract nothing
    import fusion_aft
    from fusion_aft.bank import find_banks

    monkeypatch.setenv("FUSION_AFT_CACHE", str(tmp_path / "banks"))
    words = ["good", "fine", "great", "bad", "poor", "awful"]
    lines = ["id,text,label"]
    for i in range(60):
        w = words[i % 6]
        lines.append(f"r{i},a {w} film {i},{'pos' if i % 6 < 3 else 'neg'}")
    lines += [f"u{i},an unrated film {i}," for i in range(20)]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    fusion_aft.train(dataset=str(path), student="text_bow", method="aft", teachers=["glove-6b-50d"],
                     beta=1.0, steps=2, out=str(tmp_path / "run"), progress=False)
    before = {str(f) for f, _, _ in find_banks(tmp_path / "banks")}
    r = fusion_aft.rank_teachers(str(path), "glove-6b-50d", folds=3, progress=False)
    assert {str(f) for f, _, _ in find_banks(tmp_path / "banks")} == before  # nothing extracted
    assert r.n_rows == 48  # the labelled training rows only (80 % of the 60 labelled rows)
