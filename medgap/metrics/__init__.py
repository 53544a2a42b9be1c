"""Segmentation metrics: overlap (Dice, Jaccard, mIoU), surface distances (HD95, ASD), BraTS regions,
per-case accumulation and summaries (mean ± std, paired t-test).

Definitions and the empty-mask policy are stated in :mod:`medgap.metrics.surface` and
:data:`EMPTY_MASK_POLICY`.
"""

from medgap.metrics.accumulate import SegmentationMetrics
from medgap.metrics.overlap import EMPTY_MASK_POLICY, MetricInputError, dice, jaccard, miou
from medgap.metrics.regions import brats_regions, label_to_masks
from medgap.metrics.stats import aggregate, paired_ttest
from medgap.metrics.surface import HD95_DEFINITIONS, asd, hd95, surface_distance_metrics

__all__ = [
    "EMPTY_MASK_POLICY",
    "HD95_DEFINITIONS",
    "MetricInputError",
    "SegmentationMetrics",
    "aggregate",
    "asd",
    "brats_regions",
    "dice",
    "hd95",
    "jaccard",
    "label_to_masks",
    "miou",
    "paired_ttest",
    "surface_distance_metrics",
]
