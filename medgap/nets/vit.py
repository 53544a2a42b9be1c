"""A small Vision Transformer (Dosovitskiy et al. 2021) that returns the CLS token *and* every patch token.

MONAI's ``ViT`` returns either the classification head's output or tokens without a CLS token; AMVLM needs both
(the CLS token for image–report contrast, the patch tokens for cross-modal soft matching and the text-guided
mask), so this is a plain pre-norm ViT in ~40 lines. CPU-sized by default (64² images, 8² patches → 64 tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ViT(nn.Module):
    """Patch embedding + learned position embedding + pre-norm transformer encoder.

    Args:
        image_size: square input side (pixels); must be divisible by ``patch_size``. Images of another size are
            resized to it (bilinear, antialiased), as the official AMVLM pipeline resizes every image to 224².
        in_channels: image channels.
        patch_size: patch side; the token grid is ``image_size // patch_size`` on each side.
        width, depth, heads: transformer size (ViT-B/16 is 768, 12, 12).
    """

    def __init__(self, image_size: int = 64, in_channels: int = 1, patch_size: int = 8, width: int = 128,
                 depth: int = 4, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}")
        self.image_size, self.grid = image_size, image_size // patch_size
        self.width = width
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid**2, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image (B, C, H, W)`` → ``cls (B, width)``, ``patches (B, P, width)`` with P = grid², row-major."""
        if image.shape[-2:] != (self.image_size, self.image_size):  # the position embedding fixes the token grid
            image = F.interpolate(image, size=(self.image_size,) * 2, mode="bilinear", align_corners=False,
                                  antialias=True)                                # (B, C, image_size, image_size)
        tokens = self.patch_embed(image).flatten(2).transpose(1, 2)             # (B, P, width)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], 1) + self.pos_embed
        tokens = self.norm(self.blocks(tokens))
        return tokens[:, 0], tokens[:, 1:]
