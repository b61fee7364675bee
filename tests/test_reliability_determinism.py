"""The same seed on the same device gives the same results: two extractions give byte-identical
banks; two short trainings give identical weights, μ, losses and test accuracy; another seed
does not (so the comparison can fail)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import fusion_aft
from fusion_aft.bank.manifest import read_manifest
from fusion_aft.training import train

pytestmark = pytest.mark.xdist_group("reliability_determinism")

KW: dict[str, Any] = dict(
    dataset="rotten_tomatoes",
    dataset_options={"train_size": 120, "test_size": 40},
    student="text_bow",
    student_options={"emb_dim": 16, "hidden": 16, "max_length": 24, "dropout": 0.1},
    teachers=["glove-6b-50d"],
    method="aft",
    beta=3.0,
    n_labels=48,
    n_unlabelled=40,
    use_unlabelled=True,
    batch_size=8,
    steps=12,
    checkpoint_every=0,
    log_every=1,
    progress=False,
)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for rel in ("student/student.safetensors", "objective.safetensors"):
        out.update({f"{rel}:{k}": v for k, v in load_file(run / rel).items()})
    return out


def _history(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    drop = {"time", "wall_time_s", "elapsed_s", "steps_per_s", "rows_per_s", "lr_time"}
    return [{k: v for k, v in r.items() if k not in drop and "time" not in k} for r in rows]


def test_two_extractions_give_byte_identical_banks(tmp_path) -> None:
    ds = fusion_aft.datasets.load("rotten_tomatoes", train_size=64, test_size=16)
    folders = [
        fusion_aft.extract(
            "glove-6b-50d", ds, "train", cache_dir=tmp_path / n,
            batch_size=16, progress=False,
        ).banks[0].folder
        for n in ("a", "b")
    ]  # fmt: skip
    a, b = folders
    for name in ("features.npy", "ids.npy", "digests.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (read_manifest(f).model_dump(exclude={"created", "updated", "extract_seconds"}) for f in folders)
    assert ma == mb


def test_two_image_extractions_give_byte_identical_banks(tmp_path) -> None:
    ds = fusion_aft.datasets.load("fashion_mnist", train_size=48, test_size=16)
    folders = [
        fusion_aft.extract("efficientnet-lite0?image_size=32", ds, "train", cache_dir=tmp_path / n,
                           batch_size=16, progress=False, num_workers=0).banks[0].folder
        for n in ("a", "b")
    ]  # fmt: skip
    for name in ("features.npy", "ids.npy"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def test_same_seed_same_weights_metrics_and_mu(tmp_path) -> None:
    first = train(**KW, seed=7, out=tmp_path / "a")
    second = train(**KW, seed=7, out=tmp_path / "b")
    other = train(**KW, seed=8, out=tmp_path / "c")

    wa, wb, wc = _weights(first.run_dir), _weights(second.run_dir), _weights(other.run_dir)
    assert wa.keys() == wb.keys() == wc.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert any(not torch.equal(wa[k], wc[k]) for k in wa), "another seed changed nothing"
    assert _history(first.run_dir) == _history(second.run_dir)
    assert _history(first.run_dir) != _history(other.run_dir)
    assert first.test_accuracy == second.test_accuracy
    losses = [r["loss"] for r in _history(first.run_dir) if r.get("phase") == "train"]
    assert len(losses) == KW["steps"] and all(torch.isfinite(torch.tensor(losses)))
