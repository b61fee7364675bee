"""The interface every student implements: ``forward(inputs) -> (logits, features)``.

``features`` are the penultimate features Φ (the input of the final linear classifier), the
quantity the transfer objectives act on. A student also owns its input pipeline
(``prepare``/``collate``) so the trainer stays modality-agnostic, and can describe itself as a
config dict so it can be rebuilt on export without its teachers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusion_aft.data.records import Record


class Student(nn.Module, ABC):
    """A small trainable model. Subclasses set ``feature_dim`` and ``num_classes``.

    Conventions shared by every built-in student:

    * the final classifier is an ``nn.Linear`` called ``head``; ``features`` is its input, so
      ``logits == head(features)``;
    * ``modality`` says what ``prepare`` reads from a record (``"image"``, ``"text"`` or
      ``"vector"``) and ``input_field`` names the record field;
    * ``pipeline`` is a small picklable callable doing what ``prepare`` does, for DataLoader
      workers that should not carry the whole model;
    * ``name`` is the registry name (set by :func:`fusion_aft.students.create`);
    * ``class_names`` and ``meta`` are filled in by :func:`fusion_aft.students.load_student`.
    """

    feature_dim: int
    num_classes: int
    name: str = ""
    modality: str = "image"
    input_field: str = "image"
    class_names: list[str] | None = None
    meta: dict[str, Any] | None = None

    @abstractmethod
    def forward(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits [B, C], features [B, dφ])``."""

    def prepare(self, record: Record) -> Any:
        """Turn one record into model input (CPU, picklable): the student's ``pipeline`` by default."""
        pipeline = getattr(self, "pipeline", None)
        if pipeline is None:
            raise NotImplementedError(
                f"{type(self).__name__} sets no `pipeline`; give it one or override prepare()"
            )
        return pipeline(record)

    def collate(self, items: Sequence[Any]) -> Any:
        if items and isinstance(items[0], torch.Tensor):
            return torch.stack(list(items))
        return list(items)

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """A JSON-able dict from which the registered factory rebuilds this student."""

    # -- saving ---------------------------------------------------------------------------------
    def rebuild_config(self) -> dict[str, Any]:
        """The config that rebuilds this architecture offline, before its weights are loaded.

        Defaults to :meth:`config`; students that download weights or configs override it so a
        saved student never needs the network (e.g. ``pretrained=False``, the full model config).
        """
        return self.config()

    def save_files(self, folder: Path) -> dict[str, str]:
        """Write extra files the student needs (a tokenizer...) into ``folder``.

        Returns ``{config key: path relative to folder}``; on load each key of the config is set
        to the absolute path of that file or folder.
        """
        return {}

    # -- helpers --------------------------------------------------------------------------------
    def example_record(self) -> Record:
        """A typical input record (for latency measurement and smoke tests)."""
        if self.modality == "text":
            return Record("example", {self.input_field: "a short example sentence about a good film"})
        from PIL import Image

        return Record("example", {self.input_field: Image.new("RGB", (28, 28), (127, 127, 127))})

    def batch_to(self, batch: Any, device: torch.device | str) -> Any:
        """Move a collated batch (tensor, dict or list of tensors) to ``device``."""
        return move_to(batch, device)

    @torch.no_grad()
    def predict_proba(self, records: Sequence[Record], batch_size: int = 64) -> torch.Tensor:
        """Class probabilities ``[N, C]`` (float32, CPU) for records, in eval mode."""
        was_training = self.training
        self.eval()
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        out = []
        try:
            for start in range(0, len(records), batch_size):
                chunk = records[start : start + batch_size]
                batch = move_to(self.collate([self.prepare(r) for r in chunk]), device)
                logits, _ = self(batch)
                out.append(torch.softmax(logits.float(), dim=-1).cpu())
        finally:
            self.train(was_training)
        if not out:
            return torch.zeros(0, self.num_classes)
        return torch.cat(out)


def move_to(batch: Any, device: torch.device | str) -> Any:
    """Move tensors inside ``batch`` (nested dicts, lists, tuples) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch
