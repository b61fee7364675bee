"""Pretrained cheap students: their weights are the published ones, they save and load without
the weight packages, and pretrained weights that are missing are an error, never random."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import fusion_aft
from fusion_aft import teachers
from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.students.pretrained import read_glove
from fusion_aft.teachers import weights as W
from fusion_aft.teachers.card import card_from_dict

TEXTS = ["It's a GOOD film, isn't it?", "zzqxv unknownword", "the film was"]


def _glove() -> tuple[list[str], np.ndarray]:
    return read_glove(Path(W.resolve(teachers.get("glove-6b-50d"))))


def test_text_glove_starts_from_the_glove_vectors_with_glove_tokens(tmp_path) -> None:
    s = fusion_aft.students.create("text_glove", 2, vocab_size=1000, hidden=8)
    words, vectors = _glove()
    assert s.vocab_size == 1000 and s.emb_dim == 50 and s.feature_dim == 8
    row = words.index("film")
    np.testing.assert_array_equal(s.bag.weight[row + 2].detach().numpy(), np.asarray(vectors[row]))
    ids = s.prepare(Record("a", {"text": TEXTS[0]})).tolist()
    # lower-cased treebank tokens it 's a good film , is n't it ? (all among the 1000 commonest)
    assert [s.words[i - 2] for i in ids] == ["it", "'s", "a", "good", "film", ",", "is", "n't", "it", "?"]
    assert s.prepare(Record("b", {"text": TEXTS[1]})).tolist() == [0]  # nothing known: the pad row
    batch = s.collate([s.prepare(Record(str(i), {"text": t})) for i, t in enumerate(TEXTS)])
    logits, feats = s(batch)
    assert logits.shape == (3, 2) and feats.shape == (3, 8)
    # the mean over the known words' vectors feeds the projection
    expect = torch.relu(
        s.proj(
            torch.from_numpy(np.asarray(vectors[[words.index(w) for w in ("the", "film", "was")]])).mean(0)
        )
    )
    torch.testing.assert_close(feats[2], expect)

    fusion_aft.students.save_student(s, tmp_path / "st")
    assert (tmp_path / "st" / "vocab.txt").read_text().split("\n")[:3] == words[:3]
    back = fusion_aft.load_student(tmp_path / "st")
    torch.testing.assert_close(back(batch)[0], logits)


def test_image_lite0_holds_the_lite0_teacher_weights_and_round_trips(tmp_path) -> None:
    s = fusion_aft.students.create("image_lite0", 10, blocks=3, image_size=32)
    teacher = teachers.load("efficientnet-lite0")
    torch.testing.assert_close(s.body[0].weight, teacher.model.conv_stem.weight.float())
    torch.testing.assert_close(s.body[3][0].conv_dw.weight, teacher.model.blocks[1][0].conv_dw.weight.float())
    assert s.feature_dim == 40
    from PIL import Image

    x = s.collate([s.prepare(Record("g", {"image": Image.new("L", (28, 28), 90)}))] * 2)
    assert x.shape == (2, 3, 32, 32)
    s.eval()
    logits, feats = s(x)
    assert logits.shape == (2, 10) and feats.shape == (2, 40)
    fusion_aft.students.save_student(s, tmp_path / "st")
    back = fusion_aft.load_student(tmp_path / "st")
    torch.testing.assert_close(back(x)[0], logits)
    random = fusion_aft.students.create("image_lite0", 10, blocks=3, pretrained=False)
    assert not torch.equal(random.body[0].weight, s.body[0].weight)


def test_missing_pretrained_weights_are_an_error_not_a_random_start(monkeypatch) -> None:
    card = card_from_dict(
        {
            "name": "glove-missing",
            "kind": "glove",
            "model": "glove",
            "inputs": "text",
            "parameters": 1,
            "licence": "none",
            "width": 50,
            "weights": {"source": "local", "path": "no/such/glove"},
        }
    )
    monkeypatch.setitem(teachers.CARDS._entries, "glove-missing", card)
    with pytest.raises(MissingWeightsError, match="pretrained=False"):
        fusion_aft.students.create("text_glove", 2, vectors="glove-missing")
    with pytest.raises(UserInputError, match="kind 'timm', expected 'glove'"):
        fusion_aft.students.create("text_glove", 2, vectors="efficientnet-lite0")
    with pytest.raises(UserInputError, match="needs vocab_file"):
        fusion_aft.students.create("text_glove", 2, pretrained=False)


def test_without_a_student_the_modality_default_is_trained_and_recorded(tmp_path, caplog) -> None:
    import json
    import logging

    from fusion_aft.students import DEFAULT_STUDENTS, default_student

    assert default_student(("text",))[0] == DEFAULT_STUDENTS["text"] == "text_glove"
    assert default_student(("image", "text"))[0] == DEFAULT_STUDENTS["image"] == "image_lite0"
    rows = ["id,text,label"] + [
        f"r{i},{'a fine good film' if i % 2 else 'a dull bad plot'} {i},{i % 2}" for i in range(20)
    ]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.INFO, logger="fusion_aft.training.run"):
        result = fusion_aft.train(
            dataset="csv",
            dataset_options={"path": str(tmp_path / "t.csv")},
            method="none",
            student_options={"vocab_size": 500, "hidden": 8},
            steps=2,
            progress=False,
            out=tmp_path / "run",
        )
    assert "training 'text_glove'" in caplog.text
    assert result.summary["student"] == "text_glove"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["student"] == "text_glove"
    assert json.loads((tmp_path / "run" / "student" / "student.json").read_text())["name"] == "text_glove"
