"""timm teachers: grayscale images take the one-channel path and the normalisation runs per
batch, and the batches equal timm's own transform on the RGB image exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import fusion_aft
from fusion_aft.data.records import Record
from fusion_aft.teachers._util import to_rgb_image

pytestmark = pytest.mark.xdist_group("lite0")


@pytest.fixture(scope="module")
def lite0():
    return fusion_aft.teachers.load("efficientnet-lite0?image_size=64")


def _reference(teacher, images) -> torch.Tensor:
    """timm's eval transform, image by image, on the RGB conversion."""
    return torch.stack([teacher.transform(to_rgb_image(im, "ref")) for im in images])


def _batch(teacher, images) -> torch.Tensor:
    return teacher.collate([teacher.prepare(Record(str(i), {"image": im})) for i, im in enumerate(images)])


def test_grayscale_fashion_mnist_batches_equal_the_rgb_transform(lite0):
    split = fusion_aft.datasets.load("fashion_mnist", train_size=100, test_size=10).split("train")
    images = [split[i].fields["image"] for i in range(16)]
    assert {im.mode for im in images} == {"L"}
    got = _batch(lite0, images)
    assert got.shape == (16, 3, 64, 64) and got.is_contiguous()
    assert torch.equal(got, _reference(lite0, images))
    # and so the features: the bank of a grayscale dataset is what it was
    with torch.no_grad():
        assert torch.equal(lite0.forward_batch(got), lite0.forward_batch(_reference(lite0, images)))


def test_rgb_arrays_and_files_take_the_same_path_as_before(lite0, tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    colour = rng.integers(0, 256, (20, 50, 3), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(colour).save(tmp_path / "c.png")
    inputs = [gray, colour, str(tmp_path / "g.png"), tmp_path / "c.png", Image.fromarray(gray).convert("P")]
    assert torch.equal(_batch(lite0, inputs), _reference(lite0, inputs))


def test_the_normalisation_is_split_off_only_when_it_ends_the_transform():
    from torchvision import transforms as T

    from fusion_aft.teachers.timm_teacher import split_normalize

    norm = T.Normalize([0.5] * 3, [0.5] * 3)
    per_image, last = split_normalize(T.Compose([T.ToTensor(), norm]))
    assert last is norm and len(per_image.transforms) == 1
    odd = T.Compose([norm, T.ToTensor()])
    assert split_normalize(odd) == (odd, None)
    assert split_normalize(T.ToTensor())[1] is None
