"""Small heads that sit on pooled encoder features."""

from __future__ import annotations

import math

import torch
from torch import nn


def pool_features(features: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """``(B, C, *S)`` → ``(B, F)``: global ``mean`` or ``max`` pooling (F = C) or ``flatten`` (F = C·∏S).

    After InstanceNorm every channel's spatial mean is its learned bias, whatever the input: a mean-pooled
    vector then carries (almost) nothing. ``max`` and ``flatten`` keep what the normalised map shows.
    """
    if pooling == "mean":
        return features.flatten(2).mean(-1)
    if pooling == "max":
        return features.flatten(2).amax(-1)
    if pooling == "flatten":
        return features.flatten(1)
    raise ValueError(f"unknown pooling {pooling!r}")


def pooled_width(channels: int, patch_size: list[int], levels: int, pooling: str) -> int:
    """The width :func:`pool_features` gives for the ``channels`` bottleneck maps of a :class:`UNetEncoder` with
    ``levels`` scales on ``patch_size`` (each stride-2 level halves a size, rounding up)."""
    if pooling != "flatten":
        return channels
    return channels * math.prod(-(-size // 2 ** (levels - 1)) for size in patch_size)


class ClassificationHead(nn.Module):
    """FC – ReLU – dropout – FC: ``(B, in_features)`` → class logits ``(B, classes)`` (ShaSpec's AV-MNIST head)."""

    def __init__(self, in_features: int, hidden: int, classes: int, dropout: float = 0.5):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                    nn.Linear(hidden, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
