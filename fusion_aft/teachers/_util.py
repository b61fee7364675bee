"""Small helpers shared by the adapter kinds: freezing, dtypes, images, safe weight files."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_aft.errors import UserInputError

__all__ = ["freeze", "load_tensors", "quiet_transformers", "to_rgb_image", "torch_dtype"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def freeze(module: torch.nn.Module, device: str | torch.device, dtype: str = "float32") -> torch.nn.Module:
    """Eval mode, no gradients, moved to ``device`` in the card's dtype (fp16/bf16 for big teachers)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(device=torch.device(device), dtype=torch_dtype(dtype))


def to_rgb_image(value: Any, teacher: str, keep_gray: bool = False) -> Any:
    """A PIL RGB image from a PIL image, a path, or an HxW / HxWxC uint8 or float array.

    ``keep_gray``: a grayscale (mode ``L``) image stays grayscale, for callers that replicate the
    channel themselves after the per-pixel work (RGB from ``L`` is the same value three times).
    """
    from PIL import Image

    def rgb(im: Any) -> Any:
        return im if keep_gray and im.mode == "L" else im.convert("RGB")

    if isinstance(value, Image.Image):
        return rgb(value)
    if isinstance(value, str | Path):
        with Image.open(value) as im:
            im.load()
            return im.copy() if keep_gray and im.mode == "L" else im.convert("RGB")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        return rgb(Image.fromarray(arr))
    raise UserInputError(
        f"teacher '{teacher}' needs an image (PIL image, path or array), got {type(value).__name__}"
    )


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a torch checkpoint, never unpickling arbitrary objects."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return dict(obj)


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load reports and progress bars while building a teacher."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        hf_logging.disable_progress_bar()
    except AttributeError:  # older versions
        pass
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        with contextlib.suppress(AttributeError):
            hf_logging.enable_progress_bar()
