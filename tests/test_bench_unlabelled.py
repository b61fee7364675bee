"""A suite task gives the regulariser the rows ``fusion-aft train`` gives it: the rows a label
budget hides and the dataset's own unlabelled rows, with a training bank that covers both."""

from __future__ import annotations

import torch

import fusion_aft
from fusion_aft.bench.cell import prepare_task
from fusion_aft.bench.suite import parse_suite


def _task(path, **extra):
    suite = {
        "name": "own-rows",
        "defaults": {"methods": ["none", "aft"], "seeds": [0], "steps": 2, "batch_size": 8,
                     "beta": {"aft": [1.0]}},
        "tasks": [
            {
                "name": "reviews",
                "dataset": "csv",
                "dataset_options": {"path": str(path), "test_fraction": 0.25},
                "labels": 20,
                "student": "text_bow",
                "student_options": {"emb_dim": 8, "hidden": 8, "max_length": 16},
                "teachers": ["glove-6b-50d"],
                **extra,
            }
        ],
    }
    return parse_suite(suite).resolved()[0]


def test_a_suite_task_uses_the_datasets_own_unlabelled_rows_like_training(tmp_path, reviews_csv) -> None:
    path = reviews_csv
    ctx = prepare_task(_task(path), torch.device("cpu"), progress=False)
    own = {f"u{i}" for i in range(12)}
    hidden = set(ctx.dataset.split("train").ids) - set(ctx.labelled.ids)
    assert len(ctx.labelled) == 20 and len(hidden) == 10
    assert set(ctx.unlabelled.ids) == hidden | own  # the old suite left the 12 own rows out
    assert set(ctx.unlabelled.labels) == {-1}
    assert ctx.banks["train"].contains(sorted(own)).all()

    # the same rows as a training run with the same label budget and seed
    run = fusion_aft.train(
        dataset="csv", dataset_options={"path": str(path), "test_fraction": 0.25}, n_labels=20,
        seed=0, teachers=["glove-6b-50d"], student="text_bow",
        student_options={"emb_dim": 8, "hidden": 8, "max_length": 16}, method="aft", beta=1.0,
        steps=2, batch_size=8, progress=False, out=tmp_path / "run",
    )
    assert run.summary["n_unlabelled"] == len(ctx.unlabelled) == 22


def test_a_suite_task_caps_and_switches_off_the_pool(reviews_csv) -> None:
    path = reviews_csv
    capped = prepare_task(_task(path, unlabelled=10), torch.device("cpu"), progress=False)
    assert len(capped.unlabelled) == 10  # the hidden-label rows count first
    assert not any(i.startswith("u") for i in capped.unlabelled.ids)
    off = prepare_task(_task(path, use_unlabelled=False), torch.device("cpu"), progress=False)
    assert off.unlabelled is None and len(off.labelled) == 20
