"""The ``open_clip`` adapter kind: CLIP-like image and/or text towers as a teacher.

The card's ``model`` is the open_clip architecture (``ViT-L-14``), ``tag`` the pretrained
tag (``laion2b_s32b_b82k``) and ``towers`` which tower(s) to use:

* ``image`` (inputs ``image``): ``model.encode_image(x)``;
* ``text`` (inputs ``text``): ``model.encode_text(tokens)``;
* ``both`` (inputs ``image+text``): ``[encode_image | encode_text]`` concatenated.

With ``compose = "product"`` the output is still that concatenation, and ``tower_widths``
(``{image = d, text = d}``) declares the blocks, so the AFT ``compose="product"`` objective can
split the teacher feature and form the (μ-weighted) image ⊗ text outer product itself (paper,
SNLI-VE setting). Storing the concatenation keeps the bank at ``2d`` columns instead of ``d²``.
Features are not L2-normalised (open_clip's default), so they equal ``encode_image``/``encode_text``.
"""

from __future__ import annotations

from typing import Any

import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.teachers import weights as W
from fusion_aft.teachers._util import freeze, to_rgb_image
from fusion_aft.teachers.base import Teacher
from fusion_aft.teachers.card import TeacherCard
from fusion_aft.teachers.catalogue import builtin_kind
from fusion_aft.teachers.st_teacher import text_of

__all__ = ["OpenClipTeacher"]

_TOWER_INPUTS = {"image": "image", "text": "text", "both": "image+text"}


@builtin_kind("open_clip")
class OpenClipTeacher(Teacher):
    """A frozen open_clip model; image, text, or both towers (see the module docstring)."""

    def __init__(
        self,
        card: TeacherCard,
        device: str | torch.device = "cpu",
        model: torch.nn.Module | None = None,
        tokenizer: Any = None,
    ) -> None:
        import open_clip

        towers = card.towers or {"image": "image", "text": "text"}.get(card.inputs, "both")
        if _TOWER_INPUTS[towers] != card.inputs:
            raise UserInputError(
                f"teacher card '{card.name}': towers = '{towers}' needs inputs = '{_TOWER_INPUTS[towers]}'"
            )
        self.spec = card
        self.towers = towers
        self.device = torch.device(device)
        self.card_weights = model is None
        if model is None:
            model = self._build(card)
        self.model = freeze(model, self.device, card.dtype)
        self.tokenizer = tokenizer if tokenizer is not None else open_clip.get_tokenizer(card.model)
        self.transform = self._transform(card)

    def _build(self, card: TeacherCard) -> torch.nn.Module:
        import open_clip

        if not card.tag:
            raise UserInputError(f"teacher card '{card.name}': set 'tag' to the open_clip pretrained tag")
        W.resolve(card)  # raises early when offline and not cached
        try:
            return open_clip.create_model(card.model, pretrained=card.tag, require_pretrained=True)
        except Exception as exc:  # never fall back to random weights
            raise MissingWeightsError(
                f"teacher '{card.name}': could not load open_clip '{card.model}' / '{card.tag}' "
                f"({exc}); "
                f"{W.how_to_get(card)}"
            ) from exc

    def _transform(self, card: TeacherCard) -> Any:
        import open_clip

        if self.towers == "text":
            return None
        visual = self.model.visual
        pre = getattr(visual, "preprocess_cfg", {}) or {}
        p = card.preprocessing
        size = p.image_size or getattr(visual, "image_size", 224)
        return open_clip.image_transform(
            size,
            is_train=False,
            mean=p.mean or pre.get("mean"),
            std=p.std or pre.get("std"),
            interpolation=p.interpolation or pre.get("interpolation"),
            resize_mode=pre.get("resize_mode"),
        )

    def prepare(self, record: Record) -> dict[str, Any]:
        item: dict[str, Any] = {}
        if self.towers in ("image", "both"):
            item["image"] = self.transform(to_rgb_image(record.fields.get("image"), self.name))
        if self.towers in ("text", "both"):
            item["text"] = text_of(record, self.spec)
        return item

    def collate(self, items: Any) -> dict[str, Any]:
        batch: dict[str, Any] = {}
        if self.towers in ("image", "both"):
            batch["image"] = torch.stack([i["image"] for i in items])
        if self.towers in ("text", "both"):
            batch["text"] = self.tokenizer([i["text"] for i in items])
        return batch

    def forward_batch(self, batch: dict[str, Any]) -> torch.Tensor:
        parts = []
        with torch.no_grad():
            if "image" in batch:
                dtype = next(self.model.parameters()).dtype
                parts.append(self.model.encode_image(batch["image"].to(self.device, dtype=dtype)).float())
            if "text" in batch:
                parts.append(self.model.encode_text(batch["text"].to(self.device)).float())
        return torch.cat(parts, dim=1)
