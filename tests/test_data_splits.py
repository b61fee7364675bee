"""Holdout and label-budget helpers: deterministic, stratified, keep the source ids."""

from __future__ import annotations

from collections import Counter

import pytest

from fusion_aft.data import load
from fusion_aft.data.splits import holdout, label_budget
from fusion_aft.errors import UserInputError


@pytest.fixture(scope="module")
def train():
    return load("fashion_mnist", train_size=1000).split("train")


def test_holdout_is_deterministic_stratified_and_disjoint(train) -> None:
    fit, hold = holdout(train, 0.1, seed=0)
    fit2, hold2 = holdout(train, 0.1, seed=0)
    assert hold.ids == hold2.ids and fit.ids == fit2.ids
    assert hold.ids != holdout(train, 0.1, seed=1)[1].ids
    assert len(hold) == 100 and len(fit) == 900
    assert Counter(hold.labels) == {c: 10 for c in range(10)}
    assert not set(fit.ids) & set(hold.ids)
    assert set(fit.ids) | set(hold.ids) == set(train.ids)
    assert hold.name == "holdout"
    order = {i: n for n, i in enumerate(train.ids)}
    assert [order[i] for i in fit.ids] == sorted(order[i] for i in fit.ids)  # source order kept


def test_label_budget_hides_labels_and_keeps_ids(train) -> None:
    labelled, unlabelled = label_budget(train, 50, seed=2)
    assert len(labelled) == 50 and Counter(labelled.labels) == {c: 5 for c in range(10)}
    assert len(unlabelled) == 950 and set(unlabelled.labels) == {-1}
    assert set(labelled.ids) | set(unlabelled.ids) == set(train.ids)
    by_id = {r.id: r for r in (train[i] for i in range(len(train)))}
    rec = unlabelled[0]
    assert list(rec.image.getdata()) == list(by_id[rec.id].image.getdata())
    capped_l, capped_u = label_budget(train, 50, seed=2, n_unlabelled=100)
    assert capped_l.ids == labelled.ids and len(capped_u) == 100
    assert set(capped_u.ids) <= set(unlabelled.ids)


def test_split_helpers_reject_impossible_requests(train) -> None:
    with pytest.raises(UserInputError, match="label budget 2000"):
        label_budget(train, 2000)
    with pytest.raises(UserInputError, match="n_unlabelled"):
        label_budget(train, 10, n_unlabelled=5000)
    with pytest.raises(UserInputError, match="fraction"):
        holdout(train, 1.5)


def test_dataset_has_no_holdout_split_the_trainer_owns_it() -> None:
    ds = load("rotten_tomatoes", train_size=200)
    for name in ("holdout", "train_minus_holdout"):
        with pytest.raises(UserInputError, match="holdout_fraction") as err:
            ds.split(name)
        assert "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="no split 'valid'"):
        ds.split("valid")
