"""A user's unlabelled rows (empty labels, an unlabelled/ image folder, a dataset's own unlabelled
split) reach the regulariser by default, never the cross-entropy, never a class, never the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import fusion_aft
from fusion_aft.errors import UserInputError


def test_empty_labels_form_the_unlabelled_split_never_train_test_or_a_class(tmp_path, reviews_csv) -> None:
    ds = fusion_aft.datasets.load("csv", path=str(reviews_csv), test_fraction=0.25)
    assert ds.classes == ["neg", "pos"]
    unl = ds.split("unlabelled")
    assert unl.ids == [f"u{i}" for i in range(12)] and set(unl.labels) == {-1}
    train, test = ds.split("train"), ds.split("test")
    assert len(train) == 30 and len(test) == 10  # 25 % of the 40 labelled rows
    assert not ({*train.ids, *test.ids} & set(unl.ids)) and min(train.labels + test.labels) == 0
    assert unl[3].fields["text"] == "an unlabelled review 3"
    test_file = tmp_path / "test.csv"
    test_file.write_text("id,text,label\nt0,some text,\n")
    with pytest.raises(UserInputError, match="test rows must be labelled"):
        fusion_aft.datasets.load("csv", path=str(reviews_csv), test_path=str(test_file))


def test_an_unlabelled_image_folder_is_not_a_class(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for folder, n in (("cat", 5), ("dog", 5), ("unlabelled", 4)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                tmp_path / folder / f"{i}.png"
            )
    ds = fusion_aft.datasets.load("image_folder", path=str(tmp_path), test_fraction=0.2)
    assert ds.classes == ["cat", "dog"]
    assert ds.split("unlabelled").ids == [f"unlabelled/{i}.png" for i in range(4)]
    assert set(ds.split("unlabelled").labels) == {-1}
    assert len(ds.split("train")) + len(ds.split("test")) == 10


def test_training_gives_the_unlabelled_rows_to_the_regulariser_by_default(tmp_path, reviews_csv) -> None:
    path = reviews_csv
    common = dict(
        dataset="csv",
        dataset_options={"path": str(path), "test_fraction": 0.25},
        teachers=["glove-6b-50d"],
        student="text_bow",
        student_options={"emb_dim": 8, "hidden": 8, "max_length": 16},
        method="aft",
        beta=1.0,
        steps=3,
        batch_size=8,
        log_every=1,
        progress=False,
        cache_dir=str(tmp_path / "banks"),
    )
    result = fusion_aft.train(**common, out=tmp_path / "run")
    assert result.summary["n_labelled"] == 30 and result.summary["n_unlabelled"] == 12
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert resolved["n_unlabelled"] == 12
    off = fusion_aft.train(**common, use_unlabelled=False, out=tmp_path / "off")
    assert off.summary["n_unlabelled"] == 0
    stl = fusion_aft.train(**{**common, "method": "none", "teachers": []}, out=tmp_path / "stl")
    assert stl.summary["n_unlabelled"] == 0  # no regulariser: nothing to feed them to
    with pytest.raises(UserInputError, match="has no unlabelled rows"):
        plain = tmp_path / "plain.csv"
        plain.write_text("\n".join(path.read_text().splitlines()[:41]) + "\n")
        fusion_aft.train(
            **{**common, "dataset_options": {"path": str(plain)}}, use_unlabelled=True, out=tmp_path / "x"
        )


def test_the_pool_joins_hidden_labels_and_own_unlabelled_rows(reviews_csv) -> None:
    from fusion_aft.data.splits import concat, label_budget, unlabelled_pool

    ds = fusion_aft.datasets.load("csv", path=str(reviews_csv), test_fraction=0.25)
    labelled, hidden = label_budget(ds.split("train"), 10, seed=0)
    pool = unlabelled_pool([hidden, ds.split("unlabelled")])
    assert len(pool) == 20 + 12 and set(pool.labels) == {-1}
    assert pool.ids == hidden.ids + ds.split("unlabelled").ids
    assert pool[20].fields == ds.split("unlabelled")[0].fields and pool[0].fields == hidden[0].fields
    joined = concat([ds.split("train"), ds.split("unlabelled")], "train+unlabelled")
    assert joined.content_digest(30) == ds.split("unlabelled").content_digest(0)
    assert unlabelled_pool([None, None]) is None
    with pytest.raises(UserInputError, match="share sample ids"):
        concat([hidden, hidden], "twice")
