"""The method contract (medgap/methods/base.py), checked for every registered method on a tiny dataset.

One row per (method, kind of dataset): the method is built through the registry, is exactly one kind, gives a
finite loss for one training batch, validates to a dict whose first entry (the one that selects best.pt) is a
float, and comes back from a checkpoint with the same outputs.
"""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_config
from medgap.data.pipeline import prepare_data, training_loader
from medgap.methods.base import ClassificationMethod, Method, PretrainingMethod, SegmentationMethod
from medgap.registry import METHODS, build_method
from medgap.training.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from test_contig import write_eye_cohort

KINDS = {"segmentation": SegmentationMethod, "classification": ClassificationMethod,
         "pretraining": PretrainingMethod}
SEMI = {"data.labelled_count": 2, "data.labelled_batch_size": 1, "data.unlabelled_batch_size": 1}
EYES = {"data.patch_size": [16, 16], "data.normalisation": "none", "data.labelled_batch_size": 4}
RESNET = {**EYES, "method.backbone_widths": [4, 8]}
CONTRASTIVE = {**RESNET, "method.projection_hidden": 8, "method.projection_dim": 4}
CHEST = {"data.patch_size": [32, 32], "data.labelled_batch_size": 3}
SMALL_VIT = {"method.vit_width": 16, "method.vit_depth": 1, "method.text_width": 16, "method.text_depth": 1,
             "method.embed_dim": 8, "method.projection_hidden": 16}
SMALL_ENCODER = ("{vit_width: 16, vit_depth: 1, text_width: 16, text_depth: 1, embed_dim: 8, "
                 "projection_hidden: 16}")

# (method name, dataset, config overrides, expected kind)
CASES = [
    ("supervised", "volumes", {}, "segmentation"),
    ("shaspec", "volumes", {}, "segmentation"),
    ("shaspec", "eyes", EYES, "classification"),
    ("zero_filling", "volumes", {}, "segmentation"),
    ("zero_filling", "eyes", EYES, "classification"),
    ("mean_teacher", "volumes", {**SEMI, "model.norm": "batch"}, "segmentation"),
    ("ss_net", "volumes", {**SEMI, "model.norm": "batch"}, "segmentation"),
    ("amvlm", "chest", {**CHEST, **SMALL_VIT}, "pretraining"),
    ("amvlm_ssmis", "chest", {**CHEST, "data.labelled_batch_size": 1, "data.unlabelled_batch_size": 1,
                              "data.labelled_count": 2, "model.features": [4, 8], "method.encoder": SMALL_ENCODER},
     "segmentation"),
    ("contig", "eyes", {**CONTRASTIVE, "method.genetic_hidden": [6]}, "pretraining"),
    ("simclr", "eyes", CONTRASTIVE, "pretraining"),
    ("image_classifier", "eyes", RESNET, "classification"),
]


def test_every_registered_method_has_a_row():
    assert {name for name, *_ in CASES} == set(METHODS)


@pytest.fixture(scope="module")
def datasets(tiny_dataset, tmp_path_factory):
    from medgap.data.synthetic import generate

    chest = generate("chest-xray-text", tmp_path_factory.mktemp("contract") / "chest", cases=10, test_cases=0,
                     seed=0, size=32)
    return {"volumes": tiny_dataset, "chest": chest,
            "eyes": write_eye_cohort(tmp_path_factory.mktemp("contract") / "eyes", individuals=8)}


def outputs(method: Method, batch: dict, data, config) -> object:
    """What a reloaded method must reproduce: its logits, or (pretraining) its validation scores."""
    method.eval()
    with torch.inference_mode():
        if isinstance(method, PretrainingMethod):
            return method.validation_scores(data, config, None, "val")
        return method.predict_logits(batch["image"], batch["availability"])


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in
                                            zip(a.values(), b.values()))
    return torch.equal(a, b)


@pytest.mark.parametrize("name,dataset,overrides,kind", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_method_contract(name, dataset, overrides, kind, datasets, tmp_path):
    config = tiny_config(datasets[dataset], **{"method.name": name, "data.num_workers": 0,
                                               "model.features": [4, 8], **overrides})
    data = prepare_data(config.data, 0, tmp_path)
    torch.manual_seed(0)
    method = build_method(config, data.spec)

    assert method.kind == kind and isinstance(method, KINDS[kind])
    assert [isinstance(method, base) for base in KINDS.values()].count(True) == 1

    batch = next(iter(training_loader(data, config.data, 0)))
    method.train()
    output = method.training_step(batch, 0)
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    output.loss.backward()
    method.on_after_optimizer_step(0)

    method.eval()
    with torch.inference_mode():
        scores = method.validation_scores(data, config, None, "val")
    assert isinstance(scores, dict) and scores
    first = next(iter(scores.values()))
    assert isinstance(first, float) and not math.isnan(first)

    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": method.state_dict()})
    torch.manual_seed(1)  # different initial weights: only the checkpoint can make the outputs equal
    reloaded = build_method(config, data.spec)
    load_model_state(reloaded, load_checkpoint(path)["model"], path)
    assert same(outputs(method, batch, data, config), outputs(reloaded, batch, data, config))
