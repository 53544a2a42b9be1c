"""Overlap metrics between binary masks: Dice, Jaccard (IoU), and mIoU over the classes of label maps.

Inputs are boolean (or 0/1) numpy arrays or torch tensors of equal shape, usually ``(H, W)`` or
``(H, W, D)``; any non-zero value counts as foreground. Results are Python floats.

The empty-mask policy (:data:`EMPTY_MASK_POLICY`) is shared with :mod:`medgap.metrics.surface` and is
written into every result file, so a reader knows what a Dice of 1 on an empty structure means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from medgap.errors import MedgapError

# JSON-serialisable on purpose (no float NaN): evaluation code writes it verbatim into summary.json.
EMPTY_MASK_POLICY: dict[str, Any] = {
    "description": (
        "GT and prediction both empty: Dice 1, Jaccard 1, HD95 0, ASD 0. "
        "Exactly one of them empty: Dice 0, Jaccard 0, HD95 and ASD NaN (reported, excluded from means and "
        "counted separately), or the configured empty_penalty (same units as the distances, e.g. 373.13 mm "
        "BraTS-style) when one is given."
    ),
    "both_empty": {"dice": 1.0, "jaccard": 1.0, "hd95": 0.0, "asd": 0.0},
    "one_empty": {"dice": 0.0, "jaccard": 0.0, "hd95": "NaN or empty_penalty", "asd": "NaN or empty_penalty"},
}


class MetricInputError(MedgapError, ValueError):
    """Metric inputs that cannot be compared (shapes differ, spacing of the wrong length, ...)."""


def to_numpy(array: Any) -> np.ndarray:
    """Return ``array`` as a numpy array; torch tensors go through ``.detach().cpu().numpy()``."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def to_binary_pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert a prediction / ground-truth pair to boolean numpy arrays of equal shape.

    Args:
        pred: prediction mask, array or tensor, shape ``(H, W[, D])``; non-zero = foreground.
        gt: ground-truth mask of the same shape.

    Raises:
        MetricInputError: (a ``ValueError``) when the shapes differ or the arrays are 0-dimensional.
    """
    pred_np, gt_np = to_numpy(pred), to_numpy(gt)
    if pred_np.shape != gt_np.shape:
        raise MetricInputError(f"pred and gt shapes differ: pred {pred_np.shape} vs gt {gt_np.shape}")
    if pred_np.ndim == 0:
        raise MetricInputError("pred and gt are 0-dimensional; expected masks of shape (H, W[, D])")
    return pred_np.astype(bool, copy=False), gt_np.astype(bool, copy=False)


def _overlap_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """Return ``(|pred ∩ gt|, |pred|, |gt|)`` in voxels."""
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred)), int(np.count_nonzero(gt))


def dice(pred: Any, gt: Any, spacing: Sequence[float] | float | None = None) -> float:
    """Dice coefficient ``2 |P ∩ G| / (|P| + |G|)`` (same as ``medpy.metric.binary.dc``).

    Args:
        pred: prediction mask, shape ``(H, W[, D])``, bool or 0/1, numpy or torch.
        gt: ground-truth mask, same shape.
        spacing: accepted for a signature uniform with the distance metrics and ignored: every voxel has
            the same volume, so it cancels out.

    Returns:
        Dice in [0, 1]; 1.0 when both masks are empty (see :data:`EMPTY_MASK_POLICY`; medpy returns NaN).
    """
    del spacing
    intersection, size_pred, size_gt = _overlap_counts(*to_binary_pair(pred, gt))
    if size_pred + size_gt == 0:
        return float(EMPTY_MASK_POLICY["both_empty"]["dice"])
    return 2.0 * intersection / float(size_pred + size_gt)


def jaccard(pred: Any, gt: Any, spacing: Sequence[float] | float | None = None) -> float:
    """Jaccard index / IoU ``|P ∩ G| / |P ∪ G|`` (same as ``medpy.metric.binary.jc``).

    Args:
        pred: prediction mask, shape ``(H, W[, D])``, bool or 0/1, numpy or torch.
        gt: ground-truth mask, same shape.
        spacing: accepted and ignored (voxel volume cancels out), for a uniform signature.

    Returns:
        IoU in [0, 1]; 1.0 when both masks are empty (:data:`EMPTY_MASK_POLICY`).
    """
    del spacing
    intersection, size_pred, size_gt = _overlap_counts(*to_binary_pair(pred, gt))
    union = size_pred + size_gt - intersection
    if union == 0:
        return float(EMPTY_MASK_POLICY["both_empty"]["jaccard"])
    return intersection / float(union)


def miou(pred_labels: Any, gt_labels: Any, classes: Iterable[int], include_background: bool = False) -> float:
    """Mean IoU over the given class values of two integer label maps (one case).

    The IoU of each class ``c`` is ``jaccard(pred_labels == c, gt_labels == c)``; the result is their
    unweighted mean over classes. A class absent from both maps scores 1 (:data:`EMPTY_MASK_POLICY`).

    Args:
        pred_labels: predicted label map, integer array or tensor, shape ``(H, W[, D])``.
        gt_labels: ground-truth label map, same shape.
        classes: the class values to average over, e.g. ``(0, 1)`` or ``range(4)``.
        include_background: when False (default), the value 0 is dropped from ``classes``; foreground only
            is the default for binary tasks, as in our data and evaluation spec.

    Raises:
        MetricInputError: shapes differ, or no class is left to average over.
    """
    pred_np, gt_np = to_numpy(pred_labels), to_numpy(gt_labels)
    if pred_np.shape != gt_np.shape:
        raise MetricInputError(f"pred and gt label map shapes differ: pred {pred_np.shape} vs gt {gt_np.shape}")
    requested = [int(c) for c in classes]
    values = [c for c in requested if include_background or c != 0]
    if not values:
        raise MetricInputError(
            f"miou has no class to average over (classes={requested}, include_background={include_background})"
        )
    return float(np.mean([jaccard(pred_np == c, gt_np == c) for c in values]))
