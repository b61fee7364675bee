"""The timm student family, on timm's tiny test models with random weights (offline)."""

from __future__ import annotations

import pytest
import timm
import torch
from PIL import Image

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.students import create, load_student, save_student


def _batch(student, n=3):
    imgs = [Image.new("L", (28, 28), 40 * k) for k in range(n)]
    return student.collate([student.prepare(Record(str(k), {"image": im})) for k, im in enumerate(imgs)])


@pytest.mark.parametrize(("model_name", "image_size"), [("test_vit", 32), ("test_resnet", 32)])
def test_features_are_timm_pre_logits(model_name, image_size):
    torch.manual_seed(0)
    s = create("timm", 4, model_name=model_name, pretrained=False, image_size=image_size).eval()
    x = _batch(s)
    assert x.shape == (3, 3, image_size, image_size)  # grey images converted to RGB at the asked size
    logits, feats = s(x)
    # a plain timm model with the same backbone weights gives the same pre-logits
    kwargs = {"img_size": image_size} if model_name == "test_vit" else {}
    ref = timm.create_model(model_name, pretrained=False, num_classes=4, **kwargs).eval()
    missing, unexpected = ref.load_state_dict(s.model.state_dict(), strict=False)
    assert unexpected == [] and all(k.startswith(("head", "fc")) for k in missing) and missing
    torch.testing.assert_close(feats, ref.forward_head(ref.forward_features(x), pre_logits=True))
    assert feats.shape == (3, s.feature_dim) and logits.shape == (3, 4)
    torch.testing.assert_close(logits, s.head(feats))
    assert s.head.out_features == 4


def test_preprocessing_comes_from_timm_data_config():
    s = create("timm", 2, model_name="test_resnet", pretrained=False)
    assert s.data_config["input_size"] == [3, 160, 160]  # timm's own default for this model
    assert s.data_config["interpolation"] == "bilinear"
    assert s.prepare(Record("a", {"image": Image.new("RGB", (200, 180))})).shape == (3, 160, 160)


def test_pretrained_unavailable_offline_is_an_error_not_random():
    with pytest.raises(MissingWeightsError, match="test_vit.*pretrained=False"):
        create("timm", 2, model_name="test_vit", pretrained=True)


def test_pretrained_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    src = timm.create_model("test_resnet", pretrained=False)
    torch.nn.init.normal_(src.fc.weight)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    s = create("timm", 5, model_name="test_resnet", pretrained_file=str(tmp_path / "w.safetensors"))
    for k, v in src.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(s.model.state_dict()[k], v), k
    assert s.head.out_features == 5  # fresh head, not the file's


def test_unknown_model_lists_close_matches():
    with pytest.raises(UserInputError, match="resnet50"):
        create("timm", 2, model_name="resnet5", pretrained=False)


def test_timm_round_trip(tmp_path):
    torch.manual_seed(1)
    s = create("timm", 3, model_name="test_vit", pretrained=False, image_size=32).eval()
    x = _batch(s)
    save_student(s, tmp_path / "st")
    loaded = load_student(tmp_path / "st")
    assert loaded.config()["pretrained"] is False
    assert torch.equal(loaded(x)[0], s(x)[0])
    assert torch.equal(_batch(loaded), x)


@pytest.mark.parametrize(
    ("model_name", "dim"), [("vit_small_patch16_224", 384), ("mixer_b16_224", 768), ("resnet50", 2048)]
)
def test_paper_students_build_and_run(model_name, dim):
    """The paper's vision students (random weights here; pretrained ones come from the hub)."""
    s = create("timm", 10, model_name=model_name, pretrained=False).eval()
    assert s.feature_dim == dim and s.data_config["input_size"] == [3, 224, 224]
    with torch.no_grad():
        logits, feats = s(_batch(s, n=1))
    assert logits.shape == (1, 10) and feats.shape == (1, dim)
