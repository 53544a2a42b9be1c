"""Supervised segmentation losses: soft Dice + cross-entropy (labels) or soft Dice + BCE (regions)."""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, DiceLoss
from torch import nn


class SegmentationLoss(nn.Module):
    """Dice + CE over softmax classes, or Dice + BCE over sigmoid regions (BraTS WT/TC/ET).

    MONAI's ``DiceCELoss`` falls back to softmax cross-entropy whenever there is more than one channel, even with
    ``sigmoid=True``, which is wrong for overlapping regions; so the region case pairs MONAI's ``DiceLoss`` with a
    per-channel ``BCEWithLogitsLoss``. Dice is computed over the whole batch (nnU-Net's "batch Dice"), which keeps
    it stable on patches where a small structure is absent.

    Args:
        output: ``"softmax"`` (target = class indices ``(B, *S)``) or ``"sigmoid"`` (target = region masks
            ``(B, R, *S)``).
        region_bce: regions only: ``mean`` of the per-region BCE or their ``sum`` (the official ShaSpec code
            adds the three BraTS regions' BCE terms while averaging their Dice terms).
    """

    def __init__(self, output: str, dice_weight: float = 1.0, ce_weight: float = 1.0,
                 region_bce: str = "mean"):
        super().__init__()
        if region_bce not in ("mean", "sum"):
            raise ValueError(f"region_bce must be 'mean' or 'sum', got {region_bce!r}")
        self.output, self.region_bce = output, region_bce
        if output == "softmax":
            self.loss = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, lambda_dice=dice_weight,
                                   lambda_ce=ce_weight)
        elif output == "sigmoid":
            self.dice = DiceLoss(sigmoid=True, batch=True)
            self.bce = nn.BCEWithLogitsLoss()
            self.dice_weight, self.ce_weight = dice_weight, ce_weight
        else:
            raise ValueError(f"output must be 'softmax' or 'sigmoid', got {output!r}")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.output == "softmax":
            return self.loss(logits, target.unsqueeze(1))
        target = target.to(logits.dtype)
        bce = self.bce(logits, target)  # mean over regions and voxels
        if self.region_bce == "sum":  # every region has the same voxel count: sum of per-region means
            bce = bce * logits.shape[1]
        return self.dice_weight * self.dice(logits, target) + self.ce_weight * bce
