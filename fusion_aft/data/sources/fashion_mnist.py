"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (MIT licence).

60000 train + 10000 test greyscale 28×28 images of 10 clothing classes. Ids are
``train-NNNNN`` / ``test-NNNNN`` (row in the original file), so every subset shares the bank rows
of the full set. ``train_size`` / ``test_size`` give deterministic stratified subsets.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path

import numpy as np

from fusion_aft.data.records import Dataset, Split
from fusion_aft.data.registry import register_dataset
from fusion_aft.data.sources._common import require_file, subsample

ROOT = Path("/usr/share/datasets/fashion-mnist")
INSTALL = "sudo apt-get install dataset-fashion-mnist"
CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (gzip) into a uint8 array of its declared shape."""
    data = gzip.open(path, "rb").read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@functools.lru_cache(maxsize=2)
def _arrays(part: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (require_file(ROOT / f, INSTALL) for f in FILES[part])
    return read_idx(images), read_idx(labels)


def check() -> None:
    for images, labels in FILES.values():
        require_file(ROOT / images, INSTALL)
        require_file(ROOT / labels, INSTALL)


class _Images:
    """``i -> {"image": PIL 'L' 28×28}`` for the rows ``index`` of one part (picklable)."""

    def __init__(self, part: str, index: np.ndarray) -> None:
        self.part = part
        self.index = index

    def __call__(self, i: int) -> dict:
        from PIL import Image

        return {
            "image": Image.fromarray(np.ascontiguousarray(_arrays(self.part)[0][self.index[i]]), mode="L")
        }


class _Digest:
    """The raw pixel bytes and label of a row, hashed (cheaper than hashing a PIL image)."""

    def __init__(self, part: str, index: np.ndarray) -> None:
        self.part = part
        self.index = index

    def __call__(self, i: int) -> bytes:
        images, labels = _arrays(self.part)
        row = self.index[i]
        h = hashlib.blake2b(images[row].tobytes(), digest_size=16)
        h.update(b"fashion_mnist-label" + int(labels[row]).to_bytes(8, "little"))
        return h.digest()


def _split(part: str, size: int | None, seed: int) -> Split:
    _, labels = _arrays(part)
    index = subsample(np.arange(len(labels)), labels, size, seed, f"fashion_mnist {part}_size")
    return Split(
        part,
        [f"{part}-{i:05d}" for i in index],
        labels[index].tolist(),
        _Images(part, index),
        _Digest(part, index),
    )


@register_dataset(
    "fashion_mnist",
    fields=("image",),
    summary="Fashion-MNIST, 28×28 grey clothing images, 10 classes (Debian dataset-fashion-mnist)",
    check=check,
    cheap=True,
)
def fashion_mnist(train_size: int | None = None, test_size: int | None = None, seed: int = 0) -> Dataset:
    """Fashion-MNIST; ``train_size``/``test_size`` pick stratified subsets (seeded by ``seed``)."""
    check()
    return Dataset(
        name="fashion_mnist",
        splits={"train": _split("train", train_size, seed), "test": _split("test", test_size, seed)},
        classes=list(CLASSES),
        fields=("image",),
        description="Fashion-MNIST (Xiao et al. 2017), MIT licence, from Debian's dataset-fashion-mnist",
        meta={"root": str(ROOT)},
    )
