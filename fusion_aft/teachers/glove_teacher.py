"""The ``glove`` adapter kind: the average of static word vectors (a cheap, weak text teacher).

The weights folder holds ``*_emb.npy`` (N x d float matrix) and ``*_index.parquet`` (the N words,
in row order). Text is lower-cased (unless the card sets ``lowercase = false``) and split into
word and punctuation tokens as GloVe's tokeniser did; unknown tokens are skipped and a text with
no known token maps to the zero vector.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.teachers import weights as W
from fusion_aft.teachers.base import Teacher
from fusion_aft.teachers.card import TeacherCard
from fusion_aft.teachers.catalogue import builtin_kind
from fusion_aft.teachers.st_teacher import text_of

__all__ = ["GloveTeacher", "tokenize"]

_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|\w+(?:[-.]\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Treebank-style tokens, as GloVe's vocabulary has them.

    ``"It's well-known they don't stop!"`` -> ``["It", "'s", "well-known", "they", "do", "n't",
    "stop", "!"]``.
    """
    return _TOKEN.findall(text)


@builtin_kind("glove")
class GloveTeacher(Teacher):
    """Mean of the word vectors of a text's known tokens."""

    def __init__(self, card: TeacherCard, device: str | torch.device = "cpu") -> None:
        if card.inputs != "text":
            raise UserInputError(f"teacher card '{card.name}': kind 'glove' takes inputs = 'text'")
        self.spec = card
        self.device = torch.device(device)
        self.folder = Path(W.resolve(card))
        emb_files = sorted(self.folder.glob("*_emb.npy")) if self.folder.is_dir() else []
        idx_files = sorted(self.folder.glob("*_index.parquet")) if self.folder.is_dir() else []
        if len(emb_files) != 1 or len(idx_files) != 1:
            raise MissingWeightsError(
                f"teacher '{card.name}': {self.folder} needs one *_emb.npy and one *_index.parquet"
            )
        import pyarrow.parquet as pq

        table = pq.read_table(idx_files[0])
        words = table.column(table.column_names[0]).to_pylist()
        vectors = np.load(emb_files[0], mmap_mode="r")
        if vectors.shape[0] != len(words):
            raise MissingWeightsError(
                f"teacher '{card.name}': {len(words)} words but {vectors.shape[0]} vectors"
            )
        self.vocab = {w: i for i, w in enumerate(words)}
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(self.device)
        self.card_weights = True

    def prepare(self, record: Record) -> list[int]:
        text = text_of(record, self.spec)
        if self.spec.preprocessing.lowercase is None:  # GloVe 6B is uncased; text_of handles True
            text = text.lower()
        return [self.vocab[t] for t in tokenize(text) if t in self.vocab]

    def module_for_digest(self) -> Any:
        return {"vectors": self.vectors}

    def collate(self, items: Any) -> list[list[int]]:
        return [list(i) for i in items]

    def forward_batch(self, batch: list[list[int]]) -> torch.Tensor:
        out = torch.zeros(len(batch), self.vectors.shape[1], device=self.device)
        for row, ids in enumerate(batch):
            if ids:
                out[row] = self.vectors[torch.as_tensor(ids, device=self.device)].mean(0)
        return out

    def word_vector(self, word: str) -> torch.Tensor:
        """The vector of one vocabulary word (KeyError if unknown)."""
        return self.vectors[self.vocab[word]]
