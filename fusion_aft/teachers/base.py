"""The interface every teacher adapter implements.

A teacher turns raw inputs (PIL images, strings, or records carrying both) into one feature
vector each. Work is split in three so extraction can run the cheap part in DataLoader workers:

* ``prepare(record)``: per example, on CPU, picklable (image transform, tokenisation-free text).
* ``collate(items)``: stack prepared examples into one batch.
* ``forward_batch(batch)``: the model forward, on the teacher's device, returning ``Tensor[B, d]``.

``encode(inputs)`` chains the three for convenience. All teachers are frozen: eval mode, no
gradients, and results that do not depend on the batch size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from fusion_aft.data.records import Record


class Teacher(ABC):
    """A frozen feature extractor described by a card (``self.spec``)."""

    spec: Any  # fusion_aft.teachers.card.TeacherCard
    device: torch.device

    @classmethod
    def from_card(cls, card: Any, device: str | torch.device = "cpu", **options: Any) -> Teacher:
        """Build this adapter kind for ``card`` on ``device`` (kinds with options override this)."""
        return cls(card, device=device, **options)  # type: ignore[call-arg]

    @property
    def ref(self) -> str:
        """The canonical teacher reference (name plus preprocessing overrides): the bank key."""
        return getattr(self.spec, "ref", self.spec.name)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dim(self) -> int:
        return int(self.spec.width)

    @abstractmethod
    def prepare(self, record: Record) -> Any:
        """Turn one record into model input (runs in DataLoader workers; must be picklable)."""

    def collate(self, items: Sequence[Any]) -> Any:
        """Stack prepared items into a batch; default: ``torch.stack`` or a list."""
        if items and isinstance(items[0], torch.Tensor):
            return torch.stack(list(items))
        return list(items)

    @abstractmethod
    def forward_batch(self, batch: Any) -> torch.Tensor:
        """Features ``Tensor[B, d]`` (float32, on ``self.device``) for a collated batch."""

    @torch.no_grad()
    def encode(self, inputs: Sequence[Any]) -> torch.Tensor:
        """Features for raw inputs: records, PIL images, strings, or ``{"image":…, "text":…}``."""
        records = [as_record(x, i) for i, x in enumerate(inputs)]
        return self.forward_batch(self.collate([self.prepare(r) for r in records]))

    #: True when the weights were read from the card's weight files (not passed in by a caller):
    #: then the digest hashes those files (cached), which is cheaper than hashing tensors.
    card_weights: bool = False

    def weights_digest(self) -> str:
        """A stable digest of the weights, recorded in bank manifests (override if cheaper)."""
        if self.card_weights:
            from fusion_aft.teachers.weights import digest

            return digest(self.spec)
        from fusion_aft.teachers.digest import state_dict_digest

        return state_dict_digest(self.module_for_digest())

    def module_for_digest(self) -> Any:
        """The module (or tensor dict) whose weights identify this teacher.

        Default: the ``model`` attribute when it is a module; otherwise the teacher is code only
        and its class source identifies it.
        """
        model = getattr(self, "model", None)
        if isinstance(model, torch.nn.Module):
            return model
        import inspect

        try:
            source = inspect.getsource(type(self))
        except (OSError, TypeError):
            source = type(self).__qualname__
        return {"source": torch.frombuffer(bytearray(source.encode()), dtype=torch.uint8)}


def as_record(value: Any, index: int = 0) -> Record:
    """Wrap a raw input as a :class:`Record` (strings → text, dicts → fields, else image)."""
    if isinstance(value, Record):
        return value
    if isinstance(value, str):
        return Record(str(index), {"text": value})
    if isinstance(value, dict):
        return Record(str(index), dict(value))
    return Record(str(index), {"image": value})
