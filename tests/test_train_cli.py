"""``fusion-aft train``: --json output, TOML config with flag overrides, bad input exits with 2."""

from __future__ import annotations

import json

from fusion_aft.cli import main

TINY = [
    "--dataset",
    "rotten_tomatoes",
    "--dataset-option",
    "train_size=64",
    "--dataset-option",
    "test_size=32",
    "--student",
    "text_bow",
    "--student-option",
    "emb_dim=16",
    "--student-option",
    "hidden=16",
    "--batch-size",
    "16",
]


def test_train_json(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(
        ["train", *TINY, "--method", "none", "--steps", "3", "--seed", "2", "--out", str(out), "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert 0.0 <= data["test_accuracy"] <= 1.0
    assert data["run_dir"] == str(out) and data["steps"] == 3
    assert data["summary"]["n_test"] == 32 and data["summary"]["method"] == "none"
    for name in ("config.json", "metrics.jsonl", "result.json", "provenance.json", "objective.json"):
        assert (out / name).is_file(), name
    assert (out / "student" / "student.json").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["teachers"] == [] and prov["dataset"]["name"] == "rotten_tomatoes"
    assert len(prov["dataset"]["fingerprint"]) == 64 and prov["libraries"]["torch"]


def test_train_from_toml_with_flag_override(tmp_path, capsys) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        "[train]\n"
        'dataset = "rotten_tomatoes"\n'
        "dataset_options = { train_size = 64, test_size = 32 }\n"
        'student = "text_bow"\n'
        "student_options = { emb_dim = 16, hidden = 16 }\n"
        'method = "none"\n'
        "steps = 5\n"
        "batch_size = 16\n"
    )
    out = tmp_path / "run"
    code = main(["train", "--config", str(cfg), "--steps", "2", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["steps"] == 2
    saved = json.loads((out / "config.json").read_text())
    assert saved["steps"] == 2 and saved["batch_size"] == 16


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys) -> None:
    code = main(["train", *TINY, "--method", "none", "--beta", "-1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "beta" in err and len(err.strip().splitlines()) == 1
    code = main(["train", *TINY, "--method", "aft", "--out", str(tmp_path / "r2")])
    assert code == 2 and "--teachers" in capsys.readouterr().err
