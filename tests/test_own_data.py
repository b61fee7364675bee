"""A user's own files in one flag: --dataset PATH, the `id` column, a default student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusion_aft.cli import main
from fusion_aft.data import load
from fusion_aft.errors import UnknownNameError, UserInputError

WORDS = {"pos": ["great", "lovely", "fine", "superb"], "neg": ["awful", "dull", "bad", "poor"]}


def _rows(n: int = 24) -> list[dict[str, str]]:
    out = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        out.append({"id": f"k{i:03d}", "text": f"a {WORDS[label][i % 4]} film {i}", "label": label})
    return out


def _csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = ("id", "text", "label")) -> Path:
    path.write_text(",".join(columns) + "\n" + "".join(",".join(r[c] for c in columns) + "\n" for r in rows))
    return path


def _images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_a_path_is_a_dataset_csv_jsonl_and_image_folder(tmp_path: Path) -> None:
    rows = _rows()
    csv_path = _csv(tmp_path / "reviews.csv", rows)
    jsonl_path = tmp_path / "reviews.jsonl"
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for kind, path in (("csv", csv_path), ("jsonl", jsonl_path)):
        by_path = load(str(path))
        by_name = load(kind, path=str(path))
        assert by_path.name == kind and by_path.classes == ["neg", "pos"]
        assert by_path.split("train").ids == by_name.split("train").ids
    folder = load(str(_images(tmp_path / "pets")), test_fraction=0.4)
    assert folder.name == "image_folder" and folder.classes == ["cat", "dog"]
    assert len(folder.split("test")) == 4


def test_path_errors_name_the_flags(tmp_path: Path) -> None:
    csv_path = _csv(tmp_path / "r.csv", _rows())
    with pytest.raises(UserInputError, match="--dataset-option path"):
        load(str(csv_path), path=str(csv_path))
    with pytest.raises(UserInputError, match="--dataset .*no such file"):
        load(str(tmp_path / "missing_folder"))
    no_option = r"no option 'colour' \(--dataset-option colour=\.\.\.\).*text_column"
    with pytest.raises(UserInputError, match=no_option):
        load(str(csv_path), colour="red")
    with pytest.raises(UserInputError, match="does not exist"):
        load(str(tmp_path / "absent.csv"))
    with pytest.raises(UnknownNameError, match="unknown dataset 'revews'.*or give a path: a .csv"):
        load("revews")
    with pytest.raises(UserInputError, match=r"test_fraction must .* \(set by --dataset-option test_fr"):
        load(str(csv_path), test_fraction=2)


def test_an_id_column_is_used_by_default_and_duplicates_are_caught(tmp_path: Path) -> None:
    rows = _rows()
    ds = load(str(_csv(tmp_path / "r.csv", rows)))
    assert sorted(ds.split("train").ids + ds.split("test").ids) == sorted(r["id"] for r in rows)
    rows[3]["id"] = rows[2]["id"]
    with pytest.raises(UserInputError, match=f"duplicate id '{rows[2]['id']}'"):
        load(str(_csv(tmp_path / "dup.csv", rows)))
    numbered = load(str(tmp_path / "dup.csv"), id_column="")
    assert all(i.startswith("row-") for i in numbered.split("train").ids)
    keyed = [{**r, "key": f"x{n}"} for n, r in enumerate(_rows())]
    chosen = load(str(_csv(tmp_path / "k.csv", keyed, ("id", "key", "text", "label"))), id_column="key")
    assert all(i.startswith("x") for i in chosen.split("train").ids)
    plain = load(str(_csv(tmp_path / "plain.csv", _rows(), ("text", "label"))))
    assert all(i.startswith("row-") for i in plain.split("train").ids)


def test_a_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", _rows())
    found = "its columns are id, text, label"
    with pytest.raises(UserInputError, match=rf"column 'review' .*{found}.*text_column="):
        load(str(path), text_column="review")
    with pytest.raises(UserInputError, match=rf"column 'y' .*{found}.*label_column="):
        load(str(path), label_column="y")


def test_cli_takes_a_path_and_dataset_option_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path / "r.csv", _rows())
    assert main(["datasets", "show", str(path), "--dataset-option", "test_fraction=0.5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert main(["datasets", "list", "--no-counts"]) == 0
    assert "--dataset PATH (a .csv, a .jsonl or a folder of class sub-folders)" in capsys.readouterr().out
    assert info["splits"] == {"train": 12, "test": 12} and info["example"]["id"].startswith("k")
    assert main([
        "extract", "--dataset", str(path), "--teachers", "glove-6b-50d", "--dry-run", "--json",
        "--dataset-option", "test_fraction=0.5", "--cache-dir", str(tmp_path / "c"),
    ]) == 0  # fmt: skip
    plan = json.loads(capsys.readouterr().out)
    assert plan[0]["rows"] == 12


def test_a_run_without_a_student_gets_the_modality_default_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fusion_aft.students import DEFAULT_STUDENTS

    path = _csv(tmp_path / "reviews.csv", _rows())
    out = tmp_path / "run"
    code = main(["train", "--dataset", str(path), "--method", "none", "--steps", "2", "--batch-size", "8",
                 "--out", str(out), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{DEFAULT_STUDENTS['text']} (default for text datasets)" in captured.out
    saved = json.loads((out / "config.json").read_text())
    assert saved["student"] == DEFAULT_STUDENTS["text"]
    choice = {"name": DEFAULT_STUDENTS["text"], "choice": "default for text datasets"}
    assert saved["resolved"]["student"] == choice
    result = json.loads((out / "result.json").read_text())
    assert result["student_choice"] == "default for text datasets"


def test_default_student_table_by_modality_and_unknown_students_list_all() -> None:
    from fusion_aft import students

    assert students.default_student(("image",)) == (students.DEFAULT_STUDENTS["image"], "image")
    assert students.default_student(("image", "text"))[1] == "image"
    assert students.default_student(("text",)) == (students.DEFAULT_STUDENTS["text"], "text")
    for name in students.DEFAULT_STUDENTS.values():
        assert name in students.list()
    with pytest.raises(UnknownNameError) as info:
        students.get("text_bowl")
    message = str(info.value)
    assert "registered students:" in message
    assert all(name in message for name in students.list())
    assert "close matches: text_bow" in message
    # with no close match the names are listed once, not twice
    with pytest.raises(UnknownNameError) as info:
        students.get("nope")
    assert str(info.value).count("image_lite0") == 1


def test_a_bench_task_takes_a_path_and_dataset_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _csv(tmp_path / "reviews.csv", _rows())
    suite = tmp_path / "mine.toml"
    suite.write_text(
        'name = "mine"\n[[tasks]]\nname = "reviews"\ndataset = "reviews.csv"\nstudent = "text_bow"\n'
        'teachers = ["glove-6b-50d"]\ndataset_options = { test_fraction = 0.5 }\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["bench", str(suite), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["cells"] > 0 and not [m for m in plan["missing"] if "reviews.csv" in json.dumps(m)]
    suite.write_text(suite.read_text().replace("reviews.csv", "absent.csv"))
    assert main(["bench", str(suite), "--dry-run", "--json"]) == 0
    assert "absent.csv' does not exist" in capsys.readouterr().out
