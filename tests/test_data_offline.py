"""The three offline datasets load with their documented counts, classes and fields."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest

import fusion_aft
from fusion_aft.data import load


def test_fashion_mnist_counts_classes_and_images() -> None:
    ds = load("fashion_mnist")
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 60000, "test": 10000}
    assert ds.classes == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
    assert Counter(ds.split("train").labels) == {c: 6000 for c in range(10)}
    rec = ds.split("test")[0]
    assert rec.id == "test-00000" and rec.label == 9  # the first test image is an ankle boot
    assert rec.image.mode == "L" and rec.image.size == (28, 28)


def test_fashion_mnist_subsets_are_stratified_deterministic_and_keep_ids() -> None:
    a = load("fashion_mnist", train_size=1000, test_size=500, seed=3)
    b = load("fashion_mnist", train_size=1000, test_size=500, seed=3)
    c = load("fashion_mnist", train_size=1000, test_size=500, seed=4)
    assert a.split("train").ids == b.split("train").ids
    assert a.split("train").ids != c.split("train").ids
    assert Counter(a.split("train").labels) == {k: 100 for k in range(10)}
    assert len(a.split("test")) == 500
    full = load("fashion_mnist").split("train")
    row = int(a.split("train").ids[7].split("-")[1])
    assert np.array_equal(np.asarray(a.split("train")[7].image), np.asarray(full[row].image))


def test_rotten_tomatoes_counts_and_unlabelled() -> None:
    ds = load("rotten_tomatoes")
    assert ds.classes == ["rotten", "fresh"]
    sizes = {k: len(v) for k, v in ds.splits.items()}
    assert sizes == {"train": 8808, "test": 4000, "unlabelled": 1083}
    labels = Counter(ds.split("train").labels) + Counter(ds.split("test").labels)
    assert labels == {1: 7403, 0: 5405}
    assert set(ds.split("unlabelled").labels) == {-1}
    assert not set(ds.split("train").ids) & set(ds.split("test").ids)
    assert all(r.text.strip() for r in ds.split("unlabelled"))
    small = load("rotten_tomatoes", train_size=300, test_size=100)
    assert set(small.split("test").ids) <= set(ds.split("test").ids)  # ids never move between splits
    assert len(small.split("train")) == 300


def test_emoji_pairs_groups_and_rendering() -> None:
    ds = load("emoji")
    assert ds.fields == ("image", "text")
    assert ds.classes == [
        "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
        "Travel & Places", "Activities", "Objects", "Symbols",
    ]  # fmt: skip
    assert ds.meta["dropped_groups"] == {"Flags": 4}
    assert len(ds.split("train")) + len(ds.split("test")) == 1166
    assert len(ds.split("test")) == 233
    first = ds.split("train")[0]
    assert first.id == "emoji-1F600" and first.text == "grinning face" and first.label == 0
    pixels = np.asarray(first.image)
    assert first.image.mode == "RGB" and pixels.shape == (64, 64, 3)
    assert pixels.std() > 20  # a coloured glyph, not a blank canvas
    assert (pixels[0, 0] == 255).all()  # on white


def test_splits_pickle_for_dataloader_workers() -> None:
    for name, options in (
        ("emoji", {"image_size": 32}),
        ("fashion_mnist", {"train_size": 50}),
        ("rotten_tomatoes", {}),
    ):
        split = load(name, **options).split("train")
        sub = split.subset([3, 1])
        clone = pickle.loads(pickle.dumps(sub))
        assert clone.ids == sub.ids
        assert clone[0].fields.keys() == sub[0].fields.keys()


def test_registry_lists_describes_and_rejects_unknown() -> None:
    names = fusion_aft.datasets.list()
    for n in (
        "fashion_mnist",
        "rotten_tomatoes",
        "emoji",
        "image_folder",
        "csv",
        "jsonl",
        "cifar10",
        "glue_sst2",
    ):
        assert n in names
    with pytest.raises(fusion_aft.UnknownNameError, match="fashion_mnist"):
        load("fashion_mnst")
    rows = {r["name"]: r for r in fusion_aft.datasets.describe()}
    assert rows["emoji"]["available"] and rows["emoji"]["splits"] == {"train": 933, "test": 233}
    assert rows["rotten_tomatoes"]["classes"] == ["rotten", "fresh"]
    assert rows["csv"]["splits"] is None


def test_register_dataset_decorator_and_duplicate() -> None:
    from fusion_aft.data import Dataset, Split, registry

    @fusion_aft.register_dataset("tiny_test_set", fields=("text",), summary="two rows")
    def tiny() -> Dataset:
        texts = ["a", "b"]
        split = Split("train", ["x", "y"], [0, 1], lambda i: {"text": texts[i]})
        return Dataset("tiny_test_set", {"train": split, "test": split}, ["n", "p"], ("text",))

    try:
        assert load("tiny_test_set").split("train")[1].text == "b"
        with pytest.raises(fusion_aft.errors.DuplicateNameError):
            fusion_aft.register_dataset("tiny_test_set", lambda: tiny())
    finally:
        registry.unregister("tiny_test_set")
