"""nnU-Net's augmentation and deep supervision keep exact resume: every sample's rotation, scaling, elastic field
and gamma come from its own (seed, step, sample) generator, not from state that an interruption would lose."""

import torch

from conftest import tiny_config, train_interrupted_then_resumed
from medgap.methods import supervised
from medgap.training.checkpoint import load_checkpoint
from medgap.training.loop import train


def test_resume_with_nnunet_augmentation_and_deep_supervision_is_bit_identical(tiny_dataset, tmp_path, monkeypatch):
    every_time = {"data.augmentation.nnunet": True, "data.augmentation.rotation_probability": 1.0,
                  "data.augmentation.scaling_probability": 1.0, "data.augmentation.elastic_probability": 1.0,
                  "data.augmentation.gamma_probability": 1.0, "data.augmentation.gamma_inverted_probability": 1.0}
    config = tiny_config(tiny_dataset, **every_time, **{"method.deep_supervision": True,
                                                        "model.features": [4, 8, 16, 32]})
    train(config, tmp_path / "straight")
    train_interrupted_then_resumed(config, tmp_path / "interrupted", monkeypatch, supervised.Supervised)

    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["model"]
    resumed = load_checkpoint(tmp_path / "interrupted" / "checkpoints" / "last.pt")["model"]
    assert "net.deep_supervision_heads.0.weight" in straight and straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key  # bit-identical on CPU

    plain = tiny_config(tiny_dataset, **{"model.features": [4, 8, 16, 32]})  # and the options changed training
    train(plain, tmp_path / "plain")
    default = load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.pt")["model"]
    assert not torch.equal(default["net.head.weight"], straight["net.head.weight"])
