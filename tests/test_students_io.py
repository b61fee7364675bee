"""save_student / load_student round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import fusion_aft
from fusion_aft.data.records import Record
from fusion_aft.errors import UserInputError
from fusion_aft.students import create, load_student, save_student


def _train_a_bit(student, batch, labels, steps=3):
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    student.train()
    for _ in range(steps):
        opt.zero_grad()
        logits, _ = student(batch)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        opt.step()
    return student.eval()


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "text_cnn", "text_bow"])
def test_round_trip_gives_identical_logits(tmp_path, name):
    torch.manual_seed(0)
    s = create(name, 3)
    if s.modality == "text":
        recs = [Record(str(i), {"text": t}) for i, t in enumerate(["great", "awful plot", "so so film"])]
    else:
        rng = np.random.default_rng(0)
        recs = [
            Record(str(i), {"image": Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8))})
            for i in range(3)
        ]
    batch = s.collate([s.prepare(r) for r in recs])
    _train_a_bit(s, batch, torch.tensor([0, 1, 2]))  # moves BN statistics and weights off init
    before, feats = s(batch)
    save_student(s, tmp_path / "st", meta={"classes": ["a", "b", "c"], "dataset": "toy"})
    info = json.loads((tmp_path / "st" / "student.json").read_text())
    assert info["name"] == name and info["classes"] == ["a", "b", "c"] and info["meta"] == {"dataset": "toy"}
    loaded = fusion_aft.load_student(tmp_path / "st")
    assert not loaded.training and loaded.class_names == ["a", "b", "c"]
    after, feats2 = loaded(loaded.collate([loaded.prepare(r) for r in recs]))
    assert torch.equal(before, after) and torch.equal(feats, feats2)


def test_text_student_carries_its_tokenizer(tmp_path):
    s = create("text_bow", 2)
    save_student(s, tmp_path / "st")
    assert (tmp_path / "st" / "tokenizer" / "tokenizer.json").is_file()
    info = json.loads((tmp_path / "st" / "student.json").read_text())
    assert info["config"]["tokenizer"] == "tokenizer"  # relative: the folder can move
    (tmp_path / "st").rename(tmp_path / "moved")
    loaded = load_student(tmp_path / "moved")
    assert loaded.tokenizer_ref == str(tmp_path / "moved" / "tokenizer")


def test_weights_are_safetensors_not_pickles(tmp_path):
    from safetensors.torch import load_file

    s = create("mlp", 2, hidden=[4])
    save_student(s, tmp_path / "st")
    tensors = load_file(str(tmp_path / "st" / "student.safetensors"))
    assert set(tensors) == set(s.state_dict())


def test_bad_folders_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_student(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="not a saved student"):
        load_student(tmp_path / "empty")
    save_student(create("mlp", 2, hidden=[4]), tmp_path / "st")
    info = json.loads((tmp_path / "st" / "student.json").read_text())
    info["config"]["hidden"] = [5]
    (tmp_path / "st" / "student.json").write_text(json.dumps(info))
    with pytest.raises(UserInputError, match="do not fit"):
        load_student(tmp_path / "st")


def test_wrong_number_of_class_names(tmp_path):
    with pytest.raises(UserInputError, match="class names"):
        save_student(create("mlp", 3, hidden=[4]), tmp_path / "st", meta={"classes": ["a"]})


def test_a_user_registered_student_saves_and_loads(tmp_path):
    from torch import nn

    from fusion_aft.students import STUDENTS, Student

    @fusion_aft.register_student("test_io_linear")
    class Linear(Student):
        modality = "vector"
        input_field = "x"

        def __init__(self, num_classes: int, width: int = 3) -> None:
            super().__init__()
            self.num_classes, self.feature_dim, self.width = num_classes, width, width
            self.head = nn.Linear(width, num_classes)

        def forward(self, inputs):
            return self.head(inputs), inputs

        def prepare(self, record):
            return torch.tensor(record.fields["x"], dtype=torch.float32)

        def config(self):
            return {"num_classes": self.num_classes, "width": self.width}

    try:
        s = Linear(2, width=4)  # built directly: saved under its registered name
        save_student(s, tmp_path / "st")
        loaded = load_student(tmp_path / "st")
        assert type(loaded) is Linear and loaded.name == "test_io_linear"
        x = torch.randn(2, 4)
        assert torch.equal(loaded(x)[0], s(x)[0])
    finally:
        STUDENTS.unregister("test_io_linear")
