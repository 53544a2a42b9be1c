"""Small heads that sit on pooled encoder features."""

from __future__ import annotations

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """FC – ReLU – dropout – FC: ``(B, in_features)`` → class logits ``(B, classes)`` (ShaSpec's AV-MNIST head)."""

    def __init__(self, in_features: int, hidden: int, classes: int, dropout: float = 0.5):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                    nn.Linear(hidden, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
