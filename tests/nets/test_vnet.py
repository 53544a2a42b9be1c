import pytest
import torch

from medgap.config import NetConfig
from medgap.errors import ConfigError
from medgap.nets import UNet, VNet, build_net


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_vnet_matches_the_official_size_and_exposes_decoder_features():
    # SS-Net/UA-MT V-Net (16 filters, BatchNorm, 2 classes): 9.45 M parameters; ours has 9,448,866.
    assert count(VNet(1, 2, [16, 32, 64, 128, 256], "batch")) == 9_448_866
    net = VNet(1, 2, [4, 8, 16], "batch")
    logits, features = net.forward_features(torch.randn(2, 1, 8, 12, 16))
    assert logits.shape == (2, 2, 8, 12, 16) and features.shape == (2, 4, 8, 12, 16)
    torch.testing.assert_close(net.head(features), logits)


def test_unet_2d_size_is_close_to_the_official_one():
    # Official 2-D U-Net [16..256]: 1.81 M (max-pool down, 1×1 conv + bilinear up); ours uses strided and
    # transposed convolutions: 1,942,340, 7 % more.
    assert count(UNet(2, 1, 4, [16, 32, 64, 128, 256], "batch")) == 1_942_340


def test_build_net_picks_the_architecture():
    assert isinstance(build_net(NetConfig(arch="vnet", features=[4, 8], norm="batch"), 3, 1, 2), VNet)
    assert isinstance(build_net(NetConfig(features=[4, 8]), 2, 1, 2), UNet)
    with pytest.raises(ConfigError, match="3-D only"):
        build_net(NetConfig(arch="vnet"), 2, 1, 2)


def test_dropout_sits_at_the_bottleneck_and_on_the_features_the_heads_read():
    # Official V-Net (has_dropout): Dropout3d(0.5) on the bottleneck and on the last decoder map, which is both
    # the output conv's input and the embedding SS-Net's projection head reads.
    torch.manual_seed(0)
    net = VNet(1, 2, features=[4, 8], dropout=0.5).train()
    logits, features = net.forward_features(torch.randn(2, 1, 8, 8, 8))
    dropped = features.flatten(2).abs().sum(-1) == 0  # Dropout3d zeroes whole channels
    assert dropped.any() and torch.allclose(logits, net.head(features))
    net.eval()
    logits, features = net.forward_features(torch.randn(2, 1, 8, 8, 8))
    assert not (features.flatten(2).abs().sum(-1) == 0).any()
