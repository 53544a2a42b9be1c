"""Plain ``nn.Module`` networks (no losses inside); dimension (2-D/3-D) is a constructor argument."""

from medgap.nets.unet import UNet, UNetDecoder, UNetEncoder, conv_block

__all__ = ["UNet", "UNetDecoder", "UNetEncoder", "conv_block"]
