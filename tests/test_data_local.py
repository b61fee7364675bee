"""A user's own data (image folder, CSV, JSON lines) and the errors bad data gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusion_aft.cli import main
from fusion_aft.data import Dataset, Split, load
from fusion_aft.data.sources._common import package_dir
from fusion_aft.data.validate import check_dataset
from fusion_aft.errors import UserInputError


def _image_tree(root: Path, per_class: int = 5) -> None:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_image_folder_classes_ids_and_seeded_split(tmp_path: Path) -> None:
    _image_tree(tmp_path / "imgs")
    ds = load("image_folder", path=tmp_path / "imgs", test_fraction=0.4)
    assert ds.classes == ["cat", "dog"]
    assert len(ds.split("train")) == 6 and len(ds.split("test")) == 4
    assert sorted(ds.split("test").labels) == [0, 0, 1, 1]
    rec = ds.split("train")[0]
    assert rec.id.startswith(("cat/", "dog/")) and rec.image.size == (8, 8) and rec.image.mode == "RGB"
    again = load("image_folder", path=tmp_path / "imgs", test_fraction=0.4)
    assert again.split("test").ids == ds.split("test").ids


def test_image_folder_unreadable_image_names_the_record(tmp_path: Path) -> None:
    _image_tree(tmp_path / "imgs", per_class=2)
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(b"not a png")
    _image_tree(tmp_path / "test")
    ds = load("image_folder", path=tmp_path / "imgs", test_path=tmp_path / "test")
    split = ds.split("train")
    bad = split.ids.index("dog/broken.png")
    with pytest.raises(UserInputError, match="dog/broken.png"):
        split[bad]


def test_csv_and_jsonl_with_string_labels_and_ids(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "review": f"text number {i}", "y": "pos" if i % 2 else "neg"} for i in range(10)]
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("id,review,y\n" + "".join(f"{r['id']},{r['review']},{r['y']}\n" for r in rows))
    jsonl_path = tmp_path / "reviews.jsonl"
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for kind, path in (("csv", csv_path), ("jsonl", jsonl_path)):
        ds = load(kind, path=path, text_column="review", label_column="y", id_column="id", test_fraction=0.2)
        assert ds.classes == ["neg", "pos"]
        assert len(ds.split("train")) == 8 and len(ds.split("test")) == 2
        rec = ds.split("train")[0]
        assert rec.id == "r0" and rec.text == "text number 0" and rec.label == 0


def test_csv_test_path_and_integer_labels(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("text,label\nhello,0\nworld,2\n")
    (tmp_path / "b.csv").write_text("text,label\nagain,1\n")
    ds = load("csv", path=tmp_path / "a.csv", test_path=tmp_path / "b.csv")
    assert ds.classes == ["0", "1", "2"]
    assert ds.split("train").ids == ["row-0", "row-1"] and ds.split("test").labels == [1]
    assert ds.split("test").ids == ["test-row-0"]


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("id,text,label\na,x,0\na,y,1\nb,z,0\n", {"id_column": "id"}, "duplicate id"),
        ("text,label\nfine,0\n,1\nok,0\nyes,1\n", {}, "record 'row-1' has empty text"),
        ("text,label\nfine,0\nbad,7\nok,1\nyes,0\n", {"classes": ["a", "b"]}, "record 'row-1'.*label 7"),
        ("text,label\nfine,\nbad,\n", {}, "no row of .* has a label"),  # an empty label = unlabelled row
        ("text,label\n", {}, "no rows"),
        ("words,label\nx,0\n", {}, "column 'text' is not in"),
    ],
)
def test_bad_tables_name_the_record(tmp_path: Path, content: str, options: dict, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserInputError, match=message):
        load("csv", path=path, test_fraction=0.5, **options)


def test_empty_split_and_bad_labels_in_a_python_dataset() -> None:
    empty = Split("test", [], [], lambda i: {})
    good = Split("train", ["a"], [0], lambda i: {"text": "x"})
    with pytest.raises(UserInputError, match="split 'test' is empty"):
        check_dataset(Dataset("mine", {"train": good, "test": empty}, ["c"], ("text",)))
    negative = Split("train", ["a", "b"], [0, -4], lambda i: {"text": "x"})
    with pytest.raises(UserInputError, match="record 'b'.*label -4"):
        check_dataset(Dataset("mine", {"train": negative}, ["c"], ("text",)))


def test_missing_inputs_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="needs path="):
        load("csv")
    with pytest.raises(UserInputError, match="does not exist"):
        load("image_folder", path=tmp_path / "nope")
    with pytest.raises(UserInputError, match="pip install some-missing-pkg"):
        package_dir("fusion_aft_missing_package", "pip install some-missing-pkg")
    with pytest.raises(UserInputError, match="download=True"):
        load("cifar10", root=tmp_path)
    with pytest.raises(UserInputError, match=r"no option .colour. \(--dataset-option .*it takes: image_size"):
        load("emoji", colour="red")


def test_hub_sources_without_the_datasets_package_name_the_install() -> None:
    pytest.importorskip("torch")
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(UserInputError, match="pip install"):
            load("glue_sst2")
    else:
        pytest.skip("the datasets package is installed; the offline-hub error is covered elsewhere")


def test_cli_datasets_list_json_and_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "list", "--json", "--no-counts"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["fashion_mnist"]["fields"] == ["image"] and rows["fashion_mnist"]["available"]
    assert rows["emoji"]["fields"] == ["image", "text"]
    assert main(["datasets", "show", "rotten_tomatoes", "--dataset-option", "train_size=oops=1"]) == 2
