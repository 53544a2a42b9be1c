import numpy as np
import torch

from conftest import tiny_config
from medgap.data.dataset_json import load_dataset_json
from medgap.data.pipeline import prepare_data, training_loader
from medgap.methods import build_method
from medgap.metrics import dice


def test_overfits_one_case_to_dice_above_0_9(tiny_region_dataset, tmp_path):
    """The whole path (targets from regions, Dice+BCE, optimiser) can fit a single case."""
    config = tiny_config(tiny_region_dataset, **{"data.labelled_count": 1, "data.patch_size": [24, 24, 24],
                                                 "data.foreground_probability": 0.0, "optim.lr": 0.01})
    config.data.augmentation.noise_std = 0.0
    config.data.augmentation.flip_probability = 0.0
    config.data.augmentation.intensity_scale = config.data.augmentation.intensity_shift = 0.0
    data = prepare_data(config.data, 0, tmp_path / "run")
    torch.manual_seed(0)
    method = build_method(config, data.spec)
    optimizer = torch.optim.Adam(method.parameters(), lr=0.01)
    batch = next(iter(training_loader(data, config.data, seed=0)))
    assert batch["labelled"].all() and batch["image"].shape == (2, 2, 24, 24, 24)
    for step in range(100):
        loss = method.training_step(batch, step).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    method.eval()
    with torch.no_grad():
        probabilities = torch.sigmoid(method.predict_logits(batch["image"][:1], batch["availability"][:1]))[0]
    truth = method.targets.targets(batch["label"][:1])[0]
    for region in range(2):
        assert dice(probabilities[region] > 0.5, truth[region] > 0.5) > 0.9


def test_unlabelled_samples_do_not_reach_the_supervised_loss(tiny_dataset):
    spec = load_dataset_json(tiny_dataset)
    method = build_method(tiny_config(tiny_dataset), spec)
    image = torch.randn(3, 2, 16, 16, 16)
    label = torch.randint(0, 3, (3, 16, 16, 16))
    labelled = torch.tensor([True, True, False])
    batch = {"image": image, "label": label, "labelled": labelled}
    reference = method.training_step(batch, 0).loss
    batch["image"] = image.clone()
    batch["image"][2] = 1e3
    batch["label"] = label.clone()
    batch["label"][2] = 0
    assert torch.equal(method.training_step(batch, 0).loss, reference)
    assert np.isfinite(float(reference))
