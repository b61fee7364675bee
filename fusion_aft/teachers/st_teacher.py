"""The ``sentence_transformers`` adapter kind: a SentenceTransformer as a text teacher.

Features are exactly ``SentenceTransformer.encode`` (the model's own modules: transformer,
pooling and, where the model has one, normalisation); the card can change the maximum length,
the truncation side and a prompt template (``"query: {text}"``).
"""

from __future__ import annotations

from typing import Any

import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.teachers import weights as W
from fusion_aft.teachers._util import quiet_transformers
from fusion_aft.teachers.base import Teacher
from fusion_aft.teachers.card import TeacherCard
from fusion_aft.teachers.catalogue import builtin_kind

__all__ = ["SentenceTransformerTeacher", "text_of"]


def text_of(record: Record, card: TeacherCard) -> str:
    """The record's text with the card's prompt template (and lowercasing) applied."""
    text = record.fields.get("text")
    if not isinstance(text, str):
        raise UserInputError(
            f"teacher '{card.name}' needs a 'text' field (a string), got {type(text).__name__}"
        )
    pre = card.preprocessing
    if pre.lowercase:
        text = text.lower()
    return pre.prompt.replace("{text}", text) if pre.prompt else text


@builtin_kind("sentence_transformers")
class SentenceTransformerTeacher(Teacher):
    """A frozen SentenceTransformer; ``encode`` semantics, float32 output."""

    def __init__(
        self, card: TeacherCard, device: str | torch.device = "cpu", trust_remote_code: bool = False
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if card.inputs != "text":
            raise UserInputError(
                f"teacher card '{card.name}': kind 'sentence_transformers' takes inputs = 'text'"
            )
        self.spec = card
        self.device = torch.device(device)
        source = W.resolve(card)
        kwargs: dict[str, Any] = {
            "device": str(self.device),
            "trust_remote_code": trust_remote_code and card.trust_remote_code,
        }
        if card.weights.source == "hub":
            kwargs["revision"] = card.revision
            kwargs["local_files_only"] = W.hub_offline()
        try:
            with quiet_transformers():
                self.model = SentenceTransformer(str(source), **kwargs)
        except (OSError, ValueError) as exc:
            raise MissingWeightsError(
                f"teacher '{card.name}': could not load '{source}' ({exc}); {W.how_to_get(card)}"
            ) from exc
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if card.dtype != "float32":
            self.model.to(getattr(torch, card.dtype))
        pre = card.preprocessing
        if pre.max_length is not None:
            self.model.max_seq_length = pre.max_length
        if pre.truncation_side is not None:
            self.model.tokenizer.truncation_side = pre.truncation_side
        self.card_weights = True

    def prepare(self, record: Record) -> str:
        return text_of(record, self.spec)

    def forward_batch(self, batch: list[str]) -> torch.Tensor:
        out = self.model.encode(
            list(batch),
            batch_size=max(1, len(batch)),
            convert_to_tensor=True,
            show_progress_bar=False,
            device=str(self.device),
        )
        # encode() runs under inference_mode; clone into a normal tensor usable with autograd
        return out.float().to(self.device).clone()
