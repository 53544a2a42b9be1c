"""Encoders that map a whole input to one vector: a small ResNet-style image CNN, MLPs for tabular genetics,
and the projection heads of contrastive methods (ContIG, SimCLR)."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3×3 convs with BatchNorm and an identity/1×1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """A ResNet-style 2-D CNN trained from scratch: ``(B, C, H, W)`` → pooled features ``(B, widths[-1])``.

    ContIG uses ResNet-50 at 448 px; the CPU default here is four stages of ``blocks`` basic blocks (stride 2 from
    the second stage on), e.g. widths (32, 64, 128, 256) for 64 px images. Colour fundus images are read with
    ``data.normalisation: none`` and scaled by ``input_scale``: per-image z-scoring would erase pigmentation.
    ``stem_stride`` 2 quarters the compute (CPU experiments).
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256), blocks: int = 1,
                 input_scale: float = 1.0, stem_stride: int = 1):
        super().__init__()
        self.input_scale = input_scale  # e.g. 1/255 for 8-bit colour photographs read without normalisation
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        stages, previous = [], widths[0]
        for index, width in enumerate(widths):
            layers = [BasicBlock(previous, width, stride=1 if index == 0 else 2)]
            layers += [BasicBlock(width, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.out_features = widths[-1]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(image * self.input_scale)).mean((2, 3))


def genetic_mlp(in_features: int, hidden: list[int] | tuple[int, ...] = ()) -> tuple[nn.Module, int]:
    """ContIG's genetic encoder: identity (``hidden`` empty, the official default) or [Linear–ReLU–BatchNorm]×n.

    Returns the module and its output width. BatchNorm only ever sees the rows of people who have the
    modality (the method selects them before calling), never zero-filled rows.
    """
    layers: list[nn.Module] = []
    previous = in_features
    for width in hidden:
        layers += [nn.Linear(previous, width), nn.ReLU(inplace=True), nn.BatchNorm1d(width)]
        previous = width
    return (nn.Sequential(*layers) if layers else nn.Identity()), previous


class ProjectionHead(nn.Module):
    """Linear(in→hidden)–ReLU–Linear(hidden→out): ``(B, in)`` → ``(B, out)`` (ContIG/SimCLR projection)."""

    def __init__(self, in_features: int, hidden: int = 256, out_features: int = 128):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
