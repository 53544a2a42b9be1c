"""V-Net as used by UA-MT / SS-Net for 3-D left-atrium segmentation (Milletari et al. 2016, simplified).

Per resolution level ``i``: ``stages[i]`` × (conv 3×3×3 → norm → ReLU), then a strided 2×2×2 conv that doubles
the channels (downsampling). The decoder mirrors it with 2×2×2 transposed convs that halve the channels and
*adds* (not concatenates) the encoder's feature map of the same level. With 16 base filters and BatchNorm this
is the network of SS-Net's LA experiments; the last decoder feature map (16 channels) feeds SS-Net's heads.
Written from the architecture description, not copied from any repository.
"""

from __future__ import annotations

import torch
from torch import nn

from medgap.nets.unet import _norm

# Convolutions per level, finest first (V-Net: 1, 2, 3, 3, 3).
VNET_STAGES = (1, 2, 3, 3, 3)


def _conv_stack(channels_in: int, channels_out: int, count: int, norm: str) -> nn.Sequential:
    """``count`` × (conv 3×3×3, padding 1 → norm → ReLU)."""
    layers: list[nn.Module] = []
    for index in range(count):
        layers += [nn.Conv3d(channels_in if index == 0 else channels_out, channels_out, 3, padding=1),
                   _norm(norm, 3, channels_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _resample(channels_in: int, channels_out: int, norm: str, up: bool) -> nn.Sequential:
    """2×2×2 (transposed) conv with stride 2 → norm → ReLU: halves (or doubles) every spatial size."""
    conv = (nn.ConvTranspose3d if up else nn.Conv3d)(channels_in, channels_out, 2, stride=2)
    return nn.Sequential(conv, _norm(norm, 3, channels_out), nn.ReLU(inplace=True))


class VNet(nn.Module):
    """3-D V-Net: ``x (B, C_in, X, Y, Z)`` → logits ``(B, C_out, X, Y, Z)``; sizes divisible by ``2**(levels-1)``.

    Args:
        in_channels, out_channels: input modalities, output classes.
        features: channels per level, finest first; SS-Net: ``[16, 32, 64, 128, 256]`` (≤ 5 levels).
        norm: ``batch`` (SS-Net), ``instance`` or ``group``.
        dropout: ``Dropout3d`` probability at the bottleneck and on the last decoder features (0 = none).
    """

    def __init__(self, in_channels: int, out_channels: int, features=(16, 32, 64, 128, 256), norm: str = "batch",
                 dropout: float = 0.0):
        super().__init__()
        features = list(features)
        if not 2 <= len(features) <= len(VNET_STAGES):
            raise ValueError(f"V-Net takes 2 to {len(VNET_STAGES)} levels, got features={features}")
        levels = len(features)
        self.encoder = nn.ModuleList(
            _conv_stack(in_channels if i == 0 else features[i], features[i], VNET_STAGES[i], norm)
            for i in range(levels))
        self.down = nn.ModuleList(_resample(features[i], features[i + 1], norm, up=False) for i in range(levels - 1))
        self.up = nn.ModuleList(_resample(features[i + 1], features[i], norm, up=True)
                                for i in reversed(range(levels - 1)))
        self.decoder = nn.ModuleList(_conv_stack(features[i], features[i], VNET_STAGES[i], norm)
                                     for i in reversed(range(levels - 1)))
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv3d(features[0], out_channels, 1)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, C_out, *S)`` and the decoder's last feature map ``(B, features[0], *S)`` (after dropout)."""
        skips = []
        for level, stack in enumerate(self.encoder):
            x = stack(x)
            if level < len(self.down):
                skips.append(x)
                x = self.down[level](x)
        x = self.dropout(x)
        for up, stack, skip in zip(self.up, self.decoder, reversed(skips)):
            x = stack(up(x) + skip)  # V-Net adds the skip connection (U-Net concatenates)
        features = self.dropout(x)  # as the official V-Net: the heads (and SS-Net's projection) see it dropped
        return self.head(features), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
