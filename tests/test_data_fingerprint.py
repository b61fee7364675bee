"""Dataset fingerprints: stable across loads and processes, sensitive to order, content and labels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from fusion_aft.data import Split, load
from fusion_aft.data.fingerprint import dataset_fingerprint, digest_fields, record_digests


def _texts(texts: list[str], labels: list[int], ids: list[str] | None = None) -> Split:
    return Split("train", ids or [f"r{i}" for i in range(len(texts))], labels, lambda i: {"text": texts[i]})


def test_fingerprint_is_stable_across_loads_and_processes() -> None:
    fp = dataset_fingerprint(load("rotten_tomatoes", train_size=200).split("train"))
    assert fp == dataset_fingerprint(load("rotten_tomatoes", train_size=200).split("train"))
    code = (
        "from fusion_aft.data import load; from fusion_aft.data.fingerprint import dataset_fingerprint;"
        "print(dataset_fingerprint(load('rotten_tomatoes', train_size=200).split('train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == fp
    assert len(fp) == 64


def test_fingerprint_changes_with_order_content_label_and_ids() -> None:
    texts, labels = ["good film", "bad film", "fine"], [1, 0, 1]
    base = dataset_fingerprint(_texts(texts, labels))
    assert base == dataset_fingerprint(_texts(list(texts), list(labels)))
    assert base != dataset_fingerprint(_texts(texts, labels).subset([1, 0, 2]))
    assert base != dataset_fingerprint(_texts(["good film", "bad film!", "fine"], labels))
    assert base != dataset_fingerprint(_texts(texts, [1, 1, 1]))
    assert base != dataset_fingerprint(_texts(texts, labels, ids=["a", "b", "c"]))
    assert base != dataset_fingerprint(_texts(texts[:2], labels[:2]))


def test_record_digests_point_at_the_changed_row() -> None:
    a = record_digests(_texts(["x", "y", "z"], [0, 0, 0]))
    b = record_digests(_texts(["x", "Y", "z"], [0, 0, 0]))
    assert list(np.flatnonzero(a != b)) == [1]


def test_source_digest_matches_field_changes_and_is_cached() -> None:
    split = load("fashion_mnist", train_size=100).split("train")
    fp = dataset_fingerprint(split)
    assert split.__dict__["_fusion_aft_fingerprint"][0] == fp  # cached on the split object
    relabelled = split.relabel([-1] * len(split))
    assert dataset_fingerprint(relabelled) != fp
    assert relabelled.ids == split.ids


def test_digest_fields_types_are_distinguished() -> None:
    assert digest_fields({"text": "1"}, 0) != digest_fields({"text": 1}, 0)
    assert digest_fields({"text": "a"}, 0) != digest_fields({"text": "a"}, 1)
    assert digest_fields({"a": "x", "b": "y"}, 0) == digest_fields({"b": "y", "a": "x"}, 0)
    assert len(digest_fields({"text": "a"}, 0)) == 16
