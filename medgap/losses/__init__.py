"""Losses shared by methods."""

from medgap.losses.deep_supervision import DeepSupervisionLoss, deep_supervision_weights
from medgap.losses.segmentation import SegmentationLoss

__all__ = ["DeepSupervisionLoss", "SegmentationLoss", "deep_supervision_weights"]
