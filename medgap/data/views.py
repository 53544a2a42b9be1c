"""Random views of image batches drawn in torch (SSL pretraining: SimCLR's two views, ContIG's rotations).

Drawn from an explicit ``torch.Generator`` so a step's views are reproducible from (seed, step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_views(image: torch.Tensor, generator: torch.Generator, degrees: float, min_scale: float,
                 jitter: float, flip: bool = True, noise: float = 0.05) -> torch.Tensor:
    """One random view per image of ``(B, C, H, W)``: affine (rotation, zoom-in crop, shift, flip) + per-channel
    brightness/contrast jitter + Gaussian noise (std ``noise`` relative to the image's mean intensity)."""
    b = image.shape[0]
    draw = lambda *shape: torch.rand(*shape, generator=generator).to(image.device)  # noqa: E731
    angle = (draw(b) * 2 - 1) * math.radians(degrees)
    scale = min_scale + (1 - min_scale) * draw(b)
    mirror = torch.where(draw(b) < 0.5, -1.0, 1.0).to(image.device) if flip else torch.ones(b, device=image.device)
    shift = (draw(b, 2) * 2 - 1) * (1 - scale)[:, None]
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    view = F.grid_sample(image, grid, align_corners=False)
    gain = 1 + (draw(b, image.shape[1], 1, 1) * 2 - 1) * jitter
    offset = (draw(b, image.shape[1], 1, 1) * 2 - 1) * jitter
    grain = torch.randn(view.shape, generator=generator).to(image.device) * noise if noise else 0.0
    scale_of = image.abs().mean((1, 2, 3), keepdim=True)  # offsets/noise relative to the image's intensity range
    return view * gain + (offset + grain) * scale_of
