"""`fusion-aft report` says which teachers a finished AFT run could drop and what that saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from fusion_aft.bank.manifest import read_manifest
from fusion_aft.cli import main
from fusion_aft.ranking.cost import folder_bytes
from fusion_aft.report import attribution, drop_suggestions
from fusion_aft.training import train

TEACHERS = ["glove-6b-50d", "all-minilm-l6-v2"]


@pytest.fixture(scope="module")
def run_with_mu(tmp_path_factory) -> Path:
    """A real AFT run whose learned μ is then set: GloVe's features on (μ 0.9), MiniLM's off (μ 0.02)."""
    out = tmp_path_factory.mktemp("drop") / "run"
    train(
        dataset="rotten_tomatoes",
        dataset_options={"train_size": 48, "test_size": 16},
        student="text_bow",
        student_options={"emb_dim": 8, "hidden": 8, "max_length": 16},
        batch_size=16,
        steps=2,
        teachers=TEACHERS,
        method="aft",
        beta=1.0,
        use_unlabelled=False,  # the dataset's own unlabelled rows would add a bank to extract
        out=out,
        progress=False,
    )
    state = load_file(out / "objective.safetensors")
    (key,) = [k for k in state if k.endswith("s")]
    s = torch.empty_like(state[key])
    s[:50] = torch.logit(torch.tensor(0.9))
    s[50:] = torch.logit(torch.tensor(0.02))
    state[key] = s
    save_file(state, out / "objective.safetensors")
    return out


def test_a_teacher_with_a_tiny_mu_share_is_suggested_with_its_savings(run_with_mu: Path) -> None:
    rep = attribution(run_with_mu, plot=False)
    sug = drop_suggestions(rep, run_with_mu)
    # shares: GloVe 50·0.9 / (45 + 384·0.02) = 0.854 vs column share 50/434; MiniLM 0.146 vs 0.885
    assert [d["teacher"] for d in sug["drop"]] == ["all-minilm-l6-v2"]
    (d,) = sug["drop"]
    assert d["ratio"] == pytest.approx((384 * 0.02 / (45 + 384 * 0.02)) / (384 / 434), rel=1e-4)
    banks = [
        b
        for b in json.loads((run_with_mu / "provenance.json").read_text())["banks"]
        if b["teacher"] == "all-minilm-l6-v2"
    ]
    assert banks
    assert d["bank_bytes"] == sum(folder_bytes(b["folder"]) for b in banks) > 0
    recorded = sum(read_manifest(Path(b["folder"])).extract_seconds for b in banks)
    assert d["extract_seconds"] == pytest.approx(recorded) and recorded > 0
    assert sug["saves"] == {"extract_seconds": d["extract_seconds"], "bank_bytes": d["bank_bytes"]}
    # a stricter threshold keeps everything; the teacher with the largest share is never dropped
    assert drop_suggestions(rep, run_with_mu, ratio=0.1)["drop"] == []
    assert [k["teacher"] for k in drop_suggestions(rep, run_with_mu, ratio=100.0)["keep"]] == ["glove-6b-50d"]


def test_report_cli_prints_the_suggestion(run_with_mu: Path, capsys) -> None:
    assert main(["report", str(run_with_mu), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "could drop all-minilm-l6-v2" in out and "MiB" in out
    assert main(["report", str(run_with_mu), "--no-plot", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["teacher"] for d in data["drop"]["drop"]] == ["all-minilm-l6-v2"]
