"""Small built-in vision students that train in seconds on a laptop CPU: ``mlp`` and ``small_cnn``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fusion_aft.data.records import Record
from fusion_aft.errors import UserInputError
from fusion_aft.students.base import Student
from fusion_aft.students.inputs import ImagePipeline, VectorPipeline
from fusion_aft.students.registry import register_student


def _check_positive(name: str, value: int) -> int:
    if int(value) < 1:
        raise UserInputError(f"student option {name} must be a positive integer, got {value}")
    return int(value)


@register_student("mlp")
class MLPStudent(Student):
    """A multilayer perceptron on a flattened image or any numeric vector.

    Args:
        num_classes: output classes.
        hidden: hidden layer sizes; the last one is the feature width dφ.
        input_dim: length of the input vector; default ``in_channels * image_size**2``.
        image_size, in_channels: how images are turned into vectors (grey 28×28 by default).
        field: record field to read (``"image"``, or any field holding a vector).
        dropout: dropout after each hidden layer.
        mean, std: image normalisation.

    Example::

        s = fusion_aft.students.create("mlp", 10, hidden=[256, 128])
        logits, features = s(torch.randn(4, 784))   # features: [4, 128]
    """

    def __init__(
        self,
        num_classes: int,
        hidden: Sequence[int] = (256, 128),
        input_dim: int | None = None,
        image_size: int = 28,
        in_channels: int = 1,
        field: str = "image",
        dropout: float = 0.0,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
    ) -> None:
        super().__init__()
        hidden = [_check_positive("hidden", h) for h in hidden]
        if not hidden:
            raise UserInputError("student 'mlp' needs at least one hidden layer (option hidden=[...])")
        self.num_classes = _check_positive("num_classes", num_classes)
        self.image_size = _check_positive("image_size", image_size)
        self.in_channels = int(in_channels)
        self.input_dim = _check_positive("input_dim", input_dim or in_channels * image_size * image_size)
        self.hidden = hidden
        self.dropout = float(dropout)
        self.mean, self.std = mean, std
        self.input_field = field
        self.modality = "image" if field == "image" else "vector"
        layers: list[nn.Module] = []
        width = self.input_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.feature_dim = width
        self.head = nn.Linear(width, self.num_classes)
        image = ImagePipeline(image_size, in_channels, mean, std, field=field, flatten=True)
        self.pipeline = VectorPipeline(field, image=image)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(inputs.flatten(1).float())
        return self.head(features), features

    def example_record(self) -> Record:
        if self.modality == "image":
            return super().example_record()
        return Record("example", {self.input_field: [0.0] * self.input_dim})

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "hidden": list(self.hidden),
            "input_dim": self.input_dim,
            "image_size": self.image_size,
            "in_channels": self.in_channels,
            "field": self.input_field,
            "dropout": self.dropout,
            "mean": _jsonable(self.mean),
            "std": _jsonable(self.std),
        }


@register_student("small_cnn")
class SmallCNNStudent(Student):
    """A three-block convolutional net (about 95k parameters at width 32) for small images.

    Blocks: conv3×3(w) → BN → ReLU → maxpool, conv3×3(2w) → BN → ReLU → maxpool,
    conv3×3(4w) → BN → ReLU, then global average pooling gives the 4w-wide features.

    Args:
        num_classes: output classes.
        in_channels: 1 (grey, e.g. Fashion-MNIST) or 3 (RGB); images are converted to this.
        image_size: images are resized to ``image_size × image_size``.
        width: channels of the first block (features are ``4 * width`` wide).
        dropout: dropout before the head.
        mean, std: normalisation after scaling pixels to [0, 1].
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        image_size: int = 28,
        width: int = 32,
        dropout: float = 0.0,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = _check_positive("num_classes", num_classes)
        self.in_channels = int(in_channels)
        self.image_size = _check_positive("image_size", image_size)
        self.width = w = _check_positive("width", width)
        self.dropout = float(dropout)
        self.mean, self.std = mean, std
        self.pipeline = ImagePipeline(image_size, in_channels, mean, std)

        def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
            mods: list[nn.Module] = [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
            return mods + ([nn.MaxPool2d(2)] if pool else [])

        self.body = nn.Sequential(
            *block(self.in_channels, w, True),
            *block(w, 2 * w, True),
            *block(2 * w, 4 * w, False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(self.dropout) if self.dropout > 0 else nn.Identity(),
        )
        self.feature_dim = 4 * w
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(inputs.float())
        return self.head(features), features

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "width": self.width,
            "dropout": self.dropout,
            "mean": _jsonable(self.mean),
            "std": _jsonable(self.std),
        }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else float(value)
