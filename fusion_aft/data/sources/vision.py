"""The paper's image tasks through ``torchvision.datasets``: CIFAR-10/100, Flowers-102, Pets, DTD, Food-101.

Files are read from ``root`` (default ``$FUSION_AFT_HOME/datasets/torchvision``). Nothing is
downloaded unless the user passes ``download=True``; without the files the source fails with a
:class:`UserInputError` saying what is missing and how to get it. Ids are ``<split>-NNNNN``
(position in torchvision's split). ``train`` is torchvision's training split (``trainval`` for
Pets; Flowers-102 and DTD keep their ``val`` split as an extra split).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft import paths
from fusion_aft.data.records import Dataset, Split
from fusion_aft.data.registry import register_dataset
from fusion_aft.data.sources._common import subsample
from fusion_aft.data.validate import guarded_loader
from fusion_aft.errors import UserInputError

# name: (torchvision class, {our split: constructor kwargs}, title)
PRESETS: dict[str, tuple[str, dict[str, dict[str, Any]], str]] = {
    "cifar10": ("CIFAR10", {"train": {"train": True}, "test": {"train": False}}, "CIFAR-10"),
    "cifar100": ("CIFAR100", {"train": {"train": True}, "test": {"train": False}}, "CIFAR-100"),
    "flowers102": (
        "Flowers102",
        {"train": {"split": "train"}, "val": {"split": "val"}, "test": {"split": "test"}},
        "Oxford Flowers-102",
    ),
    "oxford_pets": (
        "OxfordIIITPet",
        {"train": {"split": "trainval"}, "test": {"split": "test"}},
        "Oxford-IIIT Pets",
    ),
    "dtd": ("DTD", {"train": {"split": "train"}, "val": {"split": "val"}, "test": {"split": "test"}}, "DTD"),
    "food101": ("Food101", {"train": {"split": "train"}, "test": {"split": "test"}}, "Food-101"),
}


def default_root() -> Path:
    return paths.home() / "datasets" / "torchvision"


def _check_torchvision() -> None:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise UserInputError(
            "torchvision is not installed; install it with: pip install torchvision"
        ) from None


def _labels_of(ds: Any) -> list[int]:
    for attr in ("targets", "_labels"):
        if hasattr(ds, attr):
            return [int(v) for v in getattr(ds, attr)]
    return [int(ds[i][1]) for i in range(len(ds))]


class _TvImage:
    """``i -> {"image": RGB PIL}`` from a torchvision dataset (picklable when the dataset is)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __call__(self, i: int) -> dict[str, Any]:
        image = self.ds[i][0]
        return {"image": image.convert("RGB")}


class _TvDigest:
    """Raw pixels (in-memory sets) or file bytes (file-based sets), plus the label."""

    def __init__(self, ds: Any, labels: list[int]) -> None:
        self.ds = ds
        self.labels = labels

    def __call__(self, i: int) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        data = getattr(self.ds, "data", None)
        files = getattr(self.ds, "_image_files", None) or getattr(self.ds, "_images", None)
        if isinstance(data, np.ndarray):
            h.update(data[i].tobytes())
        elif files is not None:
            h.update(Path(files[i]).read_bytes())
        else:
            h.update(self.ds[i][0].convert("RGB").tobytes())
        h.update(int(self.labels[i]).to_bytes(8, "little", signed=True))
        return h.digest()


def _make(name: str):
    cls_name, splits, title = PRESETS[name]

    def factory(
        root: str | Path | None = None,
        download: bool = False,
        train_size: int | None = None,
        test_size: int | None = None,
        seed: int = 0,
    ) -> Dataset:
        _check_torchvision()
        import torchvision.datasets as tvd

        where = Path(root).expanduser() if root is not None else default_root()
        cls = getattr(tvd, cls_name)
        built: dict[str, Split] = {}
        classes: list[str] | None = None
        for split, kwargs in splits.items():
            try:
                ds = cls(root=str(where), download=bool(download), **kwargs)
            except (RuntimeError, FileNotFoundError, OSError) as exc:
                hint = (
                    "the download failed (no internet?)"
                    if download
                    else "pass download=True (needs internet), or put the files there"
                )
                raise UserInputError(f"{title} ({name}) is not under {where}: {exc}; {hint}") from None
            labels = _labels_of(ds)
            size = {"train": train_size, "test": test_size}.get(split)
            index = subsample(np.arange(len(labels)), np.asarray(labels), size, seed, f"{name} {split}_size")
            ids = [f"{split}-{i:05d}" for i in range(len(labels))]
            full = Split(split, ids, labels, guarded_loader(_TvImage(ds), ids, name), _TvDigest(ds, labels))
            built[split] = full if size is None else full.subset(index.tolist())
            if classes is None:
                found = getattr(ds, "classes", None)
                classes = [str(c) for c in found] if found else [str(i) for i in range(max(labels) + 1)]
        return Dataset(name, built, classes or [], ("image",), description=title, meta={"root": str(where)})

    factory.__name__ = name
    factory.__doc__ = (
        f"{title} via torchvision (``root``, ``download=False``, ``train_size``, ``test_size``)."
    )
    return factory


def _checker(name: str):
    cls_name, splits, title = PRESETS[name]

    def check() -> None:
        _check_torchvision()
        import torchvision.datasets as tvd

        kwargs = next(iter(splits.values()))
        try:
            getattr(tvd, cls_name)(root=str(default_root()), download=False, **kwargs)
        except (RuntimeError, FileNotFoundError, OSError):
            raise UserInputError(
                f"{title} files are not under {default_root()}; load it with download=True (online)"
            ) from None

    return check


for _name, (_cls, _splits, _title) in PRESETS.items():
    register_dataset(
        _name,
        _make(_name),
        fields=("image",),
        summary=f"{_title} (torchvision; download=True needs internet)",
        check=_checker(_name),
    )
