"""Deep supervision (nnU-Net): the loss on the decoder's lower levels too, against downsampled labels."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def deep_supervision_weights(levels: int) -> list[float]:
    """Loss weights of ``levels`` decoder outputs, full resolution first: ``1 / 2**i``, the coarsest set to 0 and
    the rest normalised to sum 1, as nnU-Net v2's ``nnUNetTrainer._build_loss`` (4 outputs: 4/7, 2/7, 1/7, 0;
    a decoder of one level keeps weight 1)."""
    weights = [1 / 2**i for i in range(levels)]
    if levels > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


def downsample_labels(label: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Label indices ``(B, *S)`` → ``(B, *shape)`` by nearest neighbour (``nearest-exact``, nnU-Net's
    ``DownsampleSegForDSTransform``): every value is one of the input's."""
    if tuple(label.shape[1:]) == tuple(shape):
        return label
    return F.interpolate(label[:, None].float(), size=shape, mode="nearest-exact")[:, 0].to(label.dtype)


class DeepSupervisionLoss(nn.Module):
    """``Σ_i w_i · loss(logits_i, targets(labels downsampled to logits_i))`` over the outputs of
    :meth:`medgap.nets.UNet.forward_deep_supervision` (full resolution first); outputs of weight 0 are skipped.

    Args:
        loss: ``loss(logits (B, K, *S), target)`` for one resolution.
        levels: decoder levels of the network (``len(features) - 1``): the weights are
            :func:`deep_supervision_weights` of it, without the zeros.
    """

    def __init__(self, loss: nn.Module, levels: int):
        super().__init__()
        self.loss = loss
        self.weights = [w for w in deep_supervision_weights(levels) if w > 0]

    def forward(self, logits: list[torch.Tensor], label: torch.Tensor,
                targets: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``logits`` finest first; ``label (B, *S)`` label indices; ``targets`` turns indices into the loss's
        target (class indices or region masks)."""
        if len(logits) != len(self.weights):
            raise ValueError(f"{len(logits)} outputs for {len(self.weights)} deep-supervision weights")
        return sum(weight * self.loss(output, targets(downsample_labels(label, tuple(output.shape[2:]))))
                   for weight, output in zip(self.weights, logits))
