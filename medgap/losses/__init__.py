"""Losses shared by methods."""

from medgap.losses.segmentation import SegmentationLoss

__all__ = ["SegmentationLoss"]
