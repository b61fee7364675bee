"""Train tiny runs through ``fusion_aft.train``, export them, and check the exported student."""

from __future__ import annotations

import json

import pytest
import torch

import fusion_aft
from fusion_aft.cli import main
from fusion_aft.students.export import export_run


def _accuracy(student, split) -> float:
    probs = student.predict_proba(list(split))
    return float((probs.argmax(1) == torch.tensor(split.labels)).float().mean())


@pytest.mark.parametrize(
    ("dataset", "student", "student_options", "teachers", "method"),
    [
        ("rotten_tomatoes", "text_bow", {"emb_dim": 16, "hidden": 16}, ["glove-6b-50d"], "aft"),
        ("fashion_mnist", "small_cnn", {"width": 8}, [], "none"),
    ],
)
def test_exported_student_matches_the_trained_one(
    tmp_path, dataset, student, student_options, teachers, method
):
    if teachers:
        ok, why = fusion_aft.teachers.available(teachers[0])
        if not ok:
            pytest.skip(f"teacher {teachers[0]} not installed: {why}")
    options = {"train_size": 200, "test_size": 100}
    result = fusion_aft.train(
        dataset=dataset,
        dataset_options=options,
        student=student,
        student_options=student_options,
        teachers=teachers,
        method=method,
        beta=1.0,
        steps=20,
        batch_size=32,
        device="cpu",
        progress=False,
        checkpoint_every=0,
        out=tmp_path / "run",
    )
    out = tmp_path / "export"
    summary = export_run(result.run_dir, out)
    exported = fusion_aft.load_student(out)

    # the trainer measured its in-memory student on the test split; the export must score the same
    test = fusion_aft.datasets.load(dataset, **options).split("test")
    assert _accuracy(exported, test) == pytest.approx(result.test_accuracy, abs=1e-6)
    # and give the very same labels as the run's own student folder
    in_run = fusion_aft.load_student(result.run_dir / "student")
    records = list(test)[:32]
    assert torch.equal(exported.predict_proba(records).argmax(1), in_run.predict_proba(records).argmax(1))

    prov = json.loads((result.run_dir / "provenance.json").read_text())
    assert [t["name"] for t in summary["teachers"]] == [t["name"] for t in prov["teachers"]] == teachers
    assert exported.class_names == prov["dataset"]["classes"]
    card = (out / "README.md").read_text()
    assert dataset in card and f"{100 * result.test_accuracy:.2f}%" in card
    for t in prov["teachers"]:
        assert t["name"] in card and str(t["licence"]) in card


def test_export_cli_prints_costs_for_a_trained_run(tmp_path, capsys):
    result = fusion_aft.train(
        dataset="fashion_mnist",
        dataset_options={"train_size": 100, "test_size": 50},
        student="mlp",
        student_options={"hidden": [32]},
        method="none",
        steps=5,
        batch_size=32,
        device="cpu",
        progress=False,
        checkpoint_every=0,
        out=tmp_path / "run",
    )
    assert main(["export", str(result.run_dir), "--out", str(tmp_path / "e")]) == 0
    text = capsys.readouterr().out
    assert (
        "student mlp" in text
        and f"{fusion_aft.students.count_parameters(fusion_aft.load_student(tmp_path / 'e')):,}" in text
    )
