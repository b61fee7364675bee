"""`fusion-aft demo`: the main job end to end on the real emoji task, shortened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fusion_aft.demo import DemoPlan, run_demo
from fusion_aft.errors import UserInputError
from fusion_aft.students.io import load_student
from fusion_aft.students.predict import predict

SHORT = DemoPlan(steps=20, beta_grid=(1.0, 10.0))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_demo(out=out, plan=SHORT, device="cpu", progress=False)
    return out


def test_demo_writes_runs_attribution_student_and_summary(demo_dir: Path) -> None:
    summary = json.loads((demo_dir / "demo.json").read_text())
    for name in ("stl", "aft"):
        assert json.loads((demo_dir / name / "result.json").read_text())["test_accuracy"] == pytest.approx(
            summary[f"{name}_accuracy"]
        )
    assert summary["beta"] in SHORT.beta_grid
    assert [t["teacher"] for t in summary["attribution"]] == list(SHORT.teachers)
    assert sum(t["share"] for t in summary["attribution"]) == pytest.approx(1.0)
    assert [t["width"] for t in summary["attribution"]] == [1280, 384]
    assert Image.open(summary["attribution_plot"]).format == "PNG"
    # the exported student, reloaded on its own, gives the label the summary printed
    student = load_student(demo_dir / "student")
    again = predict(student, [summary["example"]["image"]])[0]
    assert again["label"] == summary["example"]["label"]
    assert again["probability"] == pytest.approx(summary["example"]["probability"], abs=1e-5)
    assert summary["example"]["true_label"] in student.class_names


def test_demo_replaces_its_own_earlier_run_but_refuses_another_folder(demo_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not empty"):
        run_demo(out=tmp_path, plan=SHORT, device="cpu", progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_demo_command_prints_the_scores_and_where_results_live(demo_dir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fusion_aft.cli", "demo", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0
    assert "--out" in out.stdout
