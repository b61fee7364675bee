"""Built-in students: shapes, features are the head's input, input pipelines, options."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import fusion_aft
from fusion_aft.data.records import Record
from fusion_aft.errors import UnknownNameError, UserInputError
from fusion_aft.students import count_parameters, create


def _grey(seed: int = 0, size: int = 28) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), mode="L")


def _image_records(n: int = 5, size: int = 28) -> list[Record]:
    return [Record(f"i{k}", {"image": _grey(k, size)}, k % 3) for k in range(n)]


TEXTS = ["a gripping, beautifully shot film", "dull and far too long", "", "ok"]


def _text_records() -> list[Record]:
    return [Record(f"t{k}", {"text": t}, k % 2) for k, t in enumerate(TEXTS)]


def test_registry_lists_builtins_and_rejects_unknown():
    names = fusion_aft.students.list()
    for name in ("mlp", "small_cnn", "text_cnn", "text_bow", "timm", "hf"):
        assert name in names
    with pytest.raises(UnknownNameError, match="small_cnn"):
        create("small_cnm", 10)


def test_unknown_option_is_a_user_error():
    with pytest.raises(UserInputError, match="student 'mlp'"):
        create("mlp", 10, hiden=[8])


@pytest.mark.parametrize(
    ("name", "options", "records", "dim"),
    [
        ("mlp", {"hidden": [32, 16]}, "image", 16),
        ("small_cnn", {}, "image", 128),
        ("small_cnn", {"in_channels": 3, "image_size": 32, "width": 8}, "image", 32),
        ("text_cnn", {"channels": 8, "kernel_sizes": [3]}, "text", 8),
        ("text_bow", {"emb_dim": 16, "hidden": 12}, "text", 12),
    ],
)
def test_forward_shapes_and_features_feed_the_head(name, options, records, dim):
    torch.manual_seed(0)
    s = create(name, 3, **options).eval()
    recs = _image_records() if records == "image" else _text_records()
    batch = s.collate([s.prepare(r) for r in recs])
    logits, features = s(batch)
    assert logits.shape == (len(recs), 3)
    assert features.shape == (len(recs), dim) == (len(recs), s.feature_dim)
    assert isinstance(s.head, torch.nn.Linear)
    torch.testing.assert_close(logits, s.head(features))
    assert s.num_classes == 3
    # the config rebuilds the same architecture
    again = create(name, **s.config())
    assert again.config() == s.config()
    assert count_parameters(again) == count_parameters(s)


def test_small_cnn_is_about_100k_parameters():
    n = count_parameters(create("small_cnn", 10))
    assert 80_000 <= n <= 120_000


def test_image_pipeline_normalises_and_converts():
    s = create("small_cnn", 10, in_channels=3, image_size=16)
    white = Image.new("L", (28, 28), 255)
    x = s.prepare(Record("w", {"image": white}))
    assert x.shape == (3, 16, 16)
    torch.testing.assert_close(x, torch.ones(3, 16, 16))  # (1 - 0.5) / 0.5
    black = np.zeros((28, 28), dtype=np.uint8)
    torch.testing.assert_close(s.prepare(Record("b", {"image": black})), -torch.ones(3, 16, 16))


def test_mlp_on_vectors():
    s = create("mlp", 2, hidden=[4], input_dim=3, field="features")
    assert s.modality == "vector"
    x = s.collate([s.prepare(Record("v", {"features": [1.0, 2.0, 3.0]}))])
    assert x.shape == (1, 3)
    logits, feats = s(x)
    assert logits.shape == (1, 2) and feats.shape == (1, 4)


def test_missing_field_is_a_user_error():
    s = create("small_cnn", 10)
    with pytest.raises(UserInputError, match="no field 'image'"):
        s.prepare(Record("x", {"text": "hello"}))


def test_text_tokens_and_padding():
    s = create("text_bow", 2, max_length=4)
    ids = s.prepare(Record("a", {"text": "hello world, a good movie"}))
    assert ids.dtype == torch.long and len(ids) == 4  # truncated
    assert s.tokenizer.convert_ids_to_tokens(ids.tolist())[:2] == ["hello", "world"]
    batch = s.collate([ids, s.prepare(Record("e", {"text": ""}))])
    assert batch["input_ids"].shape == (2, 4)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 0, 0]]


def test_pipelines_pickle_for_workers():
    for s in (create("small_cnn", 2), create("text_cnn", 2)):
        p = pickle.loads(pickle.dumps(s.pipeline))
        rec = _image_records(1)[0] if s.modality == "image" else _text_records()[0]
        torch.testing.assert_close(p(rec), s.prepare(rec))


def test_text_student_ignores_padding():
    torch.manual_seed(0)
    s = create("text_cnn", 2, channels=4, dropout=0.0).eval()
    one = s.collate([s.prepare(Record("a", {"text": "fine"}))])
    padded = s.collate(
        [s.prepare(Record("a", {"text": "fine"})), s.prepare(Record("b", {"text": "a much longer text"}))]
    )
    torch.testing.assert_close(s(one)[0][0], s(padded)[0][0])
