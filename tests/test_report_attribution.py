"""μ attribution of a finished AFT run with two real teachers (GloVe-50d and MiniLM-L6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fusion_aft.cli import main
from fusion_aft.errors import UserInputError
from fusion_aft.report import attribution
from fusion_aft.training import train

COMMON = dict(
    dataset="rotten_tomatoes",
    dataset_options={"train_size": 64, "test_size": 32},
    use_unlabelled=False,  # the 64 labelled rows alone: the 1083 plot texts would 18-fold the bank
    student="text_bow",
    student_options={"emb_dim": 16, "hidden": 16, "max_length": 32},
    batch_size=16,
    steps=6,
    progress=False,
)
TEACHERS = ["glove-6b-50d", "all-minilm-l6-v2"]


@pytest.fixture(scope="module")
def aft_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aft") / "run"
    train(**COMMON, teachers=TEACHERS, method="aft", beta=5.0, objective_lr=0.1, out=out)
    return out


def test_shares_sum_to_one_and_match_the_saved_mu(aft_run: Path) -> None:
    rep = attribution(aft_run, top=3)
    teachers = rep["teachers"]
    assert [t["teacher"] for t in teachers] == TEACHERS
    assert [t["width"] for t in teachers] == [50, 384] and rep["dim"] == 434
    assert sum(t["share"] for t in teachers) == pytest.approx(1.0, abs=1e-12)
    assert sum(t["initial_share"] for t in teachers) == pytest.approx(1.0, abs=1e-12)

    (s,) = [v for k, v in load_file(aft_run / "objective.safetensors").items() if k.endswith("s")]
    mu = torch.sigmoid(s).double()  # μ is stored as float32
    assert teachers[0]["mean"] == pytest.approx(float(mu[:50].mean()), rel=1e-6)
    assert teachers[1]["share"] == pytest.approx(float(mu[50:].sum() / mu.sum()), rel=1e-6)
    top = teachers[1]["top"]
    assert len(top) == 3 and [f["mu"] for f in top] == sorted((f["mu"] for f in top), reverse=True)
    assert top[0]["mu"] == pytest.approx(float(mu[50:].max()), rel=1e-6)
    assert top[0]["feature"] == int(mu[50:].argmax())
    assert all(0.0 < t["entropy"] <= 1.0 for t in teachers)
    assert teachers[1]["params"] and rep["best_teacher"] in TEACHERS
    png = Path(rep["plot"])
    assert png.parent == aft_run and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_cli_json(aft_run: Path, capsys) -> None:
    assert main(["report", str(aft_run), "--json", "--top", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [len(t["top"]) for t in data["teachers"]] == [2, 2]
    assert sum(t["share"] for t in data["teachers"]) == pytest.approx(1.0)
    assert main(["report", str(aft_run)]) == 0
    assert "glove-6b-50d" in capsys.readouterr().out


def test_runs_without_aft_get_a_clear_message(tmp_path, capsys) -> None:
    out = tmp_path / "stl"
    train(**{**COMMON, "steps": 2}, method="none", out=out)
    with pytest.raises(UserInputError, match="μ exists only for AFT objectives"):
        attribution(out)
    assert main(["report", str(out)]) == 2
    assert "only for AFT" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
