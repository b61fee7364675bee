"""The interface every student implements: ``forward(inputs) -> (logits, features)``.

``features`` are the penultimate features Φ (the input of the final linear classifier), the
quantity the transfer objectives act on. A student also owns its input pipeline
(``prepare``/``collate``) so the trainer stays modality-agnostic, and can describe itself as a
config dict so it can be rebuilt on export without its teachers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fusion_aft.data.records import Record


class Student(nn.Module, ABC):
    """A small trainable model. Subclasses set ``feature_dim`` and ``num_classes``."""

    feature_dim: int
    num_classes: int

    @abstractmethod
    def forward(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits [B, C], features [B, dφ])``."""

    @abstractmethod
    def prepare(self, record: Record) -> Any:
        """Turn one record into model input (CPU, picklable)."""

    def collate(self, items: Sequence[Any]) -> Any:
        if items and isinstance(items[0], torch.Tensor):
            return torch.stack(list(items))
        return list(items)

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """A JSON-able dict from which the registered factory rebuilds this student."""
