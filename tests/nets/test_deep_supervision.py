"""Deep supervision (method.deep_supervision): nnU-Net's weights, the U-Net's extra outputs, downsampled labels."""

import pytest
import torch

from conftest import tiny_config
from medgap.data.dataset_json import load_dataset_json
from medgap.errors import ConfigError
from medgap.losses import DeepSupervisionLoss, deep_supervision_weights
from medgap.losses.deep_supervision import downsample_labels
from medgap.methods import build_method
from medgap.nets import UNet


@pytest.mark.parametrize("levels, expected", [
    (1, [1.0]),  # one decoder level: nothing to drop
    (3, [2 / 3, 1 / 3, 0.0]),  # medgap's default U-Net (4 scales): 1, 1/2, (1/4 → 0), normalised
    (4, [4 / 7, 2 / 7, 1 / 7, 0.0]),
    (5, [8 / 15, 4 / 15, 2 / 15, 1 / 15, 0.0]),  # nnU-Net's 3d_fullres plan of 6 stages, 5 outputs: 8/15 ...
])
def test_weights_halve_per_level_drop_the_coarsest_and_sum_to_one(levels, expected):
    assert deep_supervision_weights(levels) == pytest.approx(expected)


def test_unet_outputs_per_level_and_main_path_unchanged():
    torch.manual_seed(0)
    plain = UNet(3, 2, 3, [4, 8, 16, 32, 64])
    torch.manual_seed(0)
    deep = UNet(3, 2, 3, [4, 8, 16, 32, 64], deep_supervision_heads=2)  # 4 levels: weights 4/7, 2/7, 1/7, 0
    image = torch.randn(2, 2, 32, 32, 32)
    outputs = deep.forward_deep_supervision(image)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 32, 32, 32), (2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]
    main = {k: v for k, v in deep.state_dict().items() if not k.startswith("deep_supervision_heads.")}
    assert main.keys() == plain.state_dict().keys()
    assert all(torch.equal(main[k], v) for k, v in plain.state_dict().items())  # same initialisation
    assert torch.equal(deep(image), plain(image)) and torch.equal(outputs[0], plain(image))
    assert sorted({k.split(".")[1] for k in deep.state_dict() if k.startswith("deep_supervision_heads.")}) == ["0", "1"]
    with pytest.raises(ValueError, match="4 deep-supervision heads for 4 decoder levels"):
        UNet(3, 2, 3, [4, 8, 16, 32, 64], deep_supervision_heads=4)


def test_labels_are_downsampled_by_nearest_exact_keeping_values():
    label = torch.arange(16).reshape(1, 4, 4)
    # nearest-exact: output i reads input floor((i + 0.5) · 2) = 2i + 1
    assert downsample_labels(label, (2, 2)).tolist() == [[[5, 7], [13, 15]]]
    assert downsample_labels(label, (4, 4)) is label
    regions = torch.tensor([[0, 0, 2, 2], [0, 3, 2, 2], [1, 1, 0, 0], [1, 1, 0, 3]])[None]
    assert downsample_labels(regions, (2, 2)).tolist() == [[[3, 2], [1, 3]]]


def test_loss_is_the_weighted_sum_over_levels():
    def mean_gap(logits, target):  # a stand-in loss whose value is easy to compute by hand
        return (logits.mean() - target.float().mean()).abs()

    loss = DeepSupervisionLoss(mean_gap, levels=3)  # weights 2/3, 1/3 (the coarsest 0 is not computed)
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, 1::2, 1::2] = 1  # the voxels nearest-exact keeps at 2×2: the half-size label is all ones
    outputs = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    assert float(loss(outputs, label, lambda x: x)) == pytest.approx(2 / 3 * 0.25 + 1 / 3 * 1.0)
    with pytest.raises(ValueError, match="3 outputs for 2 deep-supervision weights"):
        loss([*outputs, torch.zeros(1, 2, 1, 1)], label, lambda x: x)


def test_supervised_method_trains_with_deep_supervision_and_predicts_as_before(tiny_region_dataset):
    spec = load_dataset_json(tiny_region_dataset)
    config = tiny_config(tiny_region_dataset, **{"model.features": [4, 8, 16, 32]})
    torch.manual_seed(0)
    plain = build_method(config, spec)
    config.method.deep_supervision = True
    torch.manual_seed(0)
    deep = build_method(config, spec)
    assert [k for k in deep.state_dict() if k not in plain.state_dict()] == [
        "net.deep_supervision_heads.0.weight", "net.deep_supervision_heads.0.bias"]
    image = torch.randn(2, 2, 16, 16, 16)
    label = torch.randint(0, 3, (2, 16, 16, 16))
    batch = {"image": image, "label": label, "labelled": torch.tensor([True, True])}
    with torch.no_grad():
        main = plain.loss(plain.net(image), plain.targets.targets(label))
        half = deep.net.decoder.forward_levels(deep.net.encoder(image))[-2]  # (B, 8, 8, 8, 8)
        low = plain.loss(deep.net.deep_supervision_heads[0](half), plain.targets.targets(downsample_labels(label, (8, 8, 8))))
    assert float(deep.training_step(batch, 0).loss.detach()) == pytest.approx(float(2 / 3 * main + 1 / 3 * low), rel=1e-5)
    availability = torch.ones(2, 2, dtype=torch.bool)
    assert torch.equal(deep.predict_logits(image, availability), plain.predict_logits(image, availability))
    config.model.arch = "vnet"
    with pytest.raises(ConfigError, match="deep supervision needs model.arch unet, got vnet"):
        build_method(config, spec)
