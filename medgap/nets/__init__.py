"""Plain ``nn.Module`` networks (no losses inside); dimension (2-D/3-D) is a constructor argument."""

from medgap.nets.unet import UNet, UNetDecoder, UNetEncoder, conv_block
from medgap.nets.vnet import VNet


def build_net(config, dims: int, in_channels: int, out_channels: int, deep_supervision_heads: int = 0):
    """The segmentation network named by ``config.arch`` (a :class:`medgap.config.NetConfig`).

    Both returned networks have ``forward_features(x) -> (logits, last decoder feature map)``; the U-Net can add
    ``deep_supervision_heads`` (:class:`UNet`).
    """
    from medgap.errors import ConfigError

    if deep_supervision_heads and config.arch != "unet":
        raise ConfigError(f"deep supervision needs model.arch unet, got {config.arch}")
    if deep_supervision_heads > len(config.features) - 2:
        raise ConfigError(f"deep supervision needs at least 3 levels in model.features, got {config.features}")
    if config.arch == "vnet":
        if dims != 3:
            raise ConfigError(f"model.arch vnet is 3-D only, but data.patch_size has {dims} entries")
        return VNet(in_channels, out_channels, config.features, config.norm, config.dropout)
    return UNet(dims, in_channels, out_channels, config.features, config.norm, config.dropout,
                deep_supervision_heads)


__all__ = ["UNet", "UNetDecoder", "UNetEncoder", "VNet", "build_net", "conv_block"]
