"""The ``transformers`` adapter kind: any Hugging Face ``AutoModel`` as a text teacher.

Pooling of the last hidden states (card ``pooling``):

* ``cls``: the first token; ``mean``: the mean over non-padding tokens;
* ``last_token``: the last non-padding token, found from the attention mask, so left and right
  padding give the same result;
* ``eos``: the end-of-sequence token, appended when the tokenizer does not add one itself;
* ``default``: ``mean`` for encoders and encoder-decoders, ``last_token`` for decoder-only models.

Decoder-only models without a pad token get ``pad_token = eos_token`` (the vocabulary does not
grow) and explicit position ids, so padding never changes a row's features. Encoder-decoder
models (T5) run their encoder only. ``prompt`` templates, ``max_length`` and
``truncation_side`` come from the card; ``dtype`` (fp16/bf16) and ``device_map`` (e.g.
``"auto"`` for 7B teachers, needs ``accelerate``) are passed to ``from_pretrained``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.teachers import weights as W
from fusion_aft.teachers._util import freeze, quiet_transformers, torch_dtype
from fusion_aft.teachers.base import Teacher
from fusion_aft.teachers.card import TeacherCard
from fusion_aft.teachers.catalogue import builtin_kind
from fusion_aft.teachers.st_teacher import text_of

log = logging.getLogger(__name__)

__all__ = ["TransformersTeacher", "pool"]


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool ``hidden[B, T, d]`` over tokens where ``mask[B, T]`` is 1 (see the module docstring)."""
    mask = mask.to(hidden.device)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
    if mode in ("last_token", "eos"):
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (
            torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values.clamp_min(0)
        )
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise UserInputError(f"unknown pooling '{mode}'; use cls, mean, last_token or eos")


@builtin_kind("transformers")
class TransformersTeacher(Teacher):
    """A frozen ``AutoModel`` (encoder, decoder-only, or the encoder of an encoder-decoder)."""

    def __init__(
        self,
        card: TeacherCard,
        device: str | torch.device = "cpu",
        model: torch.nn.Module | None = None,
        tokenizer: Any = None,
        trust_remote_code: bool = False,
    ) -> None:
        if card.inputs != "text":
            raise UserInputError(f"teacher card '{card.name}': kind 'transformers' takes inputs = 'text'")
        self.spec = card
        self.device = torch.device(device)
        remote = trust_remote_code and card.trust_remote_code
        self.card_weights = model is None
        if model is None:
            model, tokenizer = self._build(card, remote)
        elif tokenizer is None:
            raise UserInputError(f"teacher '{card.name}': pass the tokenizer together with the model")
        config = model.config
        self.encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        self.decoder_only = not self.encoder_decoder and _is_decoder_only(model)
        if self.encoder_decoder:
            model = model.get_encoder()
        if card.device_map is None:
            model = freeze(model, self.device, card.dtype)
        else:  # placed by accelerate; inputs go to the first device
            model.eval().requires_grad_(False)
            self.device = next(model.parameters()).device
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise UserInputError(
                    f"teacher '{card.name}': its tokenizer has neither a pad nor an eos token"
                )
            tokenizer.pad_token = tokenizer.eos_token
        pre = card.preprocessing
        if pre.truncation_side is not None:
            tokenizer.truncation_side = pre.truncation_side
        limit = getattr(tokenizer, "model_max_length", None) or 512
        self.max_length = pre.max_length or min(int(limit), 512)
        self.pooling = card.pooling
        if self.pooling == "default":
            self.pooling = "last_token" if self.decoder_only else "mean"
        if self.pooling in ("avg", "token"):
            raise UserInputError(f"teacher card '{card.name}': pooling '{card.pooling}' is for image models")
        self.append_eos = self.pooling == "eos" and not _adds_eos(tokenizer)

    def _build(self, card: TeacherCard, trust_remote_code: bool) -> tuple[torch.nn.Module, Any]:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        source = str(W.resolve(card))
        kwargs: dict[str, Any] = {"revision": card.revision, "trust_remote_code": trust_remote_code}
        if card.weights.source == "hub":
            kwargs["local_files_only"] = W.hub_offline()
        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
                config = AutoConfig.from_pretrained(source, **kwargs)
                model_kwargs = dict(kwargs, dtype=torch_dtype(card.dtype), **card.model_kwargs)
                if card.device_map is not None:
                    model_kwargs["device_map"] = card.device_map
                if getattr(config, "is_encoder_decoder", False) and config.model_type == "t5":
                    from transformers import T5EncoderModel

                    model = T5EncoderModel.from_pretrained(source, **model_kwargs)
                else:
                    model = AutoModel.from_pretrained(source, **model_kwargs)
        except OSError as exc:
            raise MissingWeightsError(
                f"teacher '{card.name}': could not load '{source}' ({str(exc).splitlines()[0]}); "
                f"{W.how_to_get(card)}"
            ) from exc
        return model, tokenizer

    def prepare(self, record: Record) -> str:
        return text_of(record, self.spec)

    def collate(self, items: Any) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        texts = list(items)
        if not self.append_eos:
            return dict(
                tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            )
        ids = tok(texts, truncation=True, max_length=self.max_length - 1)["input_ids"]
        ids = [row + [tok.eos_token_id] for row in ids]
        return dict(tok.pad({"input_ids": ids}, padding=True, return_tensors="pt"))

    def forward_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {
            k: v.to(self.device)
            for k, v in batch.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        mask = inputs["attention_mask"]
        if self.decoder_only:
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp_min(0)
        with torch.no_grad():
            out = self.model(**inputs)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return pool(hidden.float(), mask, self.pooling).to(self.device)


def _is_decoder_only(model: torch.nn.Module) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = model.config
    if getattr(config, "is_decoder", False):
        return True
    encoders = {
        "bert",
        "roberta",
        "distilbert",
        "albert",
        "electra",
        "xlm-roberta",
        "deberta",
        "deberta-v2",
        "mpnet",
    }
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in encoders


def _adds_eos(tokenizer: Any) -> bool:
    if tokenizer.eos_token_id is None:
        return True  # nothing to append
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[-1] == tokenizer.eos_token_id
