"""A configurable 2-D/3-D U-Net with the encoder and decoder as separate modules.

MONAI's ``UNet``/``DynUNet`` are fine stand-alone networks, but the methods need pieces of one: ShaSpec runs a
shared encoder per modality and fuses at the bottleneck, SS-Net's heads read the decoder's last feature map.
So the U-Net here is split into ``UNetEncoder`` (returns every scale's features) and ``UNetDecoder`` (returns the
last feature map), and ``UNet`` joins them with a 1×1 head. Blocks follow nnU-Net: (conv–norm–LeakyReLU) × 2,
strided-conv downsampling, transposed-conv upsampling.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(dims: int):
    return nn.Conv3d if dims == 3 else nn.Conv2d


def _norm(kind: str, dims: int, channels: int) -> nn.Module:
    if kind == "instance":
        return (nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d)(channels, affine=True)
    if kind == "batch":
        return (nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"unknown norm {kind!r}")


def conv_block(dims: int, in_channels: int, out_channels: int, norm: str = "instance", stride: int = 1,
               dropout: float = 0.0) -> nn.Sequential:
    """(conv 3×3[×3] → norm → LeakyReLU(0.01)) × 2; the first conv may downsample with ``stride``."""
    conv = _conv(dims)
    layers: list[nn.Module] = [
        conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        _norm(norm, dims, out_channels), nn.LeakyReLU(0.01, inplace=True),
    ]
    if dropout > 0:
        layers.append((nn.Dropout3d if dims == 3 else nn.Dropout2d)(dropout))
    layers += [conv(out_channels, out_channels, 3, padding=1, bias=False),
               _norm(norm, dims, out_channels), nn.LeakyReLU(0.01, inplace=True)]
    return nn.Sequential(*layers)


class UNetEncoder(nn.Module):
    """Encoder: ``x (B, C_in, *S)`` → list of features at each scale, finest first, bottleneck last.

    Scale ``i`` has ``features[i]`` channels and spatial size ``S / 2**i``.
    """

    def __init__(self, dims: int, in_channels: int, features: list[int], norm: str = "instance",
                 dropout: float = 0.0):
        super().__init__()
        self.dims, self.features = dims, list(features)
        channels = [in_channels, *features]
        self.stages = nn.ModuleList(
            conv_block(dims, channels[i], channels[i + 1], norm, stride=1 if i == 0 else 2,
                       dropout=dropout if i == len(features) - 1 else 0.0)
            for i in range(len(features)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    """Decoder: encoder features (finest first) → last feature map ``(B, features[0], *S)``."""

    def __init__(self, dims: int, features: list[int], norm: str = "instance", bottleneck_channels: int | None = None):
        super().__init__()
        transpose = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        deep = [bottleneck_channels or features[-1], *features[-2::-1]]
        self.upsample = nn.ModuleList(transpose(deep[i], deep[i + 1], 2, stride=2) for i in range(len(deep) - 1))
        self.blocks = nn.ModuleList(conv_block(dims, 2 * deep[i + 1], deep[i + 1], norm) for i in range(len(deep) - 1))

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]  # a one-scale U-Net has no decoder level
        for x in self._levels(skips):  # keeps only the current level (inference memory)
            pass
        return x

    def forward_levels(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every decoder block's output, coarsest first; the last is :meth:`forward`'s feature map."""
        return list(self._levels(skips))

    def _levels(self, skips: list[torch.Tensor]):
        x = skips[-1]
        for upsample, block, skip in zip(self.upsample, self.blocks, reversed(skips[:-1])):
            x = block(torch.cat([upsample(x), skip], dim=1))
            yield x


class UNet(nn.Module):
    """U-Net: ``x (B, C_in, *S)`` → logits ``(B, C_out, *S)``; ``S`` divisible by ``2**(len(features)-1)``.

    Args:
        dims: 2 or 3.
        in_channels, out_channels: input modalities, output classes/regions.
        features: channels per scale, e.g. ``[16, 32, 64, 128]`` (4 scales, 3 downsamplings).
        norm: ``instance`` | ``batch`` | ``group``.
        dropout: dropout at the bottleneck.
        deep_supervision_heads: 1×1 heads on this many decoder levels below the finest, for
            :meth:`forward_deep_supervision` (training only: ``forward`` and the main path's weights and their
            initialisation are the same with or without them); at most ``len(features) - 2``.
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, features: list[int] = (16, 32, 64, 128),
                 norm: str = "instance", dropout: float = 0.0, deep_supervision_heads: int = 0):
        super().__init__()
        self.encoder = UNetEncoder(dims, in_channels, list(features), norm, dropout)
        self.decoder = UNetDecoder(dims, list(features), norm)
        self.head = _conv(dims)(features[0], out_channels, 1)
        if not 0 <= deep_supervision_heads <= max(len(features) - 2, 0):
            raise ValueError(f"{deep_supervision_heads} deep-supervision heads for {len(features) - 1} decoder levels")
        if deep_supervision_heads:  # built after the main path, so the main path's initialisation is unchanged
            # decoder level i (from the finest) has features[i] channels at 1 / 2**i of the resolution
            self.deep_supervision_heads = nn.ModuleList(_conv(dims)(features[i], out_channels, 1)
                                                        for i in range(1, deep_supervision_heads + 1))

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the decoder's last feature map (for heads that work on features)."""
        features = self.decoder(self.encoder(x))
        return self.head(features), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_deep_supervision(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits at full resolution, then at 1/2, 1/4, ... for every deep-supervision head: ``[(B, K, *S),
        (B, K, *S/2), ...]`` (nnU-Net's order, finest first)."""
        levels = self.decoder.forward_levels(self.encoder(x))[::-1]  # finest first
        heads = getattr(self, "deep_supervision_heads", [])
        return [self.head(levels[0]), *(head(level) for head, level in zip(heads, levels[1:]))]
